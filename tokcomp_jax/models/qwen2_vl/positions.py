"""Host-side (numpy) bookkeeping for Qwen2-VL inputs: M-RoPE ids, patch positions, segments.

These depend on the data (grid shapes, where the visual tokens sit), so they are computed on
the host with the inputs and handed to the jitted model as arrays (DESIGN §3).
"""

from __future__ import annotations

import itertools

import numpy as np

TEXT, IMAGE, VIDEO = 0, 1, 2


def token_types(input_ids: np.ndarray, image_token_id: int, video_token_id: int) -> np.ndarray:
    """[B, T] ids -> [B, T] modality per token: 0 text, 1 image, 2 video (transformers' mm_token_type_ids)."""
    return np.where(input_ids == image_token_id, IMAGE, np.where(input_ids == video_token_id, VIDEO, TEXT))


def _grid_positions(start: int, grid_thw: np.ndarray, merge: int, time_step: float | None = None) -> np.ndarray:
    """(t, h, w) ids [3, t * h/m * w/m] of one image or video's visual tokens, offset by `start`;
    with `time_step` (Qwen2.5-VL videos) the temporal ids are int(t * time_step), in float32 as there."""
    t, h, w = int(grid_thw[0]), int(grid_thw[1]) // merge, int(grid_thw[2]) // merge
    times = np.arange(t) if time_step is None else (np.arange(t, dtype=np.float32) * np.float32(time_step)).astype(int)
    tt, hh, ww = np.meshgrid(times, np.arange(h), np.arange(w), indexing="ij")
    return np.stack([tt, hh, ww]).reshape(3, -1) + start


def rope_index(
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None,
    image_grid_thw: np.ndarray | None,
    video_grid_thw: np.ndarray | None,
    *,
    image_token_id: int,
    video_token_id: int,
    spatial_merge_size: int,
    video_time_steps=None,
) -> np.ndarray:
    """M-RoPE position ids [3, B, T], equal to transformers' `Qwen2VLModel.get_rope_index`.

    Text runs count up by one on all three axes; an image or video run takes (t, h, w) grid ids
    offset by the running position, after which text resumes at offset + max(h, w) / merge.
    Padding positions (attention_mask == 0) are 0. Without any image or video the ids are
    0..T-1, as transformers uses for text-only input. `video_time_steps` (one per video, in order)
    spaces a video's temporal ids as Qwen2.5-VL's `get_rope_index` does.
    """
    batch, length = input_ids.shape
    if image_grid_thw is None and video_grid_thw is None:
        return np.broadcast_to(np.arange(length), (3, batch, length)).astype(np.int32)
    mask = np.ones_like(input_ids, dtype=bool) if attention_mask is None else attention_mask.astype(bool)
    grids = {
        IMAGE: iter(np.asarray(image_grid_thw if image_grid_thw is not None else np.zeros((0, 3)))),
        VIDEO: iter(np.asarray(video_grid_thw if video_grid_thw is not None else np.zeros((0, 3)))),
    }
    time_steps = iter([] if video_time_steps is None else list(video_time_steps))
    position_ids = np.zeros((3, batch, length), dtype=np.int32)
    for row in range(batch):
        types = token_types(input_ids[row][mask[row]], image_token_id, video_token_id)
        pieces, current = [], 0
        for modality, run in itertools.groupby(types.tolist()):
            run_length = len(list(run))
            if modality == TEXT:
                pieces.append(np.broadcast_to(np.arange(run_length) + current, (3, run_length)))
                current += run_length
                continue
            grid = next(grids[modality], None)
            if grid is None:
                raise ValueError(f"row {row} has more {'image' if modality == IMAGE else 'video'} runs than grids")
            step = next(time_steps, None) if modality == VIDEO and video_time_steps is not None else None
            pieces.append(_grid_positions(current, grid, spatial_merge_size, step))
            current += max(int(grid[1]), int(grid[2])) // spatial_merge_size
        positions = np.concatenate(pieces, axis=1) if pieces else np.zeros((3, 0), np.int32)
        if positions.shape[1] != mask[row].sum():
            raise ValueError(
                f"row {row}: {mask[row].sum()} tokens but the grids give {positions.shape[1]} positions; "
                "the number of image/video pad tokens must equal grid t*h*w / merge^2"
            )
        position_ids[:, row, mask[row]] = positions
    return position_ids


def patch_positions(grid_thw: np.ndarray, spatial_merge_size: int) -> np.ndarray:
    """(row, col) of every patch [P, 2], in the processor's window-by-window order, for the vision RoPE."""
    pieces = []
    for t, h, w in np.asarray(grid_thw).tolist():
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        block = (h // spatial_merge_size, spatial_merge_size, w // spatial_merge_size, spatial_merge_size)
        rows = rows.reshape(block).transpose(0, 2, 1, 3).reshape(-1)
        cols = cols.reshape(block).transpose(0, 2, 1, 3).reshape(-1)
        pieces.append(np.tile(np.stack([rows, cols], axis=-1), (t, 1)))
    return np.concatenate(pieces).astype(np.int32)


def frame_segment_ids(grid_thw: np.ndarray, first_id: int = 0) -> np.ndarray:
    """Segment id per patch [P]: one segment per image and per video frame (attention stays inside)."""
    sizes = [h * w for t, h, w in np.asarray(grid_thw).tolist() for _ in range(t)]
    return np.repeat(np.arange(first_id, first_id + len(sizes)), sizes).astype(np.int32)


def visual_token_index(input_ids: np.ndarray, token_id: int, first_index: int = 0) -> np.ndarray:
    """[B, T] index of each `token_id` occurrence into the visual features (row-major order), else -1."""
    is_token = input_ids == token_id
    order = np.cumsum(is_token.reshape(-1)).reshape(is_token.shape) - 1 + first_index
    return np.where(is_token, order, -1).astype(np.int32)


def window_order(grid_thw: np.ndarray, spatial_merge_size: int, window_units: int) -> tuple[np.ndarray, np.ndarray]:
    """Qwen2.5-VL's windows: (order [P], window ids [P]) for the patches of `grid_thw` in the
    processor's order. `order` lists the patches window by window (each frame's grid of merge units
    cut into windows of window_units x window_units, row-major, then the units inside a window
    row-major, a unit's patches together), as transformers' `get_vision_window_index` orders
    them; `window ids` numbers the windows of the reordered patches."""
    unit = spatial_merge_size**2
    order, window_ids, first_unit, first_window = [], [], 0, 0
    for t, h, w in np.asarray(grid_thw).tolist():
        rows, cols = h // spatial_merge_size, w // spatial_merge_size
        for frame in range(t):
            units = np.arange(rows * cols).reshape(rows, cols) + first_unit + frame * rows * cols
            for top in range(0, rows, window_units):
                for left in range(0, cols, window_units):
                    inside = units[top : top + window_units, left : left + window_units].reshape(-1)
                    order.append((inside[:, None] * unit + np.arange(unit)).reshape(-1))
                    window_ids.append(np.full(inside.size * unit, first_window))
                    first_window += 1
        first_unit += t * rows * cols
    return np.concatenate(order).astype(np.int64), np.concatenate(window_ids).astype(np.int32)


def resampled_table_taps(grid_thw: np.ndarray, spatial_merge_size: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Qwen3-VL's learned position table (side x side) resampled to each image's patch grid, bilinear
    with align_corners, as transformers' `get_vision_interpolation_indices_and_weights` computes it
    (in float32): per patch in the processor's order, (table rows [P, 4], weights [P, 4])."""
    rows_cols = patch_positions(grid_thw, spatial_merge_size)
    sizes = np.concatenate([np.tile([h, w], (t * h * w, 1)) for t, h, w in np.asarray(grid_thw).tolist()])
    offsets = np.arange(2, dtype=np.float32)

    def axis_taps(index: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        source = index.astype(np.float32) * np.float32(side - 1) / np.maximum(size - 1, 1).astype(np.float32)
        floor = np.floor(source)
        taps = np.clip(floor.astype(np.int64)[:, None] + offsets.astype(np.int64), 0, side - 1)
        weights = np.clip(1 - np.abs(source[:, None] - floor[:, None] - offsets), 0, None)
        return taps, weights

    row_taps, row_weights = axis_taps(rows_cols[:, 0], sizes[:, 0])
    col_taps, col_weights = axis_taps(rows_cols[:, 1], sizes[:, 1])
    index = (row_taps[:, :, None] * side + col_taps[:, None, :]).reshape(-1, 4)
    weight = (row_weights[:, :, None] * col_weights[:, None, :]).reshape(-1, 4)
    return index.astype(np.int32), weight.astype(np.float32)
