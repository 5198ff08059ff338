"""The Qwen2/Llama decoder shared by every family: embeddings, pre-norm blocks, final norm, LM head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from tokcomp_jax.models.attention import SelfAttention
from tokcomp_jax.models.config import DecoderConfig
from tokcomp_jax.models.layers import GatedMLP, RMSNorm, linear


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

    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x [B, T, D] -> x [B, T, D], attention probabilities [B, N, T, T]."""
        attended, probs = self.self_attn(self.input_layernorm(x), cos, sin, mask)
        x = x + attended
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, probs


class Decoder(nnx.Module):
    """Token embeddings, decoder layers and the final norm (transformers' `*TextModel`)."""

    def __init__(self, config: DecoderConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.embed_tokens = nnx.Embed(config.vocab_size, config.hidden_size, dtype=dtype, param_dtype=dtype, rngs=rngs)
        self.layers = nnx.List([DecoderLayer(config, dtype=dtype, rngs=rngs) for _ in range(config.num_hidden_layers)])
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, dtype=dtype)

    def __call__(
        self, inputs_embeds: jax.Array, cos: jax.Array, sin: jax.Array, mask: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Embeddings [B, T, D] -> normed hidden states [B, T, D], first layer's probabilities [B, N, T, T]."""
        x, first_layer_attention = self.layers[0](inputs_embeds, cos, sin, mask)
        for layer in self.layers[1:]:
            x, _ = layer(x, cos, sin, mask)
        return self.norm(x), first_layer_attention


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
