"""FastV (Chen et al. 2024) as a baseline: prune inside the LLM, after layer K, by the attention that
the last token paid to each visual token in layer K (heads averaged), as FastV's code does."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tokcomp_jax.models.common.decoder import causal_mask
from tokcomp_jax.prune.features import take_positions
from tokcomp_jax.prune.layout import VisualLayout
from tokcomp_jax.prune.select import Selection, apply_selection, select_visual_tokens


def fastv_forward(
    model,
    embeds: jax.Array,
    position_ids: jax.Array,
    attention_mask: jax.Array,
    layout: VisualLayout,
    keep_ratio: float,
    mode: str,
    prune_after_layer: int = 2,
) -> tuple[jax.Array, jax.Array, Selection]:
    """Layers [0, K) on every token, then the rest on the kept ones.

    Returns logits [B, L, V], the attention mask of the returned sequence [B, L] (L = T in mask
    mode, the shorter length in gather mode) and the selection.
    """
    decoder = model.language_model
    if not 0 < prune_after_layer < len(decoder.layers):
        raise ValueError(f"FastV prunes after layer K in [1, {len(decoder.layers) - 1}], got {prune_after_layer}")
    cos, sin = model.rope(position_ids, embeds.dtype)
    mask = causal_mask(attention_mask)
    x = embeds
    for layer in decoder.layers[:prune_after_layer]:
        x, probs, _ = layer(x, cos, sin, mask)
    last = jnp.maximum(attention_mask.sum(-1) - 1, 0)  # right padding: the last real token
    last_row = jnp.take_along_axis(probs.mean(1), last[:, None, None], axis=1)[:, 0]  # [B, T]
    selection = select_visual_tokens(
        take_positions(last_row, layout.visual_positions), layout, attention_mask, keep_ratio
    )
    x, position_ids, kept_mask = apply_selection(x, position_ids, selection, mode, layout.visual_positions.shape[1])
    cos, sin = model.rope(position_ids, embeds.dtype)
    mask = causal_mask(kept_mask)
    for layer in decoder.layers[prune_after_layer:]:
        x, _, _ = layer(x, cos, sin, mask)
    logits = model.lm_head(decoder.norm(x), decoder.embed_tokens)
    return logits, kept_mask, selection
