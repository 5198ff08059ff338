"""Greedy generation: prefill into a preallocated KV cache, then decode in a `lax.while_loop`.

    tokens = generate(model, inputs, max_new_tokens=16, eos_token_id=eos)                      # unpruned
    tokens = generate(model, inputs, ..., mapper=mapper, scoring=scoring, prune=PruneConfig())  # pruned

A pruned prefill fills a shorter cache; in-LLM pruning (FastV, PyramidDrop, DART) one cache segment
per stage of layers, each as long as the sequence those layers saw. Generated tokens continue each sample's positions after
its largest prefill position id (M-RoPE: text after an image resumes there), whatever was pruned.
`prefill` and `decode` are the two halves of `greedy_decode`, separately timeable (scripts/bench.py).
`Generator` is `generate` for many batches of one model (the eval runner's).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from tokcomp_jax.models.common.attention import CacheSegment
from tokcomp_jax.models.common.decoder import causal_mask
from tokcomp_jax.prune.in_llm import staged_prefill
from tokcomp_jax.prune.pruner import PruneConfig, prune_embeddings

StopIds = int | tuple[int, ...]  # static under jit, so a tuple and never a list


@struct.dataclass
class Generation:
    tokens: jax.Array  # [B, M] greedy tokens, pad_token_id after a sample's EOS
    lengths: jax.Array  # [B] generated tokens per sample, EOS included
    prefill_length: jax.Array  # [B] tokens the LLM prefilled (after pruning)


@struct.dataclass
class PrefillState:
    """What decoding needs after a prefill of T tokens into caches of T + M slots."""

    token: jax.Array  # [B] the greedy token after each sample's last real token
    last_logits: jax.Array  # [B, V] the logits it is the argmax of
    segments: tuple[CacheSegment, ...]  # the layers' keys/values: one segment, or one per in-LLM pruning stage
    next_position: jax.Array  # [..., B] position id of the first generated token, on every rope axis
    prefill_length: jax.Array  # [B] real tokens the last layer prefilled


def check_positions(config, position_ids, attention_mask, max_new_tokens: int, names=None) -> None:
    """Refuse a batch (position ids [..., B, T], mask [B, T], on the host) whose last generated
    token would pass the positions the model was trained on (`text.max_position_embeddings`);
    the error names the rows, or `names[row]` when given."""
    limit = config.text.max_position_embeddings
    real = np.asarray(attention_mask).astype(bool)
    last = np.where(real, np.asarray(position_ids), -1).max(axis=-1).reshape(-1, real.shape[0]).max(axis=0)
    too_long = np.flatnonzero(last + max_new_tokens >= limit)
    if too_long.size:
        rows = [names[row] if names is not None else int(row) for row in too_long]
        raise ValueError(
            f"{rows} reach position {int(last[too_long].max())}; with {max_new_tokens} new tokens that passes "
            f"the model's max_position_embeddings {limit}"
        )


def prefill(
    model, embeds, position_ids, attention_mask, *, max_new_tokens: int, layout=None, layer_pruning=None
) -> PrefillState:
    """Prefill embeddings [B, T, D] (position ids [..., B, T], mask [B, T]) into caches with room for
    `max_new_tokens` more; logits only at each sample's last real token. With `layer_pruning`
    (prune.in_llm.LayerPruning) and the visual `layout`, visual tokens are pruned inside the LLM
    and each stage of layers keeps its own, shorter cache."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    decoder = model.language_model
    batch, length, _ = embeds.shape
    real = attention_mask.astype(bool)
    if layer_pruning is None:
        caches = decoder.init_cache(batch, length + max_new_tokens, embeds.dtype)
        cos, sin = model.rope(position_ids, embeds.dtype)
        out = decoder(embeds, cos, sin, causal_mask(attention_mask), cache=caches, cache_index=0)
        key_valid = jnp.concatenate([real, jnp.zeros((batch, max_new_tokens), bool)], axis=1)
        hidden, mask = out.hidden, attention_mask
        segments = (CacheSegment(out.cache, key_valid, (0, len(decoder.layers)), length),)
    else:
        staged = staged_prefill(model, embeds, position_ids, attention_mask, layout, layer_pruning, max_new_tokens)
        hidden, mask, segments = staged.hidden, staged.attention_mask, staged.segments
    last = jnp.where(mask.astype(bool), jnp.arange(mask.shape[1]), -1).max(-1)
    first = model.lm_head(jnp.take_along_axis(hidden, last[:, None, None], axis=1), decoder.embed_tokens)
    return PrefillState(
        token=jnp.argmax(first[:, 0], axis=-1).astype(jnp.int32),
        last_logits=first[:, 0],
        segments=segments,
        next_position=jnp.broadcast_to(
            jnp.where(real, position_ids, -1).max(-1).reshape(-1, batch).max(0) + 1, position_ids.shape[:-1]
        ),
        prefill_length=mask.astype(bool).sum(-1),
    )


def stop_ids(eos_token_id: StopIds) -> tuple[int, ...]:
    """An EOS id or a tuple of them (a chat's end of turn and generation_config.json's eos ids) as a tuple."""
    return (eos_token_id,) if isinstance(eos_token_id, int) else tuple(eos_token_id)


def decode(
    model, state: PrefillState, *, max_new_tokens: int, eos_token_id: StopIds, pad_token_id: int = 0
) -> Generation:
    """Greedy tokens from a prefill: the prefill's token, then up to M - 1 more, stopping when every
    sample has produced an EOS id (pass an id outside the vocabulary to always decode M tokens)."""
    stops = jnp.asarray(stop_ids(eos_token_id), jnp.int32)
    is_stop = lambda tokens: jnp.isin(tokens, stops)  # noqa: E731
    decoder = model.language_model
    batch = state.token.shape[0]
    dtype = state.segments[0].cache.key.dtype

    def step(carry):
        index, token, tokens, done, segments = carry
        positions = (state.next_position + index - 1)[..., None]
        cos, sin = model.rope(positions, dtype)
        x, updated = decoder.embed_tokens(token[:, None]), []
        for segment in segments:
            slot = segment.length + index - 1  # the previous token goes here, in this segment's cache
            key_valid = jax.lax.dynamic_update_slice(segment.key_valid, jnp.ones((batch, 1), bool), (0, slot))
            out = decoder.layers(
                x, cos, sin, key_valid[:, None, :], layers=slice(*segment.layers), cache=segment.cache, cache_index=slot
            )
            x = out.hidden
            updated.append(segment.replace(cache=out.cache, key_valid=key_valid))
        logits = model.lm_head(decoder.norm(x), decoder.embed_tokens)[:, 0]
        token = jnp.where(done, pad_token_id, jnp.argmax(logits, axis=-1).astype(jnp.int32))
        tokens = jax.lax.dynamic_update_slice(tokens, token[:, None], (0, index))
        return index + 1, token, tokens, done | is_stop(token), tuple(updated)

    def keep_going(carry):
        index, _, _, done, _ = carry
        return (index < max_new_tokens) & ~done.all()

    tokens = jnp.full((batch, max_new_tokens), pad_token_id, jnp.int32).at[:, 0].set(state.token)
    carry = (1, state.token, tokens, is_stop(state.token), state.segments)
    _, _, tokens, _, _ = jax.lax.while_loop(keep_going, step, carry)
    is_eos = is_stop(tokens)
    lengths = jnp.where(is_eos.any(-1), jnp.argmax(is_eos, axis=-1) + 1, max_new_tokens)
    return Generation(tokens=tokens, lengths=lengths, prefill_length=state.prefill_length)


def greedy_decode(
    model, embeds, position_ids, attention_mask, *, max_new_tokens: int, eos_token_id: StopIds, pad_token_id: int = 0
) -> Generation:
    """Prefill embeddings [B, T, D] (position ids [..., B, T], mask [B, T]) and decode up to M tokens."""
    state = prefill(model, embeds, position_ids, attention_mask, max_new_tokens=max_new_tokens)
    return decode(model, state, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, pad_token_id=pad_token_id)


_STATIC = ("max_new_tokens", "eos_token_id", "pad_token_id", "prune")


def _generate(
    model,
    inputs,
    *,
    max_new_tokens: int,
    eos_token_id: StopIds,
    pad_token_id: int = 0,
    mapper=None,
    scoring=None,
    prune: PruneConfig | None = None,
) -> Generation:
    """Greedy answers for a batch of model inputs, pruned if `prune` is given (with the ScoringInputs
    and, for the mapper scorer, the mapper from prepare_pruning): at the LLM input, or inside it
    for FastV, PyramidDrop and DART (each stage of layers decodes against its own pruned cache)."""
    layer_pruning = None
    if prune is None or prune.inside_llm:
        embeds, position_ids, attention_mask = model.embed(inputs), inputs.position_ids, inputs.attention_mask
        layer_pruning = None if prune is None else prune.layer_pruning(len(model.language_model.layers))
    else:
        embeds, position_ids, attention_mask, _ = prune_embeddings(model, mapper, inputs, scoring, prune)
    state = prefill(
        model, embeds, position_ids, attention_mask, max_new_tokens=max_new_tokens,
        layout=None if scoring is None else scoring.layout, layer_pruning=layer_pruning,
    )  # fmt: skip
    return decode(model, state, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, pad_token_id=pad_token_id)


generate = nnx.jit(_generate, static_argnames=_STATIC)


class Generator:
    """`generate` for many batches of one (model, mapper), as the eval runner calls it: the NNX graph
    is split once, here, so a call pays jit's dispatch only and not NNX's walk over every module
    (at Qwen2-VL-7B's depth ~65 ms a call on CPU: docs/results.md). It holds the weights as they
    were when it was made; make a new one after changing them.

        run = Generator(model, mapper)
        generation = run(inputs, max_new_tokens=16, eos_token_id=eos, scoring=scoring, prune=prune)
    """

    def __init__(self, model, mapper=None):
        self._graphdef, self._state = nnx.split((model, mapper))

    def __call__(
        self, inputs, *, max_new_tokens: int, eos_token_id: StopIds, pad_token_id: int = 0, scoring=None, prune=None
    ) -> Generation:
        return _generate_split(
            self._graphdef, self._state, inputs, scoring, max_new_tokens=max_new_tokens,
            eos_token_id=eos_token_id, pad_token_id=pad_token_id, prune=prune,
        )  # fmt: skip


@functools.partial(jax.jit, static_argnames=("graphdef", *_STATIC))
def _generate_split(graphdef, state, inputs, scoring, **settings) -> Generation:
    model, mapper = nnx.merge(graphdef, state)
    return _generate(model, inputs, mapper=mapper, scoring=scoring, **settings)
