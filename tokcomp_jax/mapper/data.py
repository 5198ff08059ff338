"""Label examples -> bucketed, padded, deterministically shuffled mapper batches.

Each example goes to the smallest token bucket that holds it; an epoch shuffles within each
bucket, cuts batches of a static size (the last one per bucket padded with empty samples), and
shuffles the batch order, all from (seed, epoch). The number of batches per epoch is fixed, so
a training step alone says where in the data a run is, and a resumed run sees the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tokcomp_jax.mapper.inputs import MapperBatch, choose_bucket, make_batch


class LabelBatches:
    """Batches of (MapperBatch, relevance [B, N], sample weight [B]) from label examples."""

    def __init__(
        self,
        examples: Sequence[dict],
        *,
        layout: str,
        kernel_size: int,
        buckets: Sequence[int],
        batch_size: int,
        seed: int = 0,
    ):
        if not examples:
            raise ValueError("no label examples to batch")
        self.examples = list(examples)
        self.layout, self.kernel_size, self.batch_size, self.seed = layout, kernel_size, batch_size, seed
        self.bucket_of = [choose_bucket(example["relevance"].size, buckets) for example in self.examples]
        members: dict[int, list[int]] = {}
        for index, bucket in enumerate(self.bucket_of):
            members.setdefault(bucket, []).append(index)
        self.members = {bucket: np.array(indices) for bucket, indices in sorted(members.items())}

    @property
    def batches_per_epoch(self) -> int:
        return sum(-(-len(indices) // self.batch_size) for indices in self.members.values())

    def epoch_plan(self, epoch: int) -> list[np.ndarray]:
        """The example indices of every batch of an epoch, in the order they are trained on."""
        rng = np.random.default_rng([self.seed, epoch])
        plan = []
        for indices in self.members.values():
            shuffled = rng.permutation(indices)
            plan += [shuffled[start : start + self.batch_size] for start in range(0, len(shuffled), self.batch_size)]
        return [plan[i] for i in rng.permutation(len(plan))]

    def in_order(self) -> list[np.ndarray]:
        """Every example once, bucket by bucket, for evaluation."""
        return [
            indices[start : start + self.batch_size]
            for indices in self.members.values()
            for start in range(0, len(indices), self.batch_size)
        ]

    def batch(self, indices: np.ndarray) -> tuple[MapperBatch, np.ndarray, np.ndarray]:
        """MapperBatch, relevance [B, N] (0 at padding) and weights [B] (0 for empty filler samples)."""
        chosen = [self.examples[i] for i in indices]
        bucket = self.bucket_of[indices[0]]
        batch = make_batch(
            [example["features"] for example in chosen],
            [example["token_grid_thw"] for example in chosen],
            layout=self.layout,
            kernel_size=self.kernel_size,
            bucket=bucket,
            batch_size=self.batch_size,
        )
        relevance = np.zeros((self.batch_size, bucket), np.float32)
        for row, example in enumerate(chosen):
            relevance[row, : example["relevance"].size] = example["relevance"]
        weights = (np.arange(self.batch_size) < len(chosen)).astype(np.float32)
        return batch, relevance, weights
