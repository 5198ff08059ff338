"""The Qwen2/Llama decoder shared by every family: embeddings, pre-norm blocks, final norm, LM head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from tokcomp_jax.models.common.attention import LayerCache, SelfAttention
from tokcomp_jax.models.common.config import DecoderConfig
from tokcomp_jax.models.common.layers import GatedMLP, RMSNorm, linear


def causal_mask(attention_mask: jax.Array) -> jax.Array:
    """Padding mask [B, T] (1 = real token) -> bool [B, T, T]: query t sees real keys s <= t."""
    length = attention_mask.shape[-1]
    causal = jnp.tril(jnp.ones((length, length), dtype=bool))
    return causal[None] & attention_mask[:, None, :].astype(bool)


class DecoderLayer(nnx.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: DecoderConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, dtype=dtype)
        self.self_attn = SelfAttention(
            config.hidden_size,
            config.num_attention_heads,
            config.num_key_value_heads,
            qkv_bias=config.attention_bias,
            dtype=dtype,
            rngs=rngs,
        )
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, dtype=dtype)
        self.mlp = GatedMLP(config.hidden_size, config.intermediate_size, act=config.hidden_act, dtype=dtype, rngs=rngs)

    def __call__(self, x, cos, sin, mask, cache: LayerCache | None = None, cache_index=0, hook=None, probe=None):
        """x [B, T, D] -> x [B, T, D], attention probabilities [B, N, T, S], updated cache (see SelfAttention)."""
        normed = self.input_layernorm(x)
        attended, probs, cache = self.self_attn(normed, cos, sin, mask, cache, cache_index, hook, probe)
        x = x + attended
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, probs, cache


class Decoder(nnx.Module):
    """Token embeddings, decoder layers and the final norm (transformers' `*TextModel`)."""

    def __init__(self, config: DecoderConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.embed_tokens = nnx.Embed(config.vocab_size, config.hidden_size, dtype=dtype, param_dtype=dtype, rngs=rngs)
        self.layers = nnx.List([DecoderLayer(config, dtype=dtype, rngs=rngs) for _ in range(config.num_hidden_layers)])
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, dtype=dtype)

    def init_cache(self, batch: int, slots: int, dtype: jnp.dtype) -> list[LayerCache]:
        """Empty key/value caches of S slots, one per layer."""
        attention = self.layers[0].self_attn
        return [
            LayerCache.zeros(batch, slots, attention.num_kv_heads, attention.head_dim, dtype)
            for _ in range(len(self.layers))
        ]

    def __call__(
        self,
        inputs_embeds,
        cos,
        sin,
        mask,
        caches: list[LayerCache] | None = None,
        cache_index=0,
        hook=None,
        probes=None,
    ):
        """Embeddings [B, T, D] -> normed hidden [B, T, D], first layer's probabilities [B, N, T, S], caches.

        With caches (from init_cache), each layer writes its keys/values at cache_index. With a
        hook, layer l's attention probabilities pass through hook(probs, probes[l]).
        """
        x, first_layer_attention, new_caches = inputs_embeds, None, []
        for index, layer in enumerate(self.layers):
            cache = None if caches is None else caches[index]
            probe = None if probes is None else probes[index]
            x, probs, cache = layer(x, cos, sin, mask, cache, cache_index, hook, probe)
            first_layer_attention = probs if index == 0 else first_layer_attention
            new_caches.append(cache)
        return self.norm(x), first_layer_attention, (None if caches is None else new_caches)


class LMHead(nnx.Module):
    """Hidden states [B, T, D] -> logits [B, T, V]; reads the embedding matrix when tied."""

    def __init__(self, config: DecoderConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.tied = config.tie_word_embeddings
        if not self.tied:
            self.proj = linear(config.hidden_size, config.vocab_size, bias=False, dtype=dtype, rngs=rngs)

    def __call__(self, hidden: jax.Array, embed_tokens: nnx.Embed) -> jax.Array:
        if self.tied:
            return embed_tokens.attend(hidden)
        return self.proj(hidden)
