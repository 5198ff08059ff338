"""Greedy diverse subsets of the visual tokens at the LLM input: DivPrune and CDPruner, with static shapes.

Both pick tokens one at a time; here the greedy loop runs a static number of steps (the bucket's keep
count, `lax.fori_loop`) and its picks come back as scores (the first pick highest, unpicked 0), so the
shared top-k selection keeps, per sample, its first ceil(keep_ratio * n_b) picks: what the greedy loop
run for that sample's own count would keep. Padded slots are never picked.

DivPrune (Alvar et al., CVPR 2025; github.com/vbdi/divprune at 799e2d95, LLaVA/llava/model/llava_arch.py,
`LlavaMetaForCausalLM.DivPrune` and its call in `prepare_inputs_labels_for_multimodal`): max-min
diversity over 1 - cosine of the projected visual embeddings; the first pick is the token farthest
from its nearest neighbour, each next one the token farthest from the picked set.

CDPruner (Zhang et al., NeurIPS 2025; github.com/Theia-4869/CDPruner at 9541616c, llava/model/llava_arch.py,
`LlavaMetaForCausalLM.encode_images`): greedy MAP inference of a conditional DPP (Chen et al. 2018) with
kernel L = diag(r) S diag(r), S the cosine similarity of the projected visual embeddings and r the
instruction relevance, `(-cos).mean` over the instruction, min-max scaled as the official code does.

Where this departs from the official code, and why:
- Keep count: ceil(keep_ratio * n) per sample, as every method of this harness (DivPrune rounds, CDPruner
  takes an absolute count); the picks themselves are the same.
- DivPrune masks the tokens already picked (the official loop relies on their ~0 self-distance; the
  two differ only when every remaining token duplicates a picked one).
- CDPruner's relevance: the official code compares CLIP-space image embeddings with the CLIP text
  encoder's embedding of the question; none of the five families ships a text tower, so both sides
  are LLM input embeddings here (visual tokens and the instruction tokens of the layout), with the
  official negation, mean and min-max. The min-max is per sample (the official code, run at batch 1,
  takes it over the batch; per sample keeps a sample's picks independent of its batch).
- Multi-image and video samples: one subset over all of a sample's visual tokens (the official code
  sees one image, or LLaVA-NeXT's crops with a count per crop).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tokcomp_jax.models.layout import keep_count
from tokcomp_jax.prune.features import visual_embeddings


def unit_rows(x: jax.Array) -> jax.Array:
    """Rows over their L2 norm (all-zero padded rows stay zero)."""
    norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x / jnp.where(norm > 0, norm, 1.0)


def pick_order_scores(picks: jax.Array, found: jax.Array, slots: int) -> jax.Array:
    """Greedy picks [S, B] (found: a real token) -> scores [B, N]: S - step at a picked slot, 0 elsewhere."""
    steps = picks.shape[0]
    rank = jnp.where(found, steps - jnp.arange(steps)[:, None], 0).astype(jnp.float32)  # [S, B]
    rows = jnp.broadcast_to(jnp.arange(picks.shape[1])[None], picks.shape)
    return (
        jnp.zeros((picks.shape[1], slots), jnp.float32).at[rows, jnp.where(found, picks, slots)].max(rank, mode="drop")
    )


def divprune_picks(visual: jax.Array, mask: jax.Array, steps: int) -> tuple[jax.Array, jax.Array]:
    """Max-min diverse picks: visual [B, N, D], mask [B, N] -> (picks [S, B], found [S, B]) for S = steps."""
    mask, unit = jnp.asarray(mask), unit_rows(visual)
    distance = 1.0 - jnp.einsum("bnd,bmd->bnm", unit, unit)  # [B, N, N], as the official pairwise_cosine_similarity
    among_real = jnp.where(mask[:, :, None], distance, jnp.inf)
    nearest_other = -jax.lax.top_k(-jnp.swapaxes(among_real, 1, 2), 2)[0][..., 1]  # [B, N]: 2nd smallest per column
    rows = jnp.arange(visual.shape[0])

    def step(i, carry):
        nearest_picked, picked, picks, found = carry
        scores = jnp.where(i == 0, nearest_other, nearest_picked)
        scores = jnp.where(mask & ~picked, scores, -jnp.inf)
        pick = jnp.argmax(scores, axis=-1)  # the first of equal maxima, as torch.argmax
        real = mask[rows, pick] & ~picked[rows, pick]  # False once every real token is picked
        nearest_picked = jnp.where(real[:, None], jnp.minimum(nearest_picked, distance[rows, pick]), nearest_picked)
        picked = picked.at[rows, pick].set(True)
        return nearest_picked, picked, picks.at[i].set(pick), found.at[i].set(real)

    batch, slots = mask.shape
    init = (jnp.full((batch, slots), jnp.inf), jnp.zeros((batch, slots), bool),
            jnp.zeros((steps, batch), jnp.int32), jnp.zeros((steps, batch), bool))  # fmt: skip
    _, _, picks, found = jax.lax.fori_loop(0, steps, step, init)
    return picks, found


def cdpruner_relevance(visual: jax.Array, mask: jax.Array, instruction: jax.Array, instruction_mask: jax.Array):
    """CDPruner's r: -cos(visual token, instruction token) averaged over the instruction, min-max scaled over a
    sample's real tokens as `(r - min + 1e-6) / (max - min)`. visual [B, N, D], instruction [B, Q, D] -> [B, N]."""
    mask, instruction_mask = jnp.asarray(mask), jnp.asarray(instruction_mask)
    cosine = jnp.einsum("bnd,bqd->bnq", unit_rows(visual), unit_rows(instruction))
    count = jnp.maximum(instruction_mask.sum(-1), 1)[:, None]
    relevance = -(cosine * instruction_mask[:, None, :]).sum(-1) / count
    low = jnp.where(mask, relevance, jnp.inf).min(-1, keepdims=True)
    high = jnp.where(mask, relevance, -jnp.inf).max(-1, keepdims=True)
    return jnp.where(mask, (relevance - low + 1e-6) / (high - low), 0.0)


def dpp_picks(kernel: jax.Array, mask: jax.Array, steps: int) -> tuple[jax.Array, jax.Array]:
    """Greedy MAP of a DPP (Chen et al. 2018; CDPruner's loop): kernel [B, N, N], mask [B, N] -> picks, found [S, B]."""
    mask = jnp.asarray(mask)
    batch, slots = mask.shape
    rows = jnp.arange(batch)

    def step(i, carry):
        gains, vectors, picks, found = carry  # gains [B, N] (official di2s), vectors [S, B, N] (official cis)
        pick = jnp.argmax(gains, axis=-1)
        real = gains[rows, pick] > -jnp.inf  # padded and picked slots hold -inf
        projection = jnp.einsum("sb,sbn->bn", vectors[:, rows, pick], vectors)  # rows >= i are still zero
        update = (kernel[rows, pick] - projection) / jnp.sqrt(gains[rows, pick])[:, None]
        update = jnp.where(real[:, None], update, 0.0)
        gains = (gains - jnp.square(update)).at[rows, pick].set(-jnp.inf)
        return gains, vectors.at[i].set(update), picks.at[i].set(pick), found.at[i].set(real)

    gains = jnp.where(mask, jnp.diagonal(kernel, axis1=1, axis2=2), -jnp.inf)
    init = (gains, jnp.zeros((steps, batch, slots)), jnp.zeros((steps, batch), jnp.int32),
            jnp.zeros((steps, batch), bool))  # fmt: skip
    _, _, picks, found = jax.lax.fori_loop(0, steps, step, init)
    return picks, found


def divprune_scores(embeds: jax.Array, hidden_size: int, layout, keep_ratio: float) -> jax.Array:
    """DivPrune at the LLM input: embeds [B, T, D] -> scores [B, N] (its pick order)."""
    visual = visual_embeddings(embeds, hidden_size, layout.visual_positions)
    steps = keep_count(keep_ratio, visual.shape[1])
    picks, found = divprune_picks(visual, layout.visual_mask, steps)
    return pick_order_scores(picks, found, visual.shape[1])


def cdpruner_scores(embeds: jax.Array, hidden_size: int, layout, keep_ratio: float) -> jax.Array:
    """CDPruner at the LLM input: embeds [B, T, D] -> scores [B, N] (its pick order)."""
    visual = visual_embeddings(embeds, hidden_size, layout.visual_positions)
    instruction = visual_embeddings(embeds, hidden_size, layout.query_positions)
    unit = unit_rows(visual)
    similarity = jnp.einsum("bnd,bmd->bnm", unit, unit)
    relevance = cdpruner_relevance(visual, layout.visual_mask, instruction, layout.query_positions >= 0)
    kernel = relevance[:, :, None] * similarity * relevance[:, None, :]
    picks, found = dpp_picks(kernel, layout.visual_mask, keep_count(keep_ratio, visual.shape[1]))
    return pick_order_scores(picks, found, visual.shape[1])
