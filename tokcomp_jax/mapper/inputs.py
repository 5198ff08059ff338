"""Host-side batching for the mapper: pad to a token bucket, masks, and conv neighbour tables.

The mapper's convolutions read each token's neighbours through an index table built here from
the token grids, so one compiled graph serves every image size in a bucket, padding is never a
neighbour of a real token, and the 2-D variant needs no grid-shaped padding:

    sequence layout, kernel k:  neighbours n-k//2 .. n+k//2 along the visual-token sequence
    grid layout, kernel k:      the k x k window around (row, col) within the same image/frame
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from flax import struct

LAYOUTS = ("sequence", "grid")


@struct.dataclass
class MapperBatch:
    """B samples padded to a bucket of N tokens; C feature channels, K conv taps."""

    features: jax.Array  # [B, C, N] float32 attention features, 0 at padding
    mask: jax.Array  # [B, N] bool, True at real visual tokens
    neighbour_index: jax.Array  # [B, N, K] int32 index of each conv tap's token, -1 where there is none


def neighbour_table(layout: str, token_grid_thw: np.ndarray, kernel_size: int, bucket: int) -> np.ndarray:
    """[bucket, K] neighbour indices (-1 = none) for the visual tokens of grids [M, 3] (frames, rows, cols)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown mapper layout {layout!r}; expected one of {LAYOUTS}")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    grids = np.asarray(token_grid_thw, np.int64).reshape(-1, 3)
    count = int(grids.prod(-1).sum())
    if count > bucket:
        raise ValueError(f"{count} visual tokens do not fit the mapper bucket {bucket}")
    half = kernel_size // 2
    offsets = np.arange(-half, half + 1)
    table = np.full((bucket, kernel_size if layout == "sequence" else kernel_size**2), -1, np.int32)
    if layout == "sequence":
        index = np.arange(count)[:, None] + offsets[None]
        table[:count] = np.where((index >= 0) & (index < count), index, -1)
        return table
    start = 0
    for frames, rows, cols in grids:
        frame, row, col = np.unravel_index(np.arange(frames * rows * cols), (frames, rows, cols))
        neighbour_row = row[:, None, None] + offsets[None, :, None]
        neighbour_col = col[:, None, None] + offsets[None, None, :]
        inside = (neighbour_row >= 0) & (neighbour_row < rows) & (neighbour_col >= 0) & (neighbour_col < cols)
        index = start + (frame[:, None, None] * rows + neighbour_row) * cols + neighbour_col
        table[start : start + frames * rows * cols] = np.where(inside, index, -1).reshape(frames * rows * cols, -1)
        start += frames * rows * cols
    return table


def make_batch(
    features: Sequence[np.ndarray],
    token_grids: Sequence[np.ndarray],
    *,
    layout: str,
    kernel_size: int,
    bucket: int,
    batch_size: int | None = None,
) -> MapperBatch:
    """Pad per-sample features [C, N_i] with grids [M_i, 3] to a MapperBatch of bucket tokens.

    `batch_size` pads the batch with empty samples (mask all False) to a static size.
    """
    if not features:
        raise ValueError("make_batch needs at least one sample")
    channels = {np.shape(f)[0] for f in features}
    if len(channels) != 1:
        raise ValueError(f"samples have different feature channel counts {sorted(channels)}")
    rows = batch_size or len(features)
    if rows < len(features):
        raise ValueError(f"{len(features)} samples do not fit batch_size {rows}")
    padded = np.zeros((rows, channels.pop(), bucket), np.float32)
    mask = np.zeros((rows, bucket), bool)
    neighbours = np.full((rows, bucket, kernel_size ** (1 if layout == "sequence" else 2)), -1, np.int32)
    for row, (values, grids) in enumerate(zip(features, token_grids, strict=True)):
        count = np.shape(values)[1]
        if count == 0:
            raise ValueError(f"sample {row} has no visual tokens")
        if int(np.asarray(grids).prod(-1).sum()) != count:
            raise ValueError(f"sample {row}: token grids {np.asarray(grids).tolist()} do not hold {count} tokens")
        neighbours[row] = neighbour_table(layout, grids, kernel_size, bucket)
        padded[row, :, :count] = values
        mask[row, :count] = True
    return MapperBatch(features=padded, mask=mask, neighbour_index=neighbours)


def choose_bucket(count: int, buckets: Sequence[int], what: str = "visual tokens") -> int:
    """The smallest bucket holding count tokens."""
    for bucket in sorted(buckets):
        if count <= bucket:
            return bucket
    raise ValueError(f"{count} {what} exceed the largest bucket {max(buckets)}")
