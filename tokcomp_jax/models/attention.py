"""Scaled dot-product attention (eager, probabilities exposed) and the GQA self-attention layer."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx, struct

from tokcomp_jax.models.layers import linear
from tokcomp_jax.models.rope import apply_rotary

ProbsHook = Callable[[jax.Array, jax.Array], jax.Array]


def dot_product_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array,
    hook: ProbsHook | None = None,
    probe: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Softmax attention with grouped key/value heads.

    query [B, T, N, H], key/value [B, S, K, H] with N a multiple of K, mask [B, T, S] (True = attend)
    -> output [B, T, N, H], probabilities [B, N, T, S]. Scores are softmaxed in float32 and cast
    back to the query dtype, as transformers' eager attention does; query head n reads key head
    n // (N // K). `hook(probs, probe)` (identity in value, e.g. a custom_vjp) replaces the
    probabilities the values are mixed with; explanations read gradients through it.
    """
    batch, length, num_heads, head_dim = query.shape
    num_kv_heads = key.shape[2]
    grouped = query.reshape(batch, length, num_kv_heads, num_heads // num_kv_heads, head_dim)
    scores = jnp.einsum("BTKGH,BSKH->BKGTS", grouped, key) * jnp.asarray(head_dim**-0.5, query.dtype)
    scores = scores.reshape(batch, num_heads, length, key.shape[1])
    scores = jnp.where(mask[:, None], scores.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(query.dtype)
    if hook is not None:
        probs = hook(probs, probe)
    grouped_probs = probs.reshape(batch, num_kv_heads, num_heads // num_kv_heads, length, key.shape[1])
    output = jnp.einsum("BKGTS,BSKH->BTKGH", grouped_probs, value)
    return output.reshape(batch, length, num_heads, head_dim), probs


@struct.dataclass
class LayerCache:
    """One layer's preallocated key/value cache, S slots."""

    key: jax.Array  # [B, S, K, H]
    value: jax.Array  # [B, S, K, H]

    @classmethod
    def zeros(cls, batch: int, slots: int, num_kv_heads: int, head_dim: int, dtype: jnp.dtype) -> LayerCache:
        return cls(*(jnp.zeros((batch, slots, num_kv_heads, head_dim), dtype) for _ in range(2)))


class SelfAttention(nnx.Module):
    """Rotary GQA self-attention of the Qwen2/Llama decoders; q/k/v biases optional, o_proj without."""

    def __init__(
        self, hidden_size: int, num_heads: int, num_kv_heads: int, *, qkv_bias: bool, dtype: jnp.dtype, rngs: nnx.Rngs
    ):
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = hidden_size // num_heads
        self.q_proj = linear(hidden_size, num_heads * self.head_dim, bias=qkv_bias, dtype=dtype, rngs=rngs)
        self.k_proj = linear(hidden_size, num_kv_heads * self.head_dim, bias=qkv_bias, dtype=dtype, rngs=rngs)
        self.v_proj = linear(hidden_size, num_kv_heads * self.head_dim, bias=qkv_bias, dtype=dtype, rngs=rngs)
        self.o_proj = linear(num_heads * self.head_dim, hidden_size, bias=False, dtype=dtype, rngs=rngs)

    def rotated_query_key(self, x: jax.Array, cos: jax.Array, sin: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x [B, T, D] -> rotated query [B, T, N, H] and key [B, T, K, H]."""
        batch, length, _ = x.shape
        query = self.q_proj(x).reshape(batch, length, self.num_heads, self.head_dim)
        key = self.k_proj(x).reshape(batch, length, self.num_kv_heads, self.head_dim)
        return apply_rotary(query, cos, sin), apply_rotary(key, cos, sin)

    def __call__(
        self,
        x: jax.Array,
        cos: jax.Array,
        sin: jax.Array,
        mask: jax.Array,
        cache: LayerCache | None = None,
        cache_index: jax.Array | int = 0,
        hook: ProbsHook | None = None,
        probe: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array, LayerCache | None]:
        """x [B, T, D], rope tables [B, T, H] -> output [B, T, D], probabilities [B, N, T, S], updated cache.

        Without a cache, or with one and mask [B, T, T] (prefill), queries attend to the T fresh
        keys. With a cache and mask [B, T, S] (decode), the fresh keys/values are written at
        slot cache_index first and queries attend to all S slots (mask says which are filled).
        """
        batch, length, _ = x.shape
        query, key = self.rotated_query_key(x, cos, sin)
        value = self.v_proj(x).reshape(batch, length, self.num_kv_heads, self.head_dim)
        if cache is not None:
            start = (0, cache_index, 0, 0)
            cache = LayerCache(
                jax.lax.dynamic_update_slice(cache.key, key.astype(cache.key.dtype), start),
                jax.lax.dynamic_update_slice(cache.value, value.astype(cache.value.dtype), start),
            )
            if mask.shape[-1] == cache.key.shape[1] != length:
                key, value = cache.key, cache.value
        output, probs = dot_product_attention(query, key, value, mask, hook, probe)
        return self.o_proj(output.reshape(batch, length, -1)), probs, cache
