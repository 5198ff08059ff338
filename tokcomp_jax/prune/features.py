"""The mapper's input: first-layer attention from the instruction tokens to the visual tokens
(and, by `attention_to_visual`, any layer's attention from chosen queries: PyramidDrop's score).

Computed from layer 1's input norm, q/k projections and RoPE only: queries for the Q instruction
tokens, keys for all T tokens (the softmax needs every key a query sees), never values, the
output projection or the MLP. Equal to reading the full forward's first-layer attention.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tokcomp_jax.models.common.decoder import unpack_deepstack
from tokcomp_jax.models.layout import VisualLayout


def take_positions(x: jax.Array, positions: jax.Array) -> jax.Array:
    """x [B, T, ...] at positions [B, P] (-1 reads position 0) -> [B, P, ...]."""
    index = jnp.maximum(positions, 0).reshape(positions.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=1)


def first_layer_features(
    model, embeds: jax.Array, position_ids: jax.Array, attention_mask: jax.Array, layout: VisualLayout
) -> jax.Array:
    """Attention of each first-layer head from the instruction tokens to each visual token.

    embeds [B, T, D] (or DeepStack-packed), position ids as the model takes them, attention_mask [B, T] ->
    features [B, Hd, N]: the softmax probability (over every key the query sees) averaged over
    the sample's instruction queries; 0 at padded visual slots.
    """
    cos, sin = model.rope(position_ids, embeds.dtype)
    stack = model.language_model.layers
    tokens, _ = unpack_deepstack(embeds, stack.hidden_size)  # DeepStack joins after layer 1
    return attention_to_visual(stack[0], tokens, cos, sin, attention_mask, layout.query_positions, layout)


def attention_to_visual(
    layer, x: jax.Array, cos: jax.Array, sin: jax.Array, attention_mask: jax.Array, queries: jax.Array,
    layout: VisualLayout,
) -> jax.Array:  # fmt: skip
    """One decoder layer's attention from query positions [B, Q] (-1 = none) to the visual tokens,
    from its input x [B, T, D] (input norm, q/k projections and RoPE only): [B, Hd, N], averaged over
    the valid queries, 0 at padded visual slots."""
    attention = layer.self_attn
    length = x.shape[1]
    x = layer.input_layernorm(x)
    key = attention.keys(x, cos, sin)
    query = attention.queries(take_positions(x, queries), take_positions(cos, queries), take_positions(sin, queries))

    scores = grouped_logits(query, key).astype(jnp.float32)
    sees = (jnp.arange(length)[None, None] <= queries[..., None]) & attention_mask[:, None, :].astype(bool)
    probs = jax.nn.softmax(jnp.where(sees[:, None], scores, jnp.finfo(jnp.float32).min), axis=-1)
    probs = probs.astype(query.dtype).astype(jnp.float32)  # the model's probabilities are in its dtype

    visual = jnp.take_along_axis(probs, jnp.maximum(layout.visual_positions, 0)[:, None, None, :], axis=-1)
    return mean_over_queries(visual, queries, layout)


def grouped_logits(query: jax.Array, key: jax.Array) -> jax.Array:
    """Attention logits q.k / sqrt(H), key/value heads shared by their groups of query heads (GQA), in the
    inputs' dtype: query [B, Q, Hd, H], key [B, S, K, H] -> [B, Hd, Q, S]."""
    batch, length, num_kv_heads, head_dim = key.shape
    heads = query.shape[2]
    grouped = query.reshape(batch, query.shape[1], num_kv_heads, heads // num_kv_heads, head_dim)
    logits = jnp.einsum("BQKGH,BTKH->BKGQT", grouped, key) * jnp.asarray(head_dim**-0.5, query.dtype)
    return logits.reshape(batch, heads, query.shape[1], length)


def mean_over_queries(maps: jax.Array, queries: jax.Array, layout: VisualLayout) -> jax.Array:
    """Per-head maps [B, Hd, Q, N] from query positions [B, Q] (-1 = none), averaged over each sample's
    valid queries: [B, Hd, N], 0 at padded visual slots."""
    valid_query = (queries >= 0).astype(jnp.float32)
    mean = jnp.einsum("BHQN,BQ->BHN", maps, valid_query) / jnp.maximum(valid_query.sum(-1), 1)[:, None, None]
    return jnp.where(layout.visual_mask[:, None], mean, 0.0)


def visual_embeddings(embeds: jax.Array, hidden_size: int, positions: jax.Array) -> jax.Array:
    """LLM input embeddings [B, T, D] (Qwen3-VL: DeepStack-packed; the first D) at [B, P] -> float32 [B, P, D]."""
    embeds, _ = unpack_deepstack(embeds, hidden_size)
    return take_positions(embeds, positions).astype(jnp.float32)
