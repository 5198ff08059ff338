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


def _grid_positions(start: int, grid_thw: np.ndarray, merge: int) -> np.ndarray:
    """(t, h, w) ids [3, t * h/m * w/m] of one image or video's visual tokens, offset by `start`."""
    t, h, w = int(grid_thw[0]), int(grid_thw[1]) // merge, int(grid_thw[2]) // merge
    tt, hh, ww = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
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
) -> np.ndarray:
    """M-RoPE position ids [3, B, T], equal to transformers' `Qwen2VLModel.get_rope_index`.

    Text runs count up by one on all three axes; an image or video run takes (t, h, w) grid ids
    offset by the running position, after which text resumes at offset + max(h, w) / merge.
    Padding positions (attention_mask == 0) are 0. Without any image or video the ids are
    0..T-1, as transformers uses for text-only input.
    """
    batch, length = input_ids.shape
    if image_grid_thw is None and video_grid_thw is None:
        return np.broadcast_to(np.arange(length), (3, batch, length)).astype(np.int32)
    mask = np.ones_like(input_ids, dtype=bool) if attention_mask is None else attention_mask.astype(bool)
    grids = {
        IMAGE: iter(np.asarray(image_grid_thw if image_grid_thw is not None else np.zeros((0, 3)))),
        VIDEO: iter(np.asarray(video_grid_thw if video_grid_thw is not None else np.zeros((0, 3)))),
    }
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
            pieces.append(_grid_positions(current, grid, spatial_merge_size))
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
