"""Gradient-weighted attention relevance (Chefer et al. 2021) by one forward and one vjp.

For answer token y_t at sequence position p_t (teacher-forced), with Ā_l the per-layer map:

    gradient:  Ā_l = mean_heads(relu(d log p(y_t) / d A_l * A_l))
    rollout:   Ā_l = mean_heads(A_l)                     (attention rollout, no gradient)

the relevance row is e_{p_t - 1} (I + Ā_{L-1}) ... (I + Ā_0), swept from the last layer down as
`v <- v + v Ā_l` (never the T x T product), read at the visual tokens and averaged over answer
tokens. `first_layer_attention` / `last_layer_attention` read mean_heads(A_l) at that row.

Every attention passes its probabilities through an identity hook (`jax.custom_vjp`) whose
backward pass also writes the head-reduced map into the cotangent of a zero "probe" [B, T, S]:
the vjp of the answer's log-probabilities with respect to the probes *is* the list of Ā_l, so
only O(layers * T^2) is materialised. The decoder's layer stack runs with remat "full" (each
layer recomputed in the backward pass: no layer's per-head softmax is kept for it).
`gradient_naive` materialises the per-head gradients and attentions instead (O(layers * heads *
T^2)), for checking and for the memory comparison.

`input_gradient` is the saliency of Simonyan et al. (2014) at the LLM's input instead: the relevance
of visual token v for y_t is || d log p(y_t) / d e_v ||_2, the norm over the hidden size of the
gradient at its input embedding (one vjp per answer token, no attention map). On the miniature it
puts far more of its mass on the evidence than the attention rules (docs/results.md, issue 16).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tokcomp_jax.models.common.decoder import unpack_deepstack
from tokcomp_jax.models.layout import VisualLayout
from tokcomp_jax.prune.features import take_positions

METHODS = ("gradient", "gradient_naive", "rollout", "first_layer_attention", "last_layer_attention", "input_gradient")


def _probe_hook(probe_cotangent):
    """An identity on attention probabilities whose backward pass also returns, as the cotangent
    of the (unused) probe, probe_cotangent(probs, g) in float32."""

    @jax.custom_vjp
    def hook(probs, probe):
        return probs

    def forward(probs, probe):
        return probs, probs

    def backward(probs, cotangent):
        return cotangent, probe_cotangent(probs.astype(jnp.float32), cotangent.astype(jnp.float32))

    hook.defvjp(forward, backward)
    return hook


_gradient_hook = _probe_hook(lambda probs, g: jax.nn.relu(g * probs).mean(1))  # [B, T, S]
_attention_hook = _probe_hook(lambda probs, g: probs.mean(1))  # [B, T, S], no gradient needed
_naive_hook = _probe_hook(lambda probs, g: jnp.stack([g, probs]))  # [2, B, N, T, S]


def append_answers(batch: dict, answers: list[list[int]]) -> tuple[dict, np.ndarray]:
    """Teacher forcing: each sample's answer ids after its real tokens (right-padded).

    Returns the batch (input_ids, attention_mask replaced) and answer positions [B, M] (-1 = none).
    """
    input_ids, mask = np.asarray(batch["input_ids"]), np.asarray(batch["attention_mask"]).astype(bool)
    if len(answers) != input_ids.shape[0]:
        raise ValueError(f"{len(answers)} answers for {input_ids.shape[0]} samples")
    if any(len(answer) == 0 for answer in answers):
        raise ValueError("every sample needs a non-empty answer to explain")
    lengths = mask.sum(1)
    width = int(max(lengths + [len(a) for a in answers]))
    longest = max(len(a) for a in answers)
    ids = np.zeros((len(answers), width), input_ids.dtype)
    positions = np.full((len(answers), longest), -1, np.int32)
    for row, answer in enumerate(answers):
        prompt = input_ids[row, mask[row]]
        ids[row, : prompt.size] = prompt
        ids[row, prompt.size : prompt.size + len(answer)] = answer
        positions[row, : len(answer)] = np.arange(prompt.size, prompt.size + len(answer))
    attention_mask = (np.arange(width)[None] < (lengths + np.array([len(a) for a in answers]))[:, None]).astype(int)
    return dict(batch, input_ids=ids, attention_mask=attention_mask), positions


def answer_log_probs(logits: jax.Array, input_ids: jax.Array, answer_positions: jax.Array) -> jax.Array:
    """log p(y_t) [B, M] of each answer token from the logits at the position before it (0 for padding)."""
    predicting = jnp.maximum(answer_positions - 1, 0)
    log_probs = jax.nn.log_softmax(take_positions(logits, predicting).astype(jnp.float32), axis=-1)
    tokens = take_positions(input_ids, answer_positions)
    chosen = jnp.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
    return jnp.where(answer_positions >= 0, chosen, 0.0)


def _layer_maps(model, inputs, answer_positions, method: str) -> jax.Array:
    """Per answer token, per layer, the map Ā_l: [M, L, B, T, T]."""
    embeds = jax.lax.stop_gradient(model.embed(inputs))
    batch, length, _ = embeds.shape
    decoder = model.language_model
    hook = {"gradient": _gradient_hook, "gradient_naive": _naive_hook}.get(method, _attention_hook)

    def log_probs_of(probes):
        # remat "full": the backward pass recomputes one layer at a time, no per-layer, per-head residuals
        logits = model.forward_embeddings(
            embeds, inputs.position_ids, inputs.attention_mask, hook=hook, probes=probes, remat="full"
        ).logits
        return answer_log_probs(logits, inputs.input_ids, answer_positions)

    heads = decoder.layers.attention.num_heads
    shape = (2, batch, heads, length, length) if method == "gradient_naive" else (batch, length, length)
    probes = jnp.zeros((len(decoder.layers), *shape), jnp.float32)
    log_probs, pullback = jax.vjp(log_probs_of, probes)
    seeds = _answer_seeds(answer_positions, log_probs.dtype)
    if method not in ("gradient", "gradient_naive"):
        maps = pullback(seeds[0])[0]  # no gradient: the same maps for every answer token
        return jnp.broadcast_to(maps, (answer_positions.shape[1], *maps.shape))
    (maps,) = jax.vmap(pullback)(seeds)  # [M, L, B, T, T], naive: [M, L, 2, B, N, T, T]
    if method == "gradient_naive":
        maps = jax.nn.relu(maps[:, :, 0] * maps[:, :, 1]).mean(3)
    return maps


def _answer_seeds(answer_positions: jax.Array, dtype) -> jax.Array:
    """One cotangent per answer token for a vmapped pullback of [B, M] log-probabilities: [M, B, M]."""
    num_answers, batch = answer_positions.shape[1], answer_positions.shape[0]
    return jnp.eye(num_answers, dtype=dtype)[:, None, :] * jnp.ones((1, batch, 1), dtype)


def _input_gradient_norms(model, inputs, answer_positions) -> jax.Array:
    """Per answer token, || d log p(y_t) / d e ||_2 at every input position: [M, B, T] (e: the token
    embedding, not the DeepStack features packed with it)."""
    embeds = jax.lax.stop_gradient(model.embed(inputs))

    def log_probs_of(embeds):
        logits = model.forward_embeddings(embeds, inputs.position_ids, inputs.attention_mask).logits
        return answer_log_probs(logits, inputs.input_ids, answer_positions)

    log_probs, pullback = jax.vjp(log_probs_of, embeds)
    (gradients,) = jax.vmap(pullback)(_answer_seeds(answer_positions, log_probs.dtype))  # [M, B, T, D]
    gradients, _ = unpack_deepstack(gradients, model.language_model.layers.hidden_size)  # the token embeddings'
    return jnp.linalg.norm(gradients.astype(jnp.float32), axis=-1)


def relevance(model, inputs, answer_positions: jax.Array, layout: VisualLayout, method: str = "gradient") -> jax.Array:
    """Relevance [B, N] of each sample's visual tokens for its answer, by `method` (see METHODS).

    inputs: the model inputs of prompt + answer (append_answers); answer_positions [B, M] (-1 = none);
    layout: the visual positions (tokcomp_jax.models.layout.visual_layout). 0 at padded visual slots.
    Run it on scanned decoder layers (as loaded): unrolled, XLA keeps every layer's residuals despite
    the remat, ~2.6x the temporaries (4 layers, 256 tokens; docs/results.md).
    """
    if method not in METHODS:
        raise ValueError(f"unknown relevance method {method!r}; expected one of {METHODS}")
    if method == "input_gradient":
        swept = _input_gradient_norms(model, inputs, answer_positions)  # [M, B, T]
    else:
        swept = _swept_rows(model, inputs, answer_positions, method)
    visual = jnp.take_along_axis(swept, jnp.maximum(layout.visual_positions, 0)[None], axis=-1)  # [M, B, N]
    valid = (answer_positions >= 0).T.astype(jnp.float32)  # [M, B]
    mean = jnp.einsum("MBN,MB->BN", visual, valid) / jnp.maximum(valid.sum(0), 1)[:, None]
    return jnp.where(layout.visual_mask, mean, 0.0)


def _swept_rows(model, inputs, answer_positions: jax.Array, method: str) -> jax.Array:
    """Per answer token, the relevance row of the position that predicts it, over all positions: [M, B, T]."""
    maps = _layer_maps(model, inputs, answer_positions, method)  # [M, L, B, T, T]
    length = maps.shape[-1]
    rows = jax.nn.one_hot(jnp.maximum(answer_positions - 1, 0).T, length, dtype=jnp.float32)  # [M, B, T]
    if method == "first_layer_attention":
        swept = jnp.einsum("MBT,MBTS->MBS", rows, maps[:, 0])
    elif method == "last_layer_attention":
        swept = jnp.einsum("MBT,MBTS->MBS", rows, maps[:, -1])
    else:
        swept = rows
        for layer in reversed(range(maps.shape[1])):
            swept = swept + jnp.einsum("MBT,MBTS->MBS", swept, maps[:, layer])
    return swept
