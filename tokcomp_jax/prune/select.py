"""Static-shape top-k selection of visual tokens, applied by masking or by gathering.

K = ceil(keep_ratio * N_bucket) slots are static; sample b keeps ceil(keep_ratio * n_b) of its
n_b visual tokens and masks the rest of its K slots. Kept tokens stay in their original order
and keep their original positions: pruning never renumbers M-RoPE (or 1-D) position ids.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from tokcomp_jax.models.layout import VisualLayout, keep_count


@struct.dataclass
class Selection:
    kept_slots: jax.Array  # [B, K] visual slots kept, ascending; N (out of range) in unused slots
    kept_valid: jax.Array  # [B, K] bool
    keep_position: jax.Array  # [B, T] bool: real text tokens and kept visual tokens


def per_sample_keep(keep_ratio: float, count: jax.Array) -> jax.Array:
    """ceil(keep_ratio * count) in the graph, rounded as layout.keep_count does on the host."""
    wanted = jnp.ceil(jnp.float32(keep_ratio) * count.astype(jnp.float32) - 1e-4).astype(jnp.int32)
    return jnp.where(count > 0, jnp.maximum(wanted, 1), 0)


def select_visual_tokens(
    scores: jax.Array, layout: VisualLayout, attention_mask: jax.Array, keep_ratio: float
) -> Selection:
    """Scores [B, N] (higher = keep) -> the Selection of each sample's top ceil(keep_ratio * n_b) tokens."""
    k = keep_count(keep_ratio, scores.shape[1])
    return select_count(scores, layout, attention_mask, k, per_sample_keep(keep_ratio, layout.visual_count))


def select_count(
    scores: jax.Array, layout: VisualLayout, attention_mask: jax.Array, slots: int, keep: jax.Array
) -> Selection:
    """Scores [B, N] -> the Selection of each sample's top keep[b] tokens in `slots` static slots (keep <= slots)."""
    num_slots = scores.shape[1]
    finite = jnp.nan_to_num(scores.astype(jnp.float32), nan=jnp.finfo(jnp.float32).min, neginf=-3e38, posinf=3e38)
    ranked = jnp.where(layout.visual_mask, finite, -jnp.inf)
    _, top = jax.lax.top_k(ranked, slots)
    valid = (jnp.arange(slots)[None] < keep[:, None]) & (jnp.arange(slots)[None] < layout.visual_count[:, None])
    return selection_of_slots(jnp.sort(jnp.where(valid, top, num_slots), axis=-1), layout, attention_mask)


def selection_of_slots(slots: jax.Array, layout: VisualLayout, attention_mask: jax.Array) -> Selection:
    """The Selection that keeps visual slots [B, K] (ascending; N = unused) and every real text token."""
    num_slots = layout.visual_positions.shape[1]
    valid = slots < num_slots
    batch, length = attention_mask.shape
    rows = jnp.arange(batch)[:, None]
    visual_at = jnp.where(layout.visual_mask, layout.visual_positions, length)  # length = dropped by scatter
    kept_at = jnp.where(
        valid, jnp.take_along_axis(layout.visual_positions, jnp.minimum(slots, num_slots - 1), 1), length
    )
    keep = attention_mask.astype(bool).at[rows, visual_at].set(False, mode="drop")
    keep = keep.at[rows, kept_at].set(True, mode="drop")
    return Selection(kept_slots=slots, kept_valid=valid, keep_position=keep)


def apply_selection(
    x: jax.Array, position_ids: jax.Array, selection: Selection, mode: str, num_visual_slots: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The sequence the LLM runs after selection: (x [B, L, D], position ids [..., B, L], mask [B, L]).

    mode "mask": L = T, pruned tokens masked out; "gather": L = T - N + K, the kept tokens only.
    """
    if mode == "mask":
        return x, position_ids, selection.keep_position.astype(jnp.int32)
    length = x.shape[1] - num_visual_slots + selection.kept_slots.shape[1]
    return gather_kept(x, position_ids, selection, length)


def gather_kept(
    embeds: jax.Array, position_ids: jax.Array, selection: Selection, length: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Physically drop pruned tokens: embeds [B, T, D], position ids [..., B, T] -> the kept tokens in
    order, right-padded to `length`: embeds [B, L, D], position ids [..., B, L], attention mask [B, L]."""
    keep = selection.keep_position
    order = jnp.argsort(~keep, axis=-1, stable=True)[:, :length]  # kept positions first, in order
    attention_mask = (jnp.arange(length)[None] < keep.sum(-1, keepdims=True)).astype(jnp.int32)
    embeds = jnp.take_along_axis(embeds, order[..., None], axis=1)
    position_ids = jnp.take_along_axis(position_ids, jnp.broadcast_to(order, position_ids.shape[:-1] + (length,)), -1)
    return embeds, position_ids, attention_mask
