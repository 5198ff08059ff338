"""Greedy generation: prefill into a preallocated KV cache, then decode in a `lax.while_loop`.

    tokens = generate(model, inputs, max_new_tokens=16, eos_token_id=eos)                      # unpruned
    tokens = generate(model, inputs, ..., mapper=mapper, scoring=scoring, prune=PruneConfig())  # pruned

A pruned prefill fills a shorter cache. Generated tokens continue each sample's positions after
its largest prefill position id (M-RoPE: text after an image resumes there), whatever was pruned.
`prefill` and `decode` are the two halves of `greedy_decode`, separately timeable (scripts/bench.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx, struct

from tokcomp_jax.models.common.attention import LayerCache
from tokcomp_jax.models.common.decoder import causal_mask
from tokcomp_jax.prune.pruner import PruneConfig, prune_embeddings


@struct.dataclass
class Generation:
    tokens: jax.Array  # [B, M] greedy tokens, pad_token_id after a sample's EOS
    lengths: jax.Array  # [B] generated tokens per sample, EOS included
    prefill_length: jax.Array  # [B] tokens the LLM prefilled (after pruning)


@struct.dataclass
class PrefillState:
    """What decoding needs after a prefill of T tokens into caches of S = T + M slots."""

    token: jax.Array  # [B] the greedy token after each sample's last real token
    last_logits: jax.Array  # [B, V] the logits it is the argmax of
    caches: list[LayerCache]  # per layer, keys/values [B, S, K, H], prefill in slots [0, T)
    key_valid: jax.Array  # [B, S] slots holding a real token
    next_position: jax.Array  # [..., B] position id of the first generated token, on every rope axis
    prefill_length: jax.Array  # [B] real tokens prefilled


def prefill(model, embeds, position_ids, attention_mask, *, max_new_tokens: int) -> PrefillState:
    """Prefill embeddings [B, T, D] (position ids [..., B, T], mask [B, T]) into caches with room for
    `max_new_tokens` more; logits only at each sample's last real token."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    decoder = model.language_model
    batch, length, _ = embeds.shape
    real = attention_mask.astype(bool)
    caches = decoder.init_cache(batch, length + max_new_tokens, embeds.dtype)
    cos, sin = model.rope(position_ids, embeds.dtype)
    hidden, _, caches = decoder(embeds, cos, sin, causal_mask(attention_mask), caches, 0)
    last = jnp.where(real, jnp.arange(length), -1).max(-1)
    first = model.lm_head(jnp.take_along_axis(hidden, last[:, None, None], axis=1), decoder.embed_tokens)
    return PrefillState(
        token=jnp.argmax(first[:, 0], axis=-1).astype(jnp.int32),
        last_logits=first[:, 0],
        caches=caches,
        key_valid=jnp.concatenate([real, jnp.zeros((batch, max_new_tokens), bool)], axis=1),
        next_position=jnp.broadcast_to(
            jnp.where(real, position_ids, -1).max(-1).reshape(-1, batch).max(0) + 1, position_ids.shape[:-1]
        ),
        prefill_length=real.sum(-1),
    )


def decode(model, state: PrefillState, *, max_new_tokens: int, eos_token_id: int, pad_token_id: int = 0) -> Generation:
    """Greedy tokens from a prefill: the prefill's token, then up to M - 1 more, stopping when every
    sample has produced EOS (pass an id outside the vocabulary to always decode M tokens)."""
    decoder = model.language_model
    batch = state.token.shape[0]
    length = state.key_valid.shape[1] - max_new_tokens
    dtype = state.caches[0].key.dtype

    def step(carry):
        index, token, tokens, done, caches, key_valid = carry
        slot = length + index - 1  # the previous token goes here
        key_valid = jax.lax.dynamic_update_slice(key_valid, jnp.ones((batch, 1), bool), (0, slot))
        positions = (state.next_position + index - 1)[..., None]
        cos, sin = model.rope(positions, dtype)
        hidden, _, caches = decoder(decoder.embed_tokens(token[:, None]), cos, sin, key_valid[:, None, :], caches, slot)
        logits = model.lm_head(hidden, decoder.embed_tokens)[:, 0]
        token = jnp.where(done, pad_token_id, jnp.argmax(logits, axis=-1).astype(jnp.int32))
        tokens = jax.lax.dynamic_update_slice(tokens, token[:, None], (0, index))
        return index + 1, token, tokens, done | (token == eos_token_id), caches, key_valid

    def keep_going(carry):
        index, _, _, done, _, _ = carry
        return (index < max_new_tokens) & ~done.all()

    tokens = jnp.full((batch, max_new_tokens), pad_token_id, jnp.int32).at[:, 0].set(state.token)
    carry = (1, state.token, tokens, state.token == eos_token_id, state.caches, state.key_valid)
    _, _, tokens, _, _, _ = jax.lax.while_loop(keep_going, step, carry)
    is_eos = tokens == eos_token_id
    lengths = jnp.where(is_eos.any(-1), jnp.argmax(is_eos, axis=-1) + 1, max_new_tokens)
    return Generation(tokens=tokens, lengths=lengths, prefill_length=state.prefill_length)


def greedy_decode(
    model, embeds, position_ids, attention_mask, *, max_new_tokens: int, eos_token_id: int, pad_token_id: int = 0
) -> Generation:
    """Prefill embeddings [B, T, D] (position ids [..., B, T], mask [B, T]) and decode up to M tokens."""
    state = prefill(model, embeds, position_ids, attention_mask, max_new_tokens=max_new_tokens)
    return decode(model, state, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, pad_token_id=pad_token_id)


@nnx.jit(static_argnames=("max_new_tokens", "eos_token_id", "pad_token_id", "prune"))
def generate(
    model,
    inputs,
    *,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int = 0,
    mapper=None,
    scoring=None,
    prune: PruneConfig | None = None,
) -> Generation:
    """Greedy answers for a batch of model inputs, pruned at the LLM input if `prune` is given
    (with the ScoringInputs and, for the mapper scorer, the mapper from prepare_pruning)."""
    if prune is None:
        embeds, position_ids, attention_mask = model.embed(inputs), inputs.position_ids, inputs.attention_mask
    elif prune.scorer == "fastv":
        raise NotImplementedError("FastV prunes inside the LLM; its KV cache differs per layer and is not built here")
    else:
        embeds, position_ids, attention_mask, _ = prune_embeddings(model, mapper, inputs, scoring, prune)
    return greedy_decode(
        model, embeds, position_ids, attention_mask,
        max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
    )  # fmt: skip
