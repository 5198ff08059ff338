"""The Family contract's host types: where each sample's visual and instruction tokens sit, padded to buckets.

Sequences are bucketed as `text + visual` tokens (Buckets), so a pruned sequence always fits
`text + ceil(keep_ratio * visual)` slots and every shape is known before tracing.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
from flax import struct


@dataclasses.dataclass(frozen=True)
class Buckets:
    """Static sizes of a batch of B rows: each row is padded to text + visual tokens. Qwen2-VL: the
    patches of the batch to B * visual * merge^2, packed, or, with `frame_patches`, as blocks of
    that many patches, one per image / video frame (models.qwen2vl.prepare_inputs). LLaVA-OneVision:
    the batch's tiles to `tiles` (models.llava_onevision.prepare_llava_inputs)."""

    text: int
    visual: int
    queries: int = 32  # instruction tokens read by the first-layer features
    frame_patches: int | None = None
    tiles: int | None = None  # LLaVA-OneVision: image tiles + video frames of the batch

    @property
    def sequence(self) -> int:
        return self.text + self.visual

    def pruned_sequence(self, keep_ratio: float) -> int:
        return self.text + keep_count(keep_ratio, self.visual)


def check_keep_ratio(keep_ratio: float) -> None:
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")


def keep_count(keep_ratio: float, count: int) -> int:
    """ceil(keep_ratio * count), at least one token when there are any (float32 rounding as in the graph)."""
    check_keep_ratio(keep_ratio)
    if count == 0:
        return 0
    return max(1, math.ceil(float(np.float32(keep_ratio) * np.float32(count)) - 1e-4))


@struct.dataclass
class VisualLayout:
    """Per-sample positions, padded with -1. N visual bucket, Q query bucket."""

    visual_positions: jax.Array  # [B, N] sequence position of each visual token, in order
    query_positions: jax.Array  # [B, Q] positions of the instruction tokens (text after the last visual token)

    @property
    def visual_mask(self) -> jax.Array:
        return self.visual_positions >= 0

    @property
    def visual_count(self) -> jax.Array:
        return self.visual_mask.sum(-1)


def visual_layout(
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    visual_token_ids: tuple[int, ...],
    buckets: Buckets,
    kept: np.ndarray | None = None,
) -> VisualLayout:
    """Find each sample's visual tokens and instruction tokens; raise if they exceed the buckets.

    `kept` [B, T] marks visual positions that are never pruned (LLaVA-OneVision's row newlines):
    they are neither candidates for pruning nor instruction text.
    """
    input_ids, attention_mask = np.asarray(input_ids), np.asarray(attention_mask).astype(bool)
    is_media = np.isin(input_ids, visual_token_ids) & attention_mask
    is_visual = is_media & ~(np.zeros_like(is_media) if kept is None else np.asarray(kept, bool))
    batch = input_ids.shape[0]
    visual = np.full((batch, buckets.visual), -1, np.int32)
    queries = np.full((batch, buckets.queries), -1, np.int32)
    for row in range(batch):
        positions = np.flatnonzero(is_visual[row])
        if positions.size > buckets.visual:
            raise ValueError(f"sample {row} has {positions.size} visual tokens, more than the bucket {buckets.visual}")
        unpruned = int((attention_mask[row] & ~is_visual[row]).sum())  # text and never-pruned visual tokens
        if unpruned > buckets.text:
            raise ValueError(f"sample {row} has {unpruned} text tokens, more than the bucket {buckets.text}")
        text = np.flatnonzero(attention_mask[row] & ~is_media[row])
        last_media = np.flatnonzero(is_media[row])
        instruction = text[text > last_media.max()] if last_media.size else text
        if positions.size and instruction.size == 0:
            raise ValueError(f"sample {row} has no text after its visual tokens to score them with")
        instruction = instruction[-buckets.queries :]  # the last tokens, nearest to the answer
        visual[row, : positions.size] = positions
        queries[row, : instruction.size] = instruction
    return VisualLayout(visual_positions=visual, query_positions=queries)


def token_grids(
    input_ids: np.ndarray,
    image_token_id: int,
    video_token_id: int,
    image_grid_thw: np.ndarray | None,
    video_grid_thw: np.ndarray | None,
    merge: int,
) -> list[np.ndarray]:
    """Per sample, the (frames, rows, cols) token grid of each image/video in sequence order: list of [M_b, 3]."""
    grids = {
        image_token_id: list(np.asarray(image_grid_thw).reshape(-1, 3)) if image_grid_thw is not None else [],
        video_token_id: list(np.asarray(video_grid_thw).reshape(-1, 3)) if video_grid_thw is not None else [],
    }
    per_sample = []
    for row in np.asarray(input_ids):
        sample = []
        previous = None
        for token in row:
            if token in grids and token != previous:  # a run of pad tokens is one image or one video
                frames, height, width = grids[token].pop(0)
                sample.append((frames, height // merge, width // merge))
            previous = token
        per_sample.append(np.array(sample, np.int32).reshape(-1, 3))
    return per_sample
