"""Synthetic relevance labels with a known local rule, to test and compare mappers without an MLLM.

Each sample is one image of `rows x cols` visual tokens with `num_heads` attention-like feature
maps (positive, each summing to one). Its relevance is a local function of the features that
needs both grid directions and one particular head: the 3x3 box mean of head 0, squared. So a
mapper that sees only the head mean, or only sequence neighbours, can approximate it but not
exactly; that makes the variants distinguishable.
"""

from __future__ import annotations

import numpy as np

from tokcomp_jax.data.labels import dataset_dir, write_label_dataset


def _box3x3(field: np.ndarray) -> np.ndarray:
    """Mean over the 3x3 neighbourhood inside the grid, [R, C] -> [R, C] (zero outside)."""
    padded = np.pad(field, 1)
    rows, cols = field.shape
    return sum(padded[dr : dr + rows, dc : dc + cols] for dr in range(3) for dc in range(3)) / 9.0


def synthetic_example(rng: np.random.Generator, rows: int, cols: int, num_heads: int, sample_id: str) -> dict:
    """One label example (see tokcomp_jax.data.labels) on a rows x cols token grid."""
    fields = rng.lognormal(0.0, 1.0, size=(num_heads, rows, cols))
    for _ in range(rng.integers(1, 4)):  # a few salient objects, seen by head 0 and (weaker) by the others
        top, left = rng.integers(0, rows), rng.integers(0, cols)
        fields[:, top : top + 2, left : left + 2] *= np.array([6.0] + [2.0] * (num_heads - 1))[:, None, None]
    relevance = _box3x3(fields[0]) ** 2
    features = fields.reshape(num_heads, -1)
    return {
        "features": (features / features.sum(-1, keepdims=True)).astype(np.float32),
        "relevance": (relevance / relevance.sum()).reshape(-1).astype(np.float32),
        "token_grid_thw": np.array([[1, rows, cols]], np.int32),
        "answer_correct": True,
        "sample_id": sample_id,
    }


def synthetic_split(
    seed: int, count: int, grid_sizes: tuple[int, int], num_heads: int = 4, prefix: str = "synthetic"
) -> list[dict]:
    """`count` examples with rows and cols drawn uniformly from [grid_sizes[0], grid_sizes[1]]."""
    rng = np.random.default_rng(seed)
    low, high = grid_sizes
    return [
        synthetic_example(rng, *rng.integers(low, high + 1, size=2), num_heads, f"{prefix}-{index:06d}")
        for index in range(count)
    ]


def write_synthetic_labels(data_dir, splits: dict[str, tuple[int, int, int]], num_heads: int, seed: int):
    """Write a synthetic label dataset, split name -> (samples, min side, max side); returns its directory.

    Reuses a dataset already written under data_dir.
    """
    if (dataset_dir(data_dir) / "dataset_info.json").exists():
        return dataset_dir(data_dir)
    examples = {
        name: synthetic_split(seed + index, count, (low, high), num_heads, prefix=name)
        for index, (name, (count, low, high)) in enumerate(sorted(splits.items()))
    }
    return write_label_dataset(data_dir, examples)
