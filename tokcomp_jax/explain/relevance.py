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
only O(layers * T^2) is materialised. The layers run as a `lax.scan` over their stacked
parameters under `jax.checkpoint` (an unrolled loop lets XLA keep every layer's per-head
softmax for the backward pass; the scan recomputes one layer at a time). Stacking copies the
decoder's parameters once.
`gradient_naive` materialises the per-head gradients and attentions instead (O(layers * heads *
T^2)), for checking and for the memory comparison.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax.models.common.decoder import causal_mask
from tokcomp_jax.prune.features import take_positions
from tokcomp_jax.prune.layout import VisualLayout

METHODS = ("gradient", "gradient_naive", "rollout", "first_layer_attention", "last_layer_attention")


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


def _answer_log_probs(logits: jax.Array, input_ids: jax.Array, answer_positions: jax.Array) -> jax.Array:
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
    num_layers = len(model.language_model.layers)
    hook = {"gradient": _gradient_hook, "gradient_naive": _naive_hook}.get(method, _attention_hook)
    decoder = model.language_model
    cos, sin = model.rope(inputs.position_ids, embeds.dtype)
    mask = causal_mask(inputs.attention_mask)

    layer_graph, _ = nnx.split(decoder.layers[0])
    layer_states = jax.tree.map(lambda *xs: jnp.stack(xs), *(nnx.state(layer) for layer in decoder.layers))

    @jax.checkpoint  # the backward pass recomputes one layer at a time: no per-layer, per-head residuals
    def one_layer(x, state_and_probe):
        state, probe = state_and_probe
        return nnx.merge(layer_graph, state)(x, cos, sin, mask, None, 0, hook, probe)[0], None

    def answer_log_probs(probes):
        x, _ = jax.lax.scan(one_layer, embeds, (layer_states, probes))
        logits = model.lm_head(decoder.norm(x), decoder.embed_tokens)
        return _answer_log_probs(logits, inputs.input_ids, answer_positions)

    heads = decoder.layers[0].self_attn.num_heads
    shape = (2, batch, heads, length, length) if method == "gradient_naive" else (batch, length, length)
    probes = jnp.zeros((num_layers, *shape), jnp.float32)
    log_probs, pullback = jax.vjp(answer_log_probs, probes)
    num_answers = answer_positions.shape[1]
    seeds = jnp.eye(num_answers, dtype=log_probs.dtype)[:, None, :] * jnp.ones((1, batch, 1), log_probs.dtype)
    if method not in ("gradient", "gradient_naive"):
        maps = pullback(seeds[0])[0]  # no gradient: the same maps for every answer token
        return jnp.broadcast_to(maps, (num_answers, *maps.shape))
    (maps,) = jax.vmap(pullback)(seeds)  # [M, L, B, T, T], naive: [M, L, 2, B, N, T, T]
    if method == "gradient_naive":
        maps = jax.nn.relu(maps[:, :, 0] * maps[:, :, 1]).mean(3)
    return maps


def relevance(model, inputs, answer_positions: jax.Array, layout: VisualLayout, method: str = "gradient") -> jax.Array:
    """Relevance [B, N] of each sample's visual tokens for its answer, by `method` (see METHODS).

    inputs: the model inputs of prompt + answer (append_answers); answer_positions [B, M] (-1 = none);
    layout: the visual positions (tokcomp_jax.prune.layout.visual_layout). 0 at padded visual slots.
    """
    if method not in METHODS:
        raise ValueError(f"unknown relevance method {method!r}; expected one of {METHODS}")
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
    visual = jnp.take_along_axis(swept, jnp.maximum(layout.visual_positions, 0)[None], axis=-1)  # [M, B, N]
    valid = (answer_positions >= 0).T.astype(jnp.float32)  # [M, B]
    mean = jnp.einsum("MBN,MB->BN", visual, valid) / jnp.maximum(valid.sum(0), 1)[:, None]
    return jnp.where(layout.visual_mask, mean, 0.0)
