"""Scores for every visual token at the LLM input (higher = keep): the mapper and the baselines.

Each scorer maps (model, embeddings, ScoringInputs) to scores [B, N]; padding is handled by the
selection. FastV prunes inside the LLM instead and lives in prune/fastv.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from tokcomp_jax.mapper.inputs import MapperBatch
from tokcomp_jax.models.common.mllm import TowerAttention
from tokcomp_jax.models.layout import VisualLayout
from tokcomp_jax.prune.features import first_layer_features, take_positions, visual_embeddings
from tokcomp_jax.prune.select import per_sample_keep

DART_PIVOTS = 8


@struct.dataclass
class ScoringInputs:
    layout: VisualLayout
    neighbour_index: jax.Array | None = None  # [B, N, K] mapper conv taps (mapper scorer)
    relevance: jax.Array | None = None  # [B, N] relevance labels (oracle scorer)
    rng: jax.Array | None = None  # PRNG key (random scorer)


def mapper_scores(model, mapper, embeds, position_ids, attention_mask, scoring: ScoringInputs) -> jax.Array:
    """The paper's method: the mapper's logits over first-layer attention features computed from q/k only."""
    features = first_layer_features(model, embeds, position_ids, attention_mask, scoring.layout)
    batch = MapperBatch(features=features, mask=scoring.layout.visual_mask, neighbour_index=scoring.neighbour_index)
    return mapper(batch)


def attention_scores(model, embeds, position_ids, attention_mask, scoring: ScoringInputs) -> jax.Array:
    """Raw layer-1 attention from the instruction tokens, mean over heads (no mapper)."""
    return first_layer_features(model, embeds, position_ids, attention_mask, scoring.layout).mean(1)


def random_scores(scoring: ScoringInputs) -> jax.Array:
    if scoring.rng is None:
        raise ValueError("the random scorer needs ScoringInputs.rng")
    return jax.random.uniform(scoring.rng, scoring.layout.visual_positions.shape)


def stride_scores(scoring: ScoringInputs, keep_ratio: float) -> jax.Array:
    """Uniform stride: each sample's kept tokens evenly spaced over its n_b tokens."""
    count = scoring.layout.visual_count
    keep = per_sample_keep(keep_ratio, count)
    slots = scoring.layout.visual_positions.shape[1]
    chosen = (jnp.arange(slots)[None] * count[:, None]) // jnp.maximum(keep, 1)[:, None]  # [B, N] slot of pick i
    chosen = jnp.where(jnp.arange(slots)[None] < keep[:, None], chosen, slots)  # unused picks fall off the end
    picked = (
        jnp.zeros((count.shape[0], slots), bool).at[jnp.arange(count.shape[0])[:, None], chosen].set(True, mode="drop")
    )
    return picked.astype(jnp.float32)


def oracle_scores(scoring: ScoringInputs) -> jax.Array:
    if scoring.relevance is None:
        raise ValueError("the oracle scorer needs relevance labels in ScoringInputs.relevance")
    return scoring.relevance


def vision_attention_scores(vision_attention: TowerAttention, scoring: ScoringInputs) -> jax.Array:
    """VisionZip-style dominant tokens: the attention each visual token received in the vision tower's
    last block (Qwen2-VL has no [CLS]; mean over heads and over its image's queries), [B, T] -> [B, N]."""
    return take_positions(vision_attention.received, scoring.layout.visual_positions)


def dart_scores(embeds: jax.Array, hidden_size: int, scoring: ScoringInputs) -> jax.Array:
    """DART-style de-duplication: pivots (largest-norm visual tokens) first, then the tokens least similar
    to them, by the token embeddings (of DeepStack-packed embeds [B, T, (1 + L) * D], the first D)."""
    layout = scoring.layout
    visual = visual_embeddings(embeds, hidden_size, layout.visual_positions)  # [B, N, D]
    norm = jnp.linalg.norm(visual, axis=-1)
    num_pivots = min(DART_PIVOTS, visual.shape[1])
    _, pivots = jax.lax.top_k(jnp.where(layout.visual_mask, norm, -jnp.inf), num_pivots)
    unit = visual / jnp.maximum(norm[..., None], 1e-6)
    pivot_unit = jnp.take_along_axis(unit, pivots[..., None], axis=1)  # [B, P, D]
    similarity = jnp.einsum("BND,BPD->BNP", unit, pivot_unit).max(-1)
    is_pivot = (jnp.arange(visual.shape[1])[None, :, None] == pivots[:, None, :]).any(-1)
    return jnp.where(is_pivot, 3.0, 1.0 - similarity)
