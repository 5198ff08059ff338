"""The Qwen2-VL vision tower: patch embedding, 2-D rotary ViT blocks, 2x2 patch merger.

Patches of all images and video frames come packed into one sequence [P, patch_dim]; each
patch attends only within its own image or frame, which under jit is a block-diagonal mask
built from per-patch segment ids (transformers splits the sequence at `cu_seqlens` instead).
For batches of many images, the host can instead pad every frame to a fixed block of S patches,
[F, S, patch_dim]: attention then costs F * S^2 instead of (F * S)^2, with the same result.
The host computes patch positions and segment ids (`tokcomp_jax.models.positions`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from tokcomp_jax.models.common.attention import attention_output
from tokcomp_jax.models.common.layers import MLP, LayerNorm, linear
from tokcomp_jax.models.common.masks import SegmentMask, dense_mask
from tokcomp_jax.models.common.mllm import TowerAttention, last_block_keys
from tokcomp_jax.models.common.rope import apply_rotary, vision_rope
from tokcomp_jax.models.qwen2_vl.config import Qwen2VisionConfig

VISION_NORM_EPS = 1e-6


class PatchEmbed(nnx.Module):
    """Flattened patches [P, C*T*p*p] -> [P, E]: the Conv3d with kernel = stride = patch, as a matmul."""

    def __init__(self, config: Qwen2VisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs, bias: bool = False):
        self.proj = linear(config.patch_dim, config.embed_dim, bias=bias, dtype=dtype, rngs=rngs)

    def __call__(self, pixel_values: jax.Array) -> jax.Array:
        return self.proj(pixel_values.astype(self.proj.kernel.dtype))


class VisionAttention(nnx.Module):
    """Multi-head self-attention over blocks of patches with 2-D RoPE and a segment mask."""

    def __init__(self, config: Qwen2VisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.num_heads = config.num_heads
        self.qkv = linear(config.embed_dim, 3 * config.embed_dim, bias=True, dtype=dtype, rngs=rngs)
        self.proj = linear(config.embed_dim, config.embed_dim, bias=True, dtype=dtype, rngs=rngs)
        self.attention_implementation = "auto"  # without return_probs (attention.configure_attention)

    def __call__(self, x, cos, sin, mask, return_probs: bool = True) -> tuple[jax.Array, jax.Array | None]:
        """x [F, P, E], float32 rope tables [F, P, H], mask [F, P, P] (a SegmentMask or WindowMask) -> [F, P, E],
        probabilities [F, N, P, P] (None without return_probs)."""
        blocks, num_patches = x.shape[:2]
        output, probs = attention_output(*self.project(x, cos, sin), mask, self.attention_implementation, return_probs)
        return self.proj(output.reshape(blocks, num_patches, -1)), probs

    def project(self, x, cos, sin) -> tuple[jax.Array, jax.Array, jax.Array]:
        """x [F, P, E] -> query and key (after the rotary embedding) and value, each [F, P, heads, d]."""
        qkv = self.qkv(x).reshape(*x.shape[:2], 3, self.num_heads, -1)
        query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # indexed, not unpacked: also on a global array
        query = apply_rotary(query.astype(jnp.float32), cos, sin).astype(x.dtype)
        key = apply_rotary(key.astype(jnp.float32), cos, sin).astype(x.dtype)
        return query, key, value


class VisionBlock(nnx.Module):
    def __init__(self, config: Qwen2VisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.norm1 = LayerNorm(config.embed_dim, eps=VISION_NORM_EPS, dtype=dtype)
        self.attn = VisionAttention(config, dtype=dtype, rngs=rngs)
        self.norm2 = LayerNorm(config.embed_dim, eps=VISION_NORM_EPS, dtype=dtype)
        hidden = config.embed_dim * config.mlp_ratio
        self.mlp = MLP(config.embed_dim, hidden, config.embed_dim, act=config.hidden_act, dtype=dtype, rngs=rngs)

    def __call__(self, x, cos, sin, mask, return_probs: bool = True) -> tuple[jax.Array, jax.Array | None]:
        attended, probs = self.attn(self.norm1(x), cos, sin, mask, return_probs)
        x = x + attended
        return x + self.mlp(self.norm2(x)), probs


class PatchMerger(nnx.Module):
    """Norm, then concatenate each 2x2 window of consecutive patches and project to the LLM width.

    [F, P, E] -> [F, P / merge^2, D]. The image processor already orders patches window by window.
    """

    def __init__(self, config, *, dtype: jnp.dtype, rngs: nnx.Rngs, norm=LayerNorm):
        self.window = config.spatial_merge_size**2
        merged = config.embed_dim * self.window
        self.ln_q = norm(config.embed_dim, eps=VISION_NORM_EPS, dtype=dtype)
        self.mlp = MLP(merged, merged, config.out_hidden_size, act="gelu", dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.ln_q(x)
        return self.mlp(x.reshape(x.shape[0], x.shape[1] // self.window, -1))


class Qwen2VisionTransformer(nnx.Module):
    """Packed (or blocked) patches -> merged visual tokens, one per 2x2 patch window."""

    def __init__(self, config: Qwen2VisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.config = config
        self.patch_embed = PatchEmbed(config, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([VisionBlock(config, dtype=dtype, rngs=rngs) for _ in range(config.depth)])
        self.merger = PatchMerger(config, dtype=dtype, rngs=rngs)

    def block_masks(self, segment_ids: jax.Array, window_ids: jax.Array | None) -> list[SegmentMask]:
        """The attention mask [F, P, P] of each block: every block attends within an image / frame."""
        del window_ids
        return [SegmentMask(segment_ids)] * len(self.blocks)

    def __call__(
        self,
        pixel_values: jax.Array,
        patch_positions: jax.Array,
        segment_ids: jax.Array,
        window_ids: jax.Array | None = None,
        return_attention: bool = False,
    ):
        """pixel_values [P, patch_dim], (row, col) [P, 2], segment ids [P] -> tokens [P / merge^2, D];
        or blocked, [F, S, patch_dim], [F, S, 2], [F, S] -> tokens [F * S / merge^2, D]. `window_ids`
        (like segment ids) are for towers with windowed blocks (Qwen2.5-VL).

        With return_attention, also the last block's TowerAttention per merged token: the attention it
        received (mean over heads and over the queries of its image/frame (or window), mean over its
        window) and its keys after rotary (mean over heads and its window).
        """
        if pixel_values.ndim == 2:  # packed: one block
            pixel_values, patch_positions, segment_ids = pixel_values[None], patch_positions[None], segment_ids[None]
            window_ids = None if window_ids is None else window_ids[None]
        x = self.patch_embed(pixel_values)
        cos, sin = vision_rope(patch_positions, self.config.head_dim, self.config.rope_theta)
        masks = self.block_masks(segment_ids, window_ids)
        for index, (block, mask) in enumerate(zip(self.blocks, masks, strict=True)):
            last = return_attention and index == len(self.blocks) - 1
            keys = block_keys(block, x, cos, sin) if last else None
            x, probs = block(x, cos, sin, mask, return_probs=last)
        tokens = self.merger(x).reshape(-1, self.config.out_hidden_size)
        if not return_attention:
            return tokens
        return tokens, last_block_attention(probs, dense_mask(masks[-1]), keys, self.config.spatial_merge_size**2)


def block_keys(block, x, cos, sin) -> jax.Array:
    """The keys [F, P, heads, d] a vision block's attention computes from its input x [F, P, E]."""
    return block.attn.project(block.norm1(x), cos, sin)[1]


def last_block_attention(probs: jax.Array, mask: jax.Array, keys: jax.Array, window: int) -> TowerAttention:
    """The last block's probabilities [F, heads, P, P] (under mask [F, P, P]) and keys [F, P, heads, d]
    -> TowerAttention per merged token: [F * P / window] and [F * P / window, d]."""
    queries = mask.sum(1)  # per patch, its segment's (or window's) queries
    received = probs.astype(jnp.float32).mean(1).sum(1) / queries
    keys = last_block_keys(keys, window)
    return TowerAttention(received.reshape(-1, window).mean(-1), keys.reshape(-1, keys.shape[-1]))
