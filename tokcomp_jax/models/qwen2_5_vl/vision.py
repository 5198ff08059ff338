"""The Qwen2.5-VL vision tower: Qwen2-VL's, with RMSNorm and gated-MLP blocks, an RMSNorm merger,
and window attention in every block but `fullatt_block_indexes`.

The host orders each frame's patches window by window and gives every patch its window id
(`positions.window_order`); a windowed block's mask is then "same window", a full block's "same
image or frame", on the same patch sequence. transformers instead reorders inside the forward
and puts the merged tokens back with the inverse order; here `visual_token_index` does that.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from tokcomp_jax.models.common.layers import GatedMLP, RMSNorm
from tokcomp_jax.models.common.masks import SegmentMask, WindowMask
from tokcomp_jax.models.qwen2_5_vl.config import Qwen25VisionConfig
from tokcomp_jax.models.qwen2_vl.vision import (
    VISION_NORM_EPS,
    PatchEmbed,
    PatchMerger,
    Qwen2VisionTransformer,
    VisionAttention,
)


class Qwen25VisionBlock(nnx.Module):
    def __init__(self, config: Qwen25VisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.norm1 = RMSNorm(config.embed_dim, eps=VISION_NORM_EPS, dtype=dtype)
        self.attn = VisionAttention(config, dtype=dtype, rngs=rngs)
        self.norm2 = RMSNorm(config.embed_dim, eps=VISION_NORM_EPS, dtype=dtype)
        self.mlp = GatedMLP(
            config.embed_dim, config.intermediate_size, act=config.hidden_act, bias=True, dtype=dtype, rngs=rngs
        )

    def __call__(self, x, cos, sin, mask, return_probs: bool = True) -> tuple[jax.Array, jax.Array | None]:
        attended, probs = self.attn(self.norm1(x), cos, sin, mask, return_probs)
        x = x + attended
        return x + self.mlp(self.norm2(x)), probs


class Qwen25VisionTransformer(Qwen2VisionTransformer):
    """Window-ordered patches (and their window ids) -> merged visual tokens in the same order."""

    def __init__(self, config: Qwen25VisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.config = config
        self.patch_embed = PatchEmbed(config, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([Qwen25VisionBlock(config, dtype=dtype, rngs=rngs) for _ in range(config.depth)])
        self.merger = PatchMerger(config, dtype=dtype, rngs=rngs, norm=RMSNorm)

    def block_masks(self, segment_ids: jax.Array, window_ids: jax.Array | None) -> list[SegmentMask]:
        """Same image / frame in the full-attention blocks, same window in the others (a WindowMask:
        outside the reference, each query attends only the keys near it); each [F, P, P]."""
        if window_ids is None:
            raise ValueError("Qwen2.5-VL's vision tower needs the patches' window ids (prepare_inputs gives them)")
        full, windowed = SegmentMask(segment_ids), WindowMask(window_ids, self.config.window_patches)
        return [full if index in self.config.fullatt_block_indexes else windowed for index in range(len(self.blocks))]
