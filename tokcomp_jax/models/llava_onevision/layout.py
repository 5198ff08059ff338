"""Host-side token plans of LLaVA-OneVision: which projected tile features make each visual token.

LLaVA-OneVision turns an image's tiles into tokens by data-dependent steps (anyres grid, unpad,
bilinear downsampling past `anyres_max_N`, a newline after every row; for video 2x bilinear
pooling and one newline). Every visual token is therefore a fixed linear combination of at most
four projected tile features, or the learned newline. These functions compute that combination on
the host, so the jitted model only gathers and weights: one graph per bucket.

A plan is (sources [N, 4] int, weights [N, 4] float32, newline [N] bool) over the flat features of
the tiles it was given (tile t's token k is row t * side^2 + k); unused taps have weight 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Plan = tuple[np.ndarray, np.ndarray, np.ndarray]


def select_best_resolution(size: tuple[int, int], pinpoints: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The (height, width) pinpoint that keeps the most of the image at least waste (transformers' rule)."""
    height, width = size
    best, most, least_waste = None, 0, math.inf
    for grid_height, grid_width in pinpoints:
        scale = min(grid_width / width, grid_height / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        waste = grid_width * grid_height - effective
        if effective > most or (effective == most and waste < least_waste):
            best, most, least_waste = (grid_height, grid_width), effective, waste
    return best


def num_tiles(size: tuple[int, int], pinpoints, tile: int) -> int:
    """Tiles the image processor makes of an image: the base image plus the anyres grid."""
    height, width = select_best_resolution(size, pinpoints)
    return 1 + (height // tile) * (width // tile)


def bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """torch's bilinear resize along one axis (align_corners=False), in float32 as torch computes it:
    output i reads input i0 with weight w0 and i1 with weight w1."""
    scale = np.float32(in_size) / np.float32(out_size)
    source = np.maximum((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
    first = np.floor(source).astype(np.int64)
    second = np.minimum(first + 1, in_size - 1)
    w1 = (source - first).astype(np.float32)
    return first, second, np.float32(1) - w1, w1


def _resize(index: np.ndarray, out_shape: tuple[int, int]) -> Plan:
    """Bilinear resize of a 2-D map of feature rows `index` [H, W] to out_shape: 4 taps per output."""
    ys0, ys1, wy0, wy1 = bilinear_taps(index.shape[0], out_shape[0])
    xs0, xs1, wx0, wx1 = bilinear_taps(index.shape[1], out_shape[1])
    taps = [
        (ys, xs, wy[:, None] * wx[None, :])
        for ys, wy in ((ys0, wy0), (ys1, wy1))
        for xs, wx in ((xs0, wx0), (xs1, wx1))
    ]
    sources = np.stack([index[np.ix_(ys, xs)] for ys, xs, _ in taps], -1).reshape(-1, 4)
    weights = np.stack([w for _, _, w in taps], -1).reshape(-1, 4).astype(np.float32)
    return sources, weights, np.zeros(len(sources), bool)


def _gather(index: np.ndarray) -> Plan:
    """Each output is one feature row (weight 1)."""
    sources = np.full((index.size, 4), 0, np.int64)
    sources[:, 0] = index.reshape(-1)
    weights = np.zeros((index.size, 4), np.float32)
    weights[:, 0] = 1
    return sources, weights, np.zeros(index.size, bool)


def _with_newlines(plan: Plan, rows: int) -> Plan:
    """Append a newline token after each of `rows` equal rows of the plan."""
    sources, weights, newline = (x.reshape(rows, -1, *x.shape[1:]) for x in plan)
    pad = lambda x, value: np.concatenate([x, np.full((rows, 1, *x.shape[2:]), value, x.dtype)], 1)  # noqa: E731
    return pad(sources, 0).reshape(-1, 4), pad(weights, 0).reshape(-1, 4), pad(newline, True).reshape(-1)


def concat(plans: Sequence[Plan]) -> Plan:
    return tuple(np.concatenate(parts) for parts in zip(*plans, strict=True))


def newline_plan() -> Plan:
    return np.zeros((1, 4), np.int64), np.zeros((1, 4), np.float32), np.ones(1, bool)


def unpad_window(size: tuple[int, int], current: tuple[int, int]) -> tuple[slice, slice]:
    """The rows and columns of a padded feature map of shape `current` that hold the image of `size`."""
    height, width = size
    current_height, current_width = current
    if width / height > current_width / current_height:
        new_height = int(round(height * (current_width / width), 7))
        pad = (current_height - new_height) // 2
        return slice(pad, current_height - pad), slice(None)
    new_width = int(round(width * (current_height / height), 7))
    pad = (current_width - new_width) // 2
    return slice(None), slice(pad, current_width - pad)


def image_plan(size: tuple[int, int], pinpoints, tile: int, side: int, max_tiles: int | None, tiled: bool) -> Plan:
    """One image's tokens over its own tiles (base tile first): the base tile's side^2 features, then,
    if `tiled`, the unpadded anyres grid (bilinear-downsampled when larger than `max_tiles` tiles'
    worth) with a newline after each row; untiled, the base features and one newline."""
    base = _gather(np.arange(side * side))
    if not tiled:
        return concat([base, newline_plan()])
    grid_height, grid_width = (n // tile for n in select_best_resolution(size, pinpoints))
    y = np.arange(grid_height * side)[:, None]
    x = np.arange(grid_width * side)[None, :]
    index = (1 + (y // side) * grid_width + x // side) * side * side + (y % side) * side + x % side
    rows_window, cols_window = unpad_window(size, index.shape)
    index = index[rows_window, cols_window]
    ratio = math.sqrt(index.shape[0] * index.shape[1] / (max_tiles * side**2)) if max_tiles else 0.0
    if ratio > 1.1:
        out_shape = (int(index.shape[0] // ratio), int(index.shape[1] // ratio))
        grid = _resize(index, out_shape)
    else:
        out_shape = index.shape
        grid = _gather(index)
    return concat([base, _with_newlines(grid, out_shape[0])])


def video_plan(num_frames: int, side: int) -> Plan:
    """A video's tokens over its frames: each frame's side x side features pooled to ceil(side / 2)
    per side (bilinear), frame after frame, then one newline."""
    pooled = (math.ceil(side / 2),) * 2
    frames = [
        _resize(frame * side * side + np.arange(side * side).reshape(side, side), pooled) for frame in range(num_frames)
    ]
    return concat([*frames, newline_plan()])
