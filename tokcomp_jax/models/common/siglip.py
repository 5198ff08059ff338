"""The SigLIP vision tower (LLaVA-OneVision, VILA1.5): patch embedding, learned positions, pre-norm
ViT layers. Images are fixed-size tiles, [B, C, H, W] as the image processors return them.

    tower = SiglipVisionTower(config, dtype=jnp.float32, rngs=nnx.Rngs(0))
    features = tower(pixel_values, feature_layer=-1)   # [B, N, D], hidden state of the last layer

`feature_layer` indexes transformers' `hidden_states` (0: embeddings, i: after layer i, -1: the last
layer, before the post-layernorm), which is what the MLLMs' projectors read.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax.models.common.attention import attention_output
from tokcomp_jax.models.common.config import SiglipVisionConfig
from tokcomp_jax.models.common.layers import MLP, LayerNorm, linear
from tokcomp_jax.models.common.masks import SegmentMask
from tokcomp_jax.models.common.mllm import TowerAttention, last_block_keys


def patchify(pixel_values: jax.Array, patch: int) -> jax.Array:
    """[B, C, H, W] -> [B, (H // p) * (W // p), C * p * p], patches row by row, each flattened (c, y, x)
    as torch's Conv2d weight is; pixels past the last whole patch are dropped, as the stride-p conv does."""
    batch, channels, height, width = pixel_values.shape
    rows, cols = height // patch, width // patch
    x = pixel_values[:, :, : rows * patch, : cols * patch].reshape(batch, channels, rows, patch, cols, patch)
    return x.transpose(0, 2, 4, 1, 3, 5).reshape(batch, rows * cols, -1)


def pad_tiles(tiles: np.ndarray, bucket: int | None) -> np.ndarray:
    """Host side: tiles [P, C, S, S] zero-padded to `bucket` tiles (None: as they are), so batches of
    different tile counts share one compiled graph."""
    if bucket is None:
        return tiles
    if len(tiles) > bucket:
        raise ValueError(f"{len(tiles)} tiles do not fit tile_bucket {bucket}")
    return np.pad(tiles, ((0, bucket - len(tiles)), (0, 0), (0, 0), (0, 0)))


class SiglipEmbeddings(nnx.Module):
    def __init__(self, config: SiglipVisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.patch = config.patch_size
        patch_dim = config.num_channels * config.patch_size**2
        self.patch_embedding = linear(patch_dim, config.hidden_size, bias=True, dtype=dtype, rngs=rngs)
        self.position_embedding = nnx.Embed(
            config.num_patches, config.hidden_size, dtype=dtype, param_dtype=dtype, rngs=rngs
        )

    def __call__(self, pixel_values: jax.Array) -> jax.Array:
        patches = patchify(pixel_values.astype(self.patch_embedding.kernel.dtype), self.patch)
        if patches.shape[1] != self.position_embedding.num_embeddings:
            raise ValueError(
                f"{patches.shape[1]} patches, but the tower has {self.position_embedding.num_embeddings} positions"
            )
        return self.patch_embedding(patches) + self.position_embedding.embedding[...][None]


class SiglipAttention(nnx.Module):
    def __init__(self, config: SiglipVisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        dim, self.num_heads = config.hidden_size, config.num_attention_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (
            linear(dim, dim, bias=True, dtype=dtype, rngs=rngs) for _ in range(4)
        )
        self.attention_implementation = "auto"  # without return_probs (attention.configure_attention)

    def __call__(self, x: jax.Array, return_probs: bool = True) -> tuple[jax.Array, jax.Array | None]:
        """[B, N, D] -> output [B, N, D], probabilities [B, heads, N, N] (None without return_probs)."""
        batch, length, dim = x.shape
        heads = [proj(x).reshape(batch, length, self.num_heads, -1) for proj in (self.q_proj, self.k_proj, self.v_proj)]
        mask = SegmentMask(jnp.zeros((batch, length), jnp.int32))  # one segment: full attention
        output, probs = attention_output(*heads, mask, self.attention_implementation, return_probs)
        return self.out_proj(output.reshape(batch, length, dim)), probs


class SiglipEncoderLayer(nnx.Module):
    """x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, config: SiglipVisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        dim, eps = config.hidden_size, config.layer_norm_eps
        self.layer_norm1 = LayerNorm(dim, eps=eps, dtype=dtype)
        self.self_attn = SiglipAttention(config, dtype=dtype, rngs=rngs)
        self.layer_norm2 = LayerNorm(dim, eps=eps, dtype=dtype)
        self.mlp = MLP(dim, config.intermediate_size, dim, act=config.hidden_act, dtype=dtype, rngs=rngs)

    def keys(self, x: jax.Array) -> jax.Array:
        """The keys [B, N, heads, d] this layer's attention computes from its input x [B, N, D]."""
        keys = self.self_attn.k_proj(self.layer_norm1(x))
        return keys.reshape(*keys.shape[:2], self.self_attn.num_heads, -1)

    def __call__(self, x: jax.Array, return_probs: bool = True) -> tuple[jax.Array, jax.Array | None]:
        """[B, N, D] -> hidden states [B, N, D], attention probabilities [B, heads, N, N] (or None)."""
        attended, probs = self.self_attn(self.layer_norm1(x), return_probs)
        x = x + attended
        return x + self.mlp(self.layer_norm2(x)), probs


class SiglipVisionTower(nnx.Module):
    """transformers' `SiglipVisionModel` without the pooling head."""

    def __init__(self, config: SiglipVisionConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.config = config
        self.embeddings = SiglipEmbeddings(config, dtype=dtype, rngs=rngs)
        self.layers = nnx.List(
            [SiglipEncoderLayer(config, dtype=dtype, rngs=rngs) for _ in range(config.num_hidden_layers)]
        )
        self.post_layernorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps, dtype=dtype)

    def __call__(
        self, pixel_values: jax.Array, feature_layer: int = -1, post_norm: bool = False, return_attention: bool = False
    ):
        """pixel_values [B, C, H, W] -> hidden states [B, N, D] after `feature_layer` layers (python
        indexing of hidden_states: 0 = embeddings, -1 = last); post_norm applies the post-layernorm
        (transformers' last_hidden_state, with feature_layer=-1). With return_attention, also the last
        layer run's TowerAttention per patch: the attention each received (mean over heads and queries)
        [B, N] and its keys (mean over heads) [B, N, d]."""
        depth = len(self.layers)
        stop = feature_layer % (depth + 1)
        if return_attention and stop == 0:
            raise ValueError("the vision attention of feature layer 0 (the embeddings) does not exist")
        x = self.embeddings(pixel_values)
        for index, layer in enumerate(list(self.layers)[:stop]):
            last = return_attention and index == stop - 1
            keys = layer.keys(x) if last else None
            x, probs = layer(x, return_probs=last)
        x = self.post_layernorm(x) if post_norm else x
        if not return_attention:
            return x
        return x, TowerAttention(probs.astype(jnp.float32).mean((1, 2)), last_block_keys(keys, 1))
