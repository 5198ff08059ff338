"""LLaVA-OneVision in Flax NNX: SigLIP over image tiles / video frames, a 2-layer MLP projector,
visual tokens built by host-planned gathers (anyres grid, unpad, downsampling, newlines; video
pooling), and the Qwen2 decoder with 1-D RoPE.

    inputs = prepare_llava_inputs(config, input_ids=..., pixel_values=..., image_sizes=...)  # host
    output = model(inputs, return_first_layer_attention=True)                               # jit-friendly

Arguments are named as transformers' LlavaOnevisionForConditionalGeneration names them.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from tokcomp_jax.models.common.config import warn_past_positions
from tokcomp_jax.models.common.decoder import Decoder, LMHead
from tokcomp_jax.models.common.layers import activation, linear
from tokcomp_jax.models.common.mllm import DecoderMLLM, TowerAttention
from tokcomp_jax.models.common.rope import text_rope
from tokcomp_jax.models.common.siglip import SiglipVisionTower, pad_tiles
from tokcomp_jax.models.llava_onevision import layout as llava_layout
from tokcomp_jax.models.llava_onevision.config import LlavaOnevisionConfig


@struct.dataclass
class LlavaOnevisionInputs:
    """Model inputs after host bookkeeping. P tiles (images' tiles, then video frames), padded."""

    BATCH_AXES: ClassVar[dict[str, int]] = {"input_ids": 0, "attention_mask": 0, "position_ids": 0, "pixel_values": 0,
                                            "visual_sources": 0, "visual_weights": 0, "newline_mask": 0}  # fmt: skip

    input_ids: jax.Array  # [B, T]
    attention_mask: jax.Array  # [B, T], 1 = real token
    position_ids: jax.Array  # [B, T]
    pixel_values: jax.Array | None = None  # [P, C, S, S]
    visual_sources: jax.Array | None = None  # [B, T, 4] rows of the flat projected tile features
    visual_weights: jax.Array | None = None  # [B, T, 4] their weights (0 at text and newlines)
    newline_mask: jax.Array | None = None  # [B, T] the learned image_newline goes here

    @property
    def visual_token_mask(self) -> jax.Array:
        """[B, T] True at every visual token (features and newlines)."""
        if self.visual_weights is None:
            return jnp.zeros_like(self.input_ids, dtype=bool)
        return (self.visual_weights != 0).any(-1) | self.newline_mask


class Projector(nnx.Module):
    """linear_2(act(linear_1(x))): vision width -> LLM width."""

    def __init__(self, config: LlavaOnevisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        bias, width = config.multimodal_projector_bias, config.text.hidden_size
        self.linear_1 = linear(config.vision.hidden_size, width, bias=bias, dtype=dtype, rngs=rngs)
        self.linear_2 = linear(width, width, bias=bias, dtype=dtype, rngs=rngs)
        self.act = activation(config.projector_hidden_act)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear_2(self.act(self.linear_1(x)))


class LlavaOnevision(DecoderMLLM):
    """LLaVA-OneVision for conditional generation (transformers' `LlavaOnevisionForConditionalGeneration`)."""

    def __init__(self, config: LlavaOnevisionConfig, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
        self.config = config
        self.vision_tower = SiglipVisionTower(config.vision, dtype=dtype, rngs=rngs)
        self.multi_modal_projector = Projector(config, dtype=dtype, rngs=rngs)
        self.image_newline = nnx.Param(jnp.zeros((config.text.hidden_size,), dtype))
        self.language_model = Decoder(config.text, dtype=dtype, rngs=rngs)
        self.lm_head = LMHead(config.text, dtype=dtype, rngs=rngs)

    def embed(self, inputs: LlavaOnevisionInputs, return_vision_attention: bool = False):
        """Token embeddings with the planned visual tokens placed: [B, T, D].

        With return_vision_attention, also the TowerAttention of each visual token's source patches in
        the tower's last layer run, mixed by the same plan weights (0 at text and newlines), as
        Qwen2VL.embed returns it.
        """
        embeds = self.embed_text(inputs.input_ids)
        if inputs.pixel_values is None:
            none = TowerAttention.none(embeds.shape[:2], self.config.vision.head_dim)
            return (embeds, none) if return_vision_attention else embeds
        tower = self.vision_tower(
            inputs.pixel_values, self.config.vision_feature_layer, return_attention=return_vision_attention
        )
        tiles, attention = tower if return_vision_attention else (tower, None)
        features = self.multi_modal_projector(tiles).reshape(-1, embeds.shape[-1]).astype(embeds.dtype)
        taps = features[inputs.visual_sources]  # [B, T, 4, D]
        visual = jnp.einsum("BTKD,BTK->BTD", taps, inputs.visual_weights.astype(embeds.dtype))
        visual = jnp.where(inputs.newline_mask[..., None], self.image_newline[...].astype(embeds.dtype), visual)
        embeds = jnp.where(inputs.visual_token_mask[..., None], visual, embeds)
        if not return_vision_attention:
            return embeds
        is_patch = inputs.visual_token_mask & ~inputs.newline_mask
        mix = lambda values: jnp.where(  # noqa: E731  per patch [tiles, P, ...] -> per token [B, T, ...]
            is_patch.reshape(is_patch.shape + (1,) * (values.ndim - 2)),
            jnp.einsum("BTK...,BTK->BT...", values.reshape(-1, *values.shape[2:])[inputs.visual_sources],
                       inputs.visual_weights),
            0.0,
        )  # fmt: skip
        return embeds, jax.tree.map(mix, attention)

    def rope(self, position_ids: jax.Array, dtype: jnp.dtype) -> tuple[jax.Array, jax.Array]:
        """1-D RoPE tables [B, T, head_dim] for positions [B, T]."""
        return text_rope(position_ids, self.config.text.head_dim, self.config.text.rope_theta, dtype)


def prepare_llava_inputs(
    config: LlavaOnevisionConfig,
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None = None,
    pixel_values: np.ndarray | None = None,
    image_sizes: np.ndarray | None = None,
    pixel_values_videos: np.ndarray | None = None,
    batch_num_images: np.ndarray | None = None,
    tile_bucket: int | None = None,
) -> LlavaOnevisionInputs:
    """Host bookkeeping for one right-padded batch, arguments as transformers names them.

    pixel_values [num_images, max_tiles, C, S, S] with image_sizes [num_images, 2] (height, width);
    pixel_values_videos [num_videos, frames, C, S, S]. As in transformers, images are tiled (anyres)
    unless `batch_num_images` says their sample holds several. `tile_bucket` pads the tiles to a
    fixed count, so images of different sizes share one compiled graph.
    """
    input_ids = np.asarray(input_ids)
    if input_ids.ndim != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids must be a non-empty [batch, length] array, got shape {input_ids.shape}")
    attention_mask = np.ones_like(input_ids) if attention_mask is None else np.asarray(attention_mask)
    position_ids = np.broadcast_to(np.arange(input_ids.shape[1]), input_ids.shape)
    warn_past_positions(config.text, position_ids, attention_mask)
    inputs = LlavaOnevisionInputs(
        input_ids=jnp.asarray(input_ids, jnp.int32),
        attention_mask=jnp.asarray(attention_mask, jnp.int32),
        position_ids=jnp.asarray(position_ids, jnp.int32),
    )
    if pixel_values is None and pixel_values_videos is None:
        return inputs
    side = config.vision.grid_side
    tiles, plans = [], {}
    if pixel_values is not None:
        image_plans = []
        tiled = _tiled_images(len(image_sizes), batch_num_images)
        for image, (size, is_tiled) in enumerate(zip(np.asarray(image_sizes).tolist(), tiled, strict=True)):
            count = llava_layout.num_tiles(tuple(size), config.image_grid_pinpoints, config.vision.image_size)
            count = count if is_tiled else 1
            plan = llava_layout.image_plan(
                tuple(size), config.image_grid_pinpoints, config.vision.image_size, side, config.max_tiles, is_tiled
            )
            image_plans.append(_offset(plan, len(tiles) * side * side))
            tiles.extend(np.asarray(pixel_values[image][:count], np.float32))
        plans[config.image_token_id] = llava_layout.concat(image_plans)
    if pixel_values_videos is not None:
        video_plans = []
        for video in np.asarray(pixel_values_videos, np.float32):
            video_plans.append(_offset(llava_layout.video_plan(len(video), side), len(tiles) * side * side))
            tiles.extend(video)
        plans[config.video_token_id] = llava_layout.concat(video_plans)
    sources = np.zeros((*input_ids.shape, 4), np.int32)
    weights = np.zeros((*input_ids.shape, 4), np.float32)
    newline = np.zeros(input_ids.shape, bool)
    for token, (plan_sources, plan_weights, plan_newline) in plans.items():
        where = (input_ids == token) & attention_mask.astype(bool)
        if where.sum() != len(plan_sources):
            name = "image" if token == config.image_token_id else "video"
            raise ValueError(
                f"the {name}s make {len(plan_sources)} tokens but input_ids holds {where.sum()} {name} tokens"
            )
        sources[where], weights[where], newline[where] = plan_sources, plan_weights, plan_newline
    tiles = pad_tiles(np.stack(tiles), tile_bucket)
    return inputs.replace(
        pixel_values=jnp.asarray(tiles),
        visual_sources=jnp.asarray(sources),
        visual_weights=jnp.asarray(weights),
        newline_mask=jnp.asarray(newline),
    )


def _tiled_images(num_images: int, batch_num_images) -> list[bool]:
    """transformers' rule: an image is tiled unless its sample holds several images."""
    if batch_num_images is None:
        return [True] * num_images
    tiled = [count == 1 for count in np.asarray(batch_num_images).tolist() for _ in range(count)]
    if len(tiled) != num_images:
        raise ValueError(f"batch_num_images sums to {len(tiled)} but there are {num_images} images")
    return tiled


def _offset(plan: llava_layout.Plan, rows: int) -> llava_layout.Plan:
    sources, weights, newline = plan
    return sources + rows, weights, newline
