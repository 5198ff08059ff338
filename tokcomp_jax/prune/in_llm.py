"""Pruning inside the LLM: FastV, PyramidDrop and DART, as their code defines them, in one staged prefill.

A method is a list of stages: before layer K_s, score the visual tokens still in the sequence from
what layers [0, K_s) computed, keep the best (a static number of slots; each sample's own count
masked), gather them with their original position ids, and run the next layers on the shorter
sequence. Every stage has its own slice of the KV cache, so generation decodes against each
layer's own (pruned) keys and values (tokcomp_jax.generate).

- **FastV** (pkunlp-icler/FastV, `LlamaModel.fastv_forward` of its llava-hf transformers): one stage
  at K (default 2); a visual token's score is the attention the last token paid to it in layer
  K - 1, heads averaged; the pruned cache is kept for decoding, as that version does.
- **PyramidDrop** (Cooperx521/PyramidDrop, `modeling_llama_pdrop.py`, `pdrop_rank_drop`): stages at
  L/4, L/2, 3L/4 keeping lambda, lambda^2, lambda^3 of the original visual tokens (the paper's
  lambda = 0.5 is keep_ratio 0.5 here); the score is the attention of the last instruction token,
  computed with layer K's own input norm, q/k projections and RoPE on the hidden states before
  the drop, over every key it sees, heads averaged. PyramidDrop renumbers LLaVA's 1-D positions
  after a drop; here position ids are never renumbered (as FastV and DART do; M-RoPE ids would
  lose their meaning).
- **DART** (ZichenWen1/DART, Qwen2-VL `modeling_qwen2_vl_self.py`, `DART.get_retained_image_token`):
  one stage at K = 2. Pivots: the 4 visual and the 4 instruction tokens of largest L1 norm of layer
  K - 1's keys; the hidden states after layer K - 1 go through the decoder's final norm; each
  pivot in turn (visual pivots, then text pivots, each in position order) takes the t remaining
  visual tokens least cosine-similar to it, t = floor(n * keep_ratio / 8). Kept: the 4 visual
  pivots and the 8 t picks (DART's count; about keep_ratio * n + 4).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from tokcomp_jax.flops import staged_prefill_flops
from tokcomp_jax.models.common.attention import CacheSegment
from tokcomp_jax.models.common.config import DecoderConfig
from tokcomp_jax.models.common.decoder import causal_mask, unpack_deepstack
from tokcomp_jax.models.layout import VisualLayout, check_keep_ratio, keep_count
from tokcomp_jax.prune.features import attention_to_visual, take_positions
from tokcomp_jax.prune.select import Selection, gather_kept, per_sample_keep, select_count, selection_of_slots

METHODS = ("fastv", "pdrop", "dart")
DART_VISUAL_PIVOTS = 4
DART_TEXT_PIVOTS = 4
DART_PIVOTS = DART_VISUAL_PIVOTS + DART_TEXT_PIVOTS


@dataclasses.dataclass(frozen=True)
class LayerPruning:
    """Before each layer of `layers`, keep `keep_ratios[s]` of each sample's original visual tokens."""

    method: str
    layers: tuple[int, ...]
    keep_ratios: tuple[float, ...]

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown in-LLM pruning method {self.method!r}; expected one of {METHODS}")
        if len(self.layers) != len(self.keep_ratios) or not self.layers:
            raise ValueError(
                f"{self.method}: one keep ratio per pruning layer, got {self.layers} and {self.keep_ratios}"
            )
        if self.method != "pdrop" and len(self.layers) != 1:
            raise ValueError(f"{self.method} prunes at one layer, got {self.layers}")
        if list(self.layers) != sorted(set(self.layers)) or self.layers[0] < 1:
            raise ValueError(f"{self.method}: pruning layers must be increasing and at least 1, got {self.layers}")
        for ratio in self.keep_ratios:
            check_keep_ratio(ratio)
        if list(self.keep_ratios) != sorted(self.keep_ratios, reverse=True):
            raise ValueError(f"{self.method}: keep ratios must not grow from stage to stage, got {self.keep_ratios}")

    def kept_counts(self, count: int) -> tuple[int, ...]:
        """Visual tokens of a sample with `count` of them that each stage keeps (host; as the graph rounds)."""
        if self.method != "dart":
            return tuple(keep_count(ratio, count) for ratio in self.keep_ratios)
        picks = math.floor(float(np.float32(count) * np.float32(self.keep_ratios[0]) / DART_PIVOTS) + 1e-4)
        return (min(count, min(count, DART_VISUAL_PIVOTS) + DART_PIVOTS * picks),)

    def prefill_flops(self, config: DecoderConfig, length: int, visual: int) -> int:
        """Analytic prefill FLOPs (tokcomp_jax.flops) of a sample of `length` real tokens, `visual` of them prunable."""
        text = length - visual
        lengths = (length, *(text + kept for kept in self.kept_counts(visual)))
        return staged_prefill_flops(config, lengths, (0, *self.layers))

    def check_depth(self, num_layers: int) -> None:
        """Refuse a decoder too shallow for the stages: the scorer, the layers it needs, the model's depth."""
        if self.layers[-1] >= num_layers:
            raise ValueError(
                f"{self.method} prunes before layer {self.layers[-1]}; the decoder has {num_layers} layers: it needs "
                f"at least {self.layers[-1] + 1} (prune before an earlier layer, or use a scorer at the LLM input)"
            )


def layer_pruning(method: str, keep_ratio: float, num_layers: int, layer: int = 2) -> LayerPruning:
    """A method at its published defaults for one keep ratio (PyramidDrop: the per-stage lambda)."""
    if method == "pdrop":
        if num_layers < 4:
            raise ValueError(
                f"pdrop (PyramidDrop) prunes before layers L/4, L/2 and 3L/4: it needs at least 4 layers; the decoder "
                f"has {num_layers} (use fastv or dart at an earlier layer, or a scorer at the LLM input)"
            )
        layers = tuple(num_layers * stage // 4 for stage in (1, 2, 3))
        ratios = tuple(keep_ratio**stage for stage in (1, 2, 3))
        pruning = LayerPruning(method, layers, ratios)
    else:
        pruning = LayerPruning(method, (layer,), (keep_ratio,))
    pruning.check_depth(num_layers)
    return pruning


@struct.dataclass
class StagedPrefill:
    hidden: jax.Array  # [B, L, D] after the final norm, over the last stage's sequence
    attention_mask: jax.Array  # [B, L] its real tokens
    position_ids: jax.Array  # [..., B, L] their (original) position ids
    selection: Selection  # the visual tokens of the input that reached the last layer
    segments: tuple[CacheSegment, ...] | None  # one per stage, when caches were asked for


def staged_prefill(
    model,
    embeds,
    position_ids,
    attention_mask,
    layout: VisualLayout,
    pruning: LayerPruning,
    cache_extra: int | None = None,
    mode: str = "gather",
) -> StagedPrefill:
    """Run every layer, pruning visual tokens before each of `pruning.layers`.

    embeds [B, T, D], position ids [..., B, T], attention_mask [B, T], layout of the visual tokens.
    `cache_extra`: fill a KV cache per stage with room for that many generated tokens. `mode`
    "gather" drops the pruned tokens; "mask" keeps the full length and masks them (same values).
    """
    original_layout, original_mask = layout, attention_mask
    decoder = model.language_model
    pruning.check_depth(len(decoder.layers))
    bounds = (0, *pruning.layers, len(decoder.layers))
    original_count, num_slots = layout.visual_count, layout.visual_positions.shape[1]
    x, positions, mask = embeds, position_ids, attention_mask
    slot_of = jnp.where(layout.visual_mask, jnp.arange(num_slots)[None], num_slots)  # original slot per current slot
    segments, previous = [], None
    cos, sin = model.rope(positions, embeds.dtype)
    for stage in range(len(bounds) - 1):
        if stage > 0:
            ratio = pruning.keep_ratios[stage - 1]
            scores, keep = _stage_scores(model, pruning, bounds[stage], previous, x, cos, sin, mask, layout)
            keep = per_sample_keep(ratio, original_count) if keep is None else keep
            selection = select_count(
                scores, layout, mask, min(keep_count(ratio, num_slots), layout_slots(layout)), keep
            )
            kept_slots = jnp.take_along_axis(slot_of, jnp.minimum(selection.kept_slots, layout_slots(layout) - 1), 1)
            slot_of = jnp.where(selection.kept_valid, kept_slots, num_slots)
            if mode == "gather":
                length = x.shape[1] - layout_slots(layout) + selection.kept_slots.shape[1]
                x, positions, mask = gather_kept(x, positions, selection, length)
                layout = layout_after(layout, selection)
                cos, sin = model.rope(positions, embeds.dtype)
            else:
                mask = selection.keep_position.astype(jnp.int32)
                layout = masked_layout(layout, selection)
        previous, segment = _run_stage(
            decoder, pruning, bounds[stage], bounds[stage + 1], x, cos, sin, mask, cache_extra
        )
        x = previous.hidden
        segments.append(segment)
    return StagedPrefill(
        hidden=decoder.norm(x),
        attention_mask=mask,
        position_ids=positions,
        selection=selection_of_slots(jnp.sort(slot_of, axis=-1), original_layout, original_mask),
        segments=tuple(segments) if cache_extra is not None else None,
    )


def layout_slots(layout: VisualLayout) -> int:
    return layout.visual_positions.shape[1]


def _run_stage(decoder, pruning, first, end, x, cos, sin, mask, cache_extra):
    """Layers [first, end) on the current sequence: (the stack's output, whose tap on layer end - 1
    the next stage scores from, and the stage's cache segment or None)."""
    batch, length, _ = x.shape
    cache = None if cache_extra is None else decoder.init_cache(batch, length + cache_extra, x.dtype, slice(first, end))
    scored_next = end < len(decoder.layers) and pruning.method != "pdrop"  # PyramidDrop uses the next layer's q/k
    tap = end - 1 if scored_next else None  # FastV reads layer end - 1's attention, DART its input
    out = decoder.layers(x, cos, sin, causal_mask(mask), layers=slice(first, end), cache=cache, attention_at=tap)
    if cache is None:
        return out, None
    key_valid = jnp.concatenate([mask.astype(bool), jnp.zeros((batch, cache_extra), bool)], axis=1)
    return out, CacheSegment(out.cache, key_valid, (first, end), length)


def _stage_scores(model, pruning, boundary, previous, x, cos, sin, mask, layout):
    """Scores [B, N] of the current visual slots before layer `boundary`, and DART's own keep count
    per sample [B] (None: the stage's keep ratio decides)."""
    decoder = model.language_model
    x, _ = unpack_deepstack(x, decoder.layers.hidden_size)  # DeepStack features still to add play no part
    last = jnp.where(mask.astype(bool), jnp.arange(mask.shape[1]), 0).max(-1)[:, None]  # the last real token [B, 1]
    if pruning.method == "fastv":
        row = jnp.take_along_axis(previous.attention.mean(1), last[:, :, None], axis=1)[:, 0]  # [B, T]
        return take_positions(row, layout.visual_positions), None
    if pruning.method == "pdrop":
        return attention_to_visual(decoder.layers[boundary], x, cos, sin, mask, last, layout).mean(1), None
    layer = decoder.layers[boundary - 1]
    _, keys = layer.self_attn.rotated_query_key(layer.input_layernorm(previous.attention_input), cos, sin)
    return dart_scores(decoder.norm(x), keys.reshape(*keys.shape[:2], -1), layout, pruning.keep_ratios[0])


def dart_scores(hidden, keys, layout: VisualLayout, keep_ratio: float) -> tuple[jax.Array, jax.Array]:
    """DART's selection as scores: hidden [B, T, D] (after the final norm), keys [B, T, K*H] of layer
    K - 1 -> (scores [B, N]: 1 for kept visual slots, 0 otherwise; kept count per sample [B])."""
    visual_mask, num_slots = layout.visual_mask, layout.visual_positions.shape[1]
    count = layout.visual_count
    key_norm = jnp.abs(keys.astype(jnp.float32)).sum(-1)  # L1 norm [B, T]
    visual_norm = jnp.where(visual_mask, take_positions(key_norm, layout.visual_positions), -jnp.inf)
    text_mask = layout.query_positions >= 0
    text_norm = jnp.where(text_mask, take_positions(key_norm, layout.query_positions), -jnp.inf)
    visual_pivots = _top_in_order(visual_norm, min(DART_VISUAL_PIVOTS, num_slots))  # [B, P] slots
    text_pivots = _top_in_order(text_norm, min(DART_TEXT_PIVOTS, text_norm.shape[1]))  # [B, P'] query slots
    unit = _unit(take_positions(hidden, layout.visual_positions))  # [B, N, D]
    pivot_units = jnp.concatenate(
        [
            jnp.take_along_axis(unit, visual_pivots[..., None], axis=1),
            _unit(take_positions(hidden, jnp.take_along_axis(layout.query_positions, text_pivots, axis=1))),
        ],
        axis=1,
    )
    pivot_valid = jnp.concatenate(
        [
            jnp.take_along_axis(visual_mask, visual_pivots, axis=1),
            jnp.take_along_axis(text_mask, text_pivots, axis=1),
        ],
        axis=1,
    )
    rows = jnp.arange(unit.shape[0])[:, None]
    kept = jnp.zeros(visual_mask.shape, bool).at[rows, visual_pivots].set(pivot_valid[:, : visual_pivots.shape[1]])
    picks = jnp.floor(count.astype(jnp.float32) * jnp.float32(keep_ratio) / DART_PIVOTS + 1e-4).astype(jnp.int32)
    static_picks = max(1, math.floor(num_slots * keep_ratio / DART_PIVOTS + 1e-4))
    for p in range(pivot_units.shape[1]):
        candidates = visual_mask & ~kept
        dissimilar = -jnp.einsum("BND,BD->BN", unit, pivot_units[:, p])
        ranked = jnp.where(candidates, dissimilar, -jnp.inf)
        values, chosen = jax.lax.top_k(ranked, min(static_picks, num_slots))
        take = (jnp.arange(chosen.shape[1])[None] < picks[:, None]) & jnp.isfinite(values) & pivot_valid[:, p : p + 1]
        kept = kept.at[rows, jnp.where(take, chosen, num_slots)].set(True, mode="drop")
    return kept.astype(jnp.float32), kept.sum(-1).astype(jnp.int32)


def _top_in_order(values: jax.Array, k: int) -> jax.Array:
    """The indices of the k largest values per row, in ascending index order: [B, k]."""
    return jnp.sort(jax.lax.top_k(values, k)[1], axis=-1)


def _unit(x: jax.Array) -> jax.Array:
    x = x.astype(jnp.float32)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


def masked_layout(layout: VisualLayout, selection: Selection) -> VisualLayout:
    """The layout of a masked (not gathered) selection: the kept slots at their positions."""
    old = jnp.take_along_axis(layout.visual_positions, jnp.minimum(selection.kept_slots, layout_slots(layout) - 1), 1)
    return layout.replace(visual_positions=jnp.where(selection.kept_valid, old, -1))


def layout_after(layout: VisualLayout, selection: Selection) -> VisualLayout:
    """The visual and instruction positions in the gathered sequence (gather_kept) of a selection."""
    keep = selection.keep_position
    new_index = jnp.cumsum(keep, axis=-1) - 1  # position of each kept token in the gathered sequence
    old = jnp.take_along_axis(
        layout.visual_positions, jnp.minimum(selection.kept_slots, layout.visual_positions.shape[1] - 1), 1
    )
    visual = jnp.where(selection.kept_valid, jnp.take_along_axis(new_index, jnp.maximum(old, 0), 1), -1)
    queries = layout.query_positions
    queries = jnp.where(queries >= 0, jnp.take_along_axis(new_index, jnp.maximum(queries, 0), 1), -1)
    return VisualLayout(visual_positions=visual.astype(jnp.int32), query_positions=queries.astype(jnp.int32))
