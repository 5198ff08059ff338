"""Qwen2-VL in Flax NNX: vision tower + merger, visual tokens placed at the pad tokens, M-RoPE decoder.

Two steps, so the jitted graph sees only arrays:

    inputs = prepare_inputs(config, input_ids=..., pixel_values=..., image_grid_thw=...)  # host, numpy
    output = model(inputs, return_first_layer_attention=True)                             # jit-friendly

`prepare_inputs` takes transformers' argument names and computes what depends on the data
(M-RoPE ids, patch positions, per-frame segments, where each visual token goes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from tokcomp_jax.models.common.config import warn_past_positions
from tokcomp_jax.models.common.decoder import Decoder, LMHead
from tokcomp_jax.models.common.mllm import DecoderMLLM, MLLMOutput, TowerAttention
from tokcomp_jax.models.common.rope import multimodal_rope
from tokcomp_jax.models.qwen2_vl import positions
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.models.qwen2_vl.vision import Qwen2VisionTransformer


@struct.dataclass
class Qwen2VLInputs:
    """Model inputs after host bookkeeping. T text length, P packed patches (images then videos)."""

    # field -> batch axis, for sharding over `data` (pixels etc.: one block per image / frame when blocked)
    BATCH_AXES: ClassVar[dict[str, int]] = {"input_ids": 0, "attention_mask": 0, "position_ids": 1, "visual_token_index": 0,
                                            "pixel_values": 0, "patch_positions": 0, "patch_segment_ids": 0,
                                            "patch_window_ids": 0, "patch_table_index": 0,
                                            "patch_table_weight": 0}  # fmt: skip

    input_ids: jax.Array  # [B, T]
    attention_mask: jax.Array  # [B, T], 1 = real token
    position_ids: jax.Array  # [3, B, T] M-RoPE (t, h, w) ids
    pixel_values: jax.Array | None = None  # [P, patch_dim] packed, or [F, S, patch_dim] one frame per block
    patch_positions: jax.Array | None = None  # [P, 2] or [F, S, 2] (row, col) for the vision RoPE
    patch_segment_ids: jax.Array | None = None  # [P] or [F, S] one id per image / video frame, -1 padding
    patch_window_ids: jax.Array | None = None  # like patch_segment_ids, one id per attention window (Qwen2.5-VL)
    patch_table_index: jax.Array | None = None  # [P, 4] or [F, S, 4] rows of the position table (Qwen3-VL)
    patch_table_weight: jax.Array | None = None  # [P, 4] or [F, S, 4] their bilinear weights
    visual_token_index: jax.Array | None = None  # [B, T] row into the merged visual tokens, -1 for text

    @property
    def visual_token_mask(self) -> jax.Array:
        """[B, T] True where a visual token sits."""
        if self.visual_token_index is None:
            return jnp.zeros_like(self.input_ids, dtype=bool)
        return self.visual_token_index >= 0


Qwen2VLOutput = MLLMOutput


def _check_pixels(name: str, pixels: np.ndarray, grid_thw: np.ndarray | None, config: Qwen2VLConfig) -> None:
    if grid_thw is None:
        raise ValueError(f"{name} given without its grid_thw")
    grid_thw = np.asarray(grid_thw)
    if grid_thw.ndim != 2 or grid_thw.shape[1] != 3:
        raise ValueError(f"{name} grid_thw must be [num, 3], got shape {grid_thw.shape}")
    merge = config.vision.spatial_merge_size
    if np.any(grid_thw[:, 1:] % merge) or np.any(grid_thw <= 0):
        raise ValueError(f"{name} grid_thw {grid_thw.tolist()}: h and w must be positive multiples of {merge}")
    if pixels.ndim != 2 or pixels.shape[1] != config.vision.patch_dim:
        raise ValueError(f"{name} must be [patches, {config.vision.patch_dim}], got shape {pixels.shape}")
    if pixels.shape[0] != int(grid_thw.prod(-1).sum()):
        raise ValueError(f"{name} has {pixels.shape[0]} patches but grid_thw implies {int(grid_thw.prod(-1).sum())}")


def prepare_inputs(
    config: Qwen2VLConfig,
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None = None,
    pixel_values: np.ndarray | None = None,
    image_grid_thw: np.ndarray | None = None,
    pixel_values_videos: np.ndarray | None = None,
    video_grid_thw: np.ndarray | None = None,
    patch_bucket: int | None = None,
    frame_patches: int | None = None,
    window_units: int | None = None,
    video_time_steps: Sequence[float] | None = None,
    position_table_side: int | None = None,
) -> Qwen2VLInputs:
    """Host bookkeeping for one batch; arguments as in transformers' Qwen2-VL forward.

    `patch_bucket` pads the packed patches to a fixed count (a multiple of merge^2) so images
    of different sizes share one compiled graph; padded patches form their own segment and
    their merged tokens are never placed in the sequence. `frame_patches` instead pads every
    image / video frame to its own block of that many patches ([F, S, patch_dim]; with
    `patch_bucket`, F = patch_bucket // frame_patches), so the vision tower's attention costs
    F * S^2 rather than (F * S)^2: the layout for batches of many images.

    Qwen2.5-VL: `window_units` (window side in merge units) orders each frame's patches window by
    window, as its vision tower does, and gives each patch its window id (the merged tokens are
    placed back in the processor's order through `visual_token_index`); `video_time_steps` (per
    video: tokens_per_second x seconds per temporal patch) spaces the videos' temporal positions.
    """
    input_ids = np.asarray(input_ids)
    if input_ids.ndim != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids must be a non-empty [batch, length] array, got shape {input_ids.shape}")
    attention_mask = np.ones_like(input_ids) if attention_mask is None else np.asarray(attention_mask)
    merge = config.vision.spatial_merge_size
    media = [
        (name, np.asarray(pixels), np.asarray(grid) if grid is not None else None, token)
        for name, pixels, grid, token in (
            ("pixel_values", pixel_values, image_grid_thw, config.image_token_id),
            ("pixel_values_videos", pixel_values_videos, video_grid_thw, config.video_token_id),
        )
        if pixels is not None
    ]
    for name, values, grid, token in media:
        _check_pixels(name, values, grid, config)
        expected, found = _num_visual_tokens(grid, merge), int((input_ids == token).sum())
        if found != expected:
            raise ValueError(f"{name}: grid_thw gives {expected} visual tokens but input_ids holds {found} pad tokens")
    position_ids = positions.rope_index(
        input_ids,
        attention_mask,
        image_grid_thw,
        video_grid_thw,
        image_token_id=config.image_token_id,
        video_token_id=config.video_token_id,
        spatial_merge_size=merge,
        video_time_steps=video_time_steps,
    )
    warn_past_positions(config.text, position_ids, attention_mask)
    inputs = Qwen2VLInputs(
        input_ids=jnp.asarray(input_ids, jnp.int32),
        attention_mask=jnp.asarray(attention_mask, jnp.int32),
        position_ids=jnp.asarray(position_ids),
    )
    if not media:
        return inputs
    grids = np.concatenate([grid for _, _, grid, _ in media])
    patches = {  # per-patch arrays [P, ...], in the processor's order, and the value that pads each
        "pixel_values": (np.concatenate([values.astype(np.float32) for _, values, _, _ in media]), 0),
        "patch_positions": (positions.patch_positions(grids, merge), 0),
        "patch_segment_ids": (positions.frame_segment_ids(grids), -1),
    }
    if position_table_side is not None:
        table_index, table_weight = positions.resampled_table_taps(grids, merge, position_table_side)
        patches |= {"patch_table_index": (table_index, 0), "patch_table_weight": (table_weight, 0)}
    token_index, num_tokens = np.full(input_ids.shape, -1, np.int32), 0
    for _, _, grid, token in media:
        token_index = np.maximum(token_index, positions.visual_token_index(input_ids, token, num_tokens))
        num_tokens += _num_visual_tokens(grid, merge)
    if window_units is not None:
        order, windows = positions.window_order(grids, merge, window_units)
        patches = {name: (values[order], pad) for name, (values, pad) in patches.items()}
        patches["patch_window_ids"] = (windows, -1)
        token_order = order[:: merge**2] // merge**2  # merged token k of the tower is token_order[k] of the processor
        token_index = _move_tokens(token_index, np.argsort(token_order))
    if frame_patches is not None:
        patches, token_slot = _block_frames(patches, frame_patches, patch_bucket, merge**2)
        token_index = _move_tokens(token_index, token_slot)
    elif patch_bucket is not None:
        patches = _pad_patches(patches, patch_bucket, merge**2)
    return inputs.replace(
        **{name: jnp.asarray(values) for name, (values, _) in patches.items()},
        visual_token_index=jnp.asarray(token_index),
    )


def _move_tokens(token_index: np.ndarray, new_row: np.ndarray) -> np.ndarray:
    """visual_token_index [B, T] after the merged tokens moved: row r is now new_row[r]."""
    return np.where(token_index >= 0, new_row[np.maximum(token_index, 0)], -1).astype(np.int32)


def _num_visual_tokens(grid_thw: np.ndarray, merge: int) -> int:
    """Merged visual tokens of all images (or videos) of a grid [num, 3]."""
    return int(grid_thw.prod(-1).sum()) // merge**2


Patches = dict[str, tuple[np.ndarray, int]]  # field -> (per-patch values [P, ...], padding value)


def _pad_patches(patches: Patches, bucket: int, window: int) -> Patches:
    if bucket % window:
        raise ValueError(f"patch_bucket {bucket} must be a multiple of the merge window {window}")
    pad = bucket - len(patches["pixel_values"][0])
    if pad < 0:
        raise ValueError(f"{len(patches['pixel_values'][0])} patches do not fit patch_bucket {bucket}")
    return {
        name: (np.pad(values, [(0, pad)] + [(0, 0)] * (values.ndim - 1), constant_values=fill), fill)
        for name, (values, fill) in patches.items()
    }


def _block_frames(patches: Patches, frame_patches: int, patch_bucket: int | None, window: int):
    """Packed [P, ...] -> one padded block per frame [F, S, ...], and each packed merged token's row
    in the blocked tokens [F * S / window]."""
    if frame_patches % window:
        raise ValueError(f"frame_patches {frame_patches} must be a multiple of the merge window {window}")
    segments = patches["patch_segment_ids"][0]
    starts = np.flatnonzero(np.r_[True, segments[1:] != segments[:-1]])
    sizes = np.diff(np.r_[starts, len(segments)])
    if sizes.max() > frame_patches:
        raise ValueError(f"a frame of {sizes.max()} patches does not fit frame_patches {frame_patches}")
    num_blocks = len(sizes) if patch_bucket is None else patch_bucket // frame_patches
    if len(sizes) > num_blocks:
        raise ValueError(f"{len(sizes)} frames do not fit patch_bucket {patch_bucket} // {frame_patches}")
    blocked = {
        name: (np.full((num_blocks, frame_patches, *values.shape[1:]), fill, values.dtype), fill)
        for name, (values, fill) in patches.items()
    }
    token_slot = []
    for block, (start, size) in enumerate(zip(starts, sizes, strict=True)):
        for name, (values, _) in patches.items():
            blocked[name][0][block, :size] = values[start : start + size]
        token_slot.append(block * (frame_patches // window) + np.arange(size // window))
    return blocked, np.concatenate(token_slot).astype(np.int32)


class Qwen2VL(DecoderMLLM):
    """Qwen2-VL for conditional generation (transformers' `Qwen2VLForConditionalGeneration`)."""

    def __init__(self, config: Qwen2VLConfig, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
        self.config = config
        self.visual = Qwen2VisionTransformer(config.vision, dtype=dtype, rngs=rngs)
        self.language_model = Decoder(config.text, dtype=dtype, rngs=rngs)
        self.lm_head = LMHead(config.text, dtype=dtype, rngs=rngs)

    def embed(self, inputs: Qwen2VLInputs, return_vision_attention: bool = False):
        """Token embeddings with the merged visual tokens placed at the image/video pad tokens: [B, T, D].

        With return_vision_attention, also the vision tower's last block at each visual token, a
        TowerAttention ([B, T] received, [B, T, d] keys; 0 at text), for vision-encoder-attention methods.
        """
        embeds = self.embed_text(inputs.input_ids)
        if inputs.pixel_values is None:
            none = TowerAttention.none(embeds.shape[:2], self.config.vision.head_dim)
            return (embeds, none) if return_vision_attention else embeds
        tower = self.vision_tower(inputs, return_attention=return_vision_attention)
        visual, attention = tower if return_vision_attention else (tower, None)
        index = jnp.maximum(inputs.visual_token_index, 0)
        is_visual = inputs.visual_token_mask
        embeds = jnp.where(is_visual[..., None], visual.astype(embeds.dtype)[index], embeds)
        if not return_vision_attention:
            return embeds
        return embeds, attention.placed(index, is_visual)

    def vision_tower(self, inputs: Qwen2VLInputs, return_attention: bool = False):
        """The merged visual tokens [N, D]; with return_attention, also the tower's last block at each,
        a TowerAttention ([N], [N, d]; only then does that block take the reference attention path)."""
        return self.visual(
            inputs.pixel_values,
            inputs.patch_positions,
            inputs.patch_segment_ids,
            inputs.patch_window_ids,
            return_attention=return_attention,
        )

    def rope(self, position_ids: jax.Array, dtype: jnp.dtype) -> tuple[jax.Array, jax.Array]:
        """M-RoPE tables [B, T, head_dim] for position ids [3, B, T]."""
        text = self.config.text
        return multimodal_rope(
            position_ids, text.head_dim, text.rope_theta, text.mrope_section, dtype, text.mrope_interleaved
        )
