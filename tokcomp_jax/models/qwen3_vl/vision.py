"""The Qwen3-VL vision tower: Qwen2-VL's packed / blocked patches and 2-D RoPE, plus a learned
position embedding resampled to each image's grid, LayerNorm blocks with a two-layer MLP, the 2x2
merger, and one DeepStack merger per tapped block.

The host resamples the square table as transformers does (bilinear, align_corners): each patch gets
4 table rows and their weights (`positions.resampled_table_taps`). The tower returns its merged
tokens packed with their DeepStack features, [tokens, (1 + L) * D] (models.common.decoder.
pack_deepstack), so the features are placed at the visual tokens with them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from tokcomp_jax.models.common.layers import MLP, LayerNorm
from tokcomp_jax.models.common.masks import SegmentMask
from tokcomp_jax.models.common.rope import vision_rope
from tokcomp_jax.models.qwen2_vl.vision import (
    VISION_NORM_EPS,
    PatchEmbed,
    VisionAttention,
    block_keys,
    last_block_attention,
)
from tokcomp_jax.models.qwen3_vl.config import Qwen3VisionConfig


class Qwen3VisionBlock(nnx.Module):
    def __init__(self, config: Qwen3VisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.norm1 = LayerNorm(config.embed_dim, eps=VISION_NORM_EPS, dtype=dtype)
        self.attn = VisionAttention(config, dtype=dtype, rngs=rngs)
        self.norm2 = LayerNorm(config.embed_dim, eps=VISION_NORM_EPS, dtype=dtype)
        self.mlp = MLP(
            config.embed_dim, config.intermediate_size, config.embed_dim, act=config.hidden_act, dtype=dtype, rngs=rngs
        )

    def __call__(self, x, cos, sin, mask, return_probs: bool = True) -> tuple[jax.Array, jax.Array | None]:
        attended, probs = self.attn(self.norm1(x), cos, sin, mask, return_probs)
        x = x + attended
        return x + self.mlp(self.norm2(x)), probs


class Qwen3PatchMerger(nnx.Module):
    """Each 2x2 window of consecutive patches -> one token of the LLM width: [F, P, E] -> [F, P / 4, D].

    The main merger norms each patch before concatenating; a DeepStack merger (`norm_merged`)
    norms the concatenation."""

    def __init__(self, config: Qwen3VisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs, norm_merged: bool):
        self.window = config.spatial_merge_size**2
        merged = config.embed_dim * self.window
        self.norm_merged = norm_merged
        self.norm = LayerNorm(merged if norm_merged else config.embed_dim, eps=VISION_NORM_EPS, dtype=dtype)
        self.mlp = MLP(merged, merged, config.out_hidden_size, act="gelu", dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        merge = lambda y: y.reshape(y.shape[0], y.shape[1] // self.window, -1)  # noqa: E731
        return self.mlp(self.norm(merge(x)) if self.norm_merged else merge(self.norm(x)))


class Qwen3VisionTransformer(nnx.Module):
    """Packed (or blocked) patches -> merged visual tokens with their DeepStack features, packed."""

    def __init__(self, config: Qwen3VisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.config = config
        self.patch_embed = PatchEmbed(config, dtype=dtype, rngs=rngs, bias=True)
        self.pos_embed = nnx.Embed(
            config.num_position_embeddings, config.embed_dim, dtype=dtype, param_dtype=dtype, rngs=rngs
        )
        self.blocks = nnx.List([Qwen3VisionBlock(config, dtype=dtype, rngs=rngs) for _ in range(config.depth)])
        self.merger = Qwen3PatchMerger(config, dtype=dtype, rngs=rngs, norm_merged=False)
        self.deepstack_mergers = nnx.List(
            [
                Qwen3PatchMerger(config, dtype=dtype, rngs=rngs, norm_merged=True)
                for _ in config.deepstack_visual_indexes
            ]
        )

    def __call__(
        self,
        pixel_values: jax.Array,
        patch_positions: jax.Array,
        segment_ids: jax.Array,
        table_index: jax.Array,
        table_weight: jax.Array,
        return_attention: bool = False,
    ):
        """pixel_values [P, patch_dim], (row, col) [P, 2], segment ids [P], position-table taps and
        weights [P, 4] -> tokens [P / merge^2, (1 + L) * D]: the merged token, then its L DeepStack
        features; or blocked, every input with a leading [F, S] -> tokens [F * S / merge^2, ...].

        With return_attention, also the last block's TowerAttention per merged token (as
        Qwen2VisionTransformer)."""
        if pixel_values.ndim == 2:  # packed: one block
            pixel_values, patch_positions, segment_ids, table_index, table_weight = (
                x[None] for x in (pixel_values, patch_positions, segment_ids, table_index, table_weight)
            )
        x = self.patch_embed(pixel_values)
        position = (self.pos_embed(table_index) * table_weight[..., None].astype(x.dtype)).sum(-2)
        x = x + position.astype(x.dtype)
        cos, sin = vision_rope(patch_positions, self.config.head_dim, self.config.rope_theta)
        mask = SegmentMask(segment_ids)
        features = []
        for index, block in enumerate(self.blocks):
            last = return_attention and index == len(self.blocks) - 1
            keys = block_keys(block, x, cos, sin) if last else None
            x, probs = block(x, cos, sin, mask, return_probs=last)
            if index in self.config.deepstack_visual_indexes:
                level = self.config.deepstack_visual_indexes.index(index)
                features.append(self.deepstack_mergers[level](x))
        tokens = jnp.concatenate([self.merger(x), *features], axis=-1)
        tokens = tokens.reshape(-1, tokens.shape[-1])
        if not return_attention:
            return tokens
        return tokens, last_block_attention(probs, mask.dense(), keys, self.config.spatial_merge_size**2)
