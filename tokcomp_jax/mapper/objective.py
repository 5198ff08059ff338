"""The mapper's training target and loss (jitted) and its quality metrics (host, numpy).

Target (the paper's): the relevance label with its bottom half zeroed and the rest renormalised
to sum to one; loss KL(target || softmax(logits)) over the real tokens.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

KEEP_RATIOS = (0.5, 0.25, 0.111)


def sparse_target(relevance: jax.Array, mask: jax.Array, keep_fraction: float = 0.5) -> jax.Array:
    """Relevance [B, N] -> distribution [B, N] over each sample's top `keep_fraction` real tokens.

    Keeps the ceil(keep_fraction * count) largest values (ties broken by position), zeroes the rest
    and padding, divides by the sum. A sample with no positive kept relevance gets a uniform target
    over its kept tokens.
    """
    count = mask.sum(-1, keepdims=True)
    keep = jnp.ceil(keep_fraction * count).astype(jnp.int32)
    ranked = jnp.where(mask, relevance, -jnp.inf)
    order = jnp.argsort(-ranked, axis=-1, stable=True)
    rank = jnp.argsort(order, axis=-1, stable=True)
    kept = (rank < keep) & mask
    values = jnp.where(kept, relevance, 0.0)
    total = values.sum(-1, keepdims=True)
    uniform = kept / jnp.maximum(kept.sum(-1, keepdims=True), 1)
    return jnp.where(total > 0, values / jnp.where(total > 0, total, 1.0), uniform)


def kl_divergence(target: jax.Array, log_probs: jax.Array) -> jax.Array:
    """KL(target || prediction) per sample: [B, N], [B, N] -> [B] (terms with target 0 contribute 0)."""
    safe = jnp.where(target > 0, target, 1.0)
    return jnp.where(target > 0, target * (jnp.log(safe) - log_probs), 0.0).sum(-1)


def top_k_overlap(scores: np.ndarray, labels: np.ndarray, keep_ratio: float) -> float:
    """|top-k(scores) ∩ top-k(labels)| / k for one sample's [N] arrays, k = ceil(keep_ratio * N)."""
    k = max(1, math.ceil(keep_ratio * scores.size))
    chosen = np.argsort(-scores, kind="stable")[:k]
    reference = np.argsort(-labels, kind="stable")[:k]
    return len(np.intersect1d(chosen, reference)) / k


def spearman(scores: np.ndarray, labels: np.ndarray) -> float:
    """Rank correlation of one sample's [N] scores and labels (ties averaged); 0 if either is constant."""
    if np.ptp(scores) == 0 or np.ptp(labels) == 0:
        return 0.0
    return float(stats.spearmanr(scores, labels).statistic)


def quality_metrics(scores: list[np.ndarray], labels: list[np.ndarray], keep_ratios=KEEP_RATIOS) -> dict[str, float]:
    """Mean over samples of top-k overlap at each keep ratio and of the Spearman correlation."""
    metrics = {
        f"overlap@{ratio:g}": float(np.mean([top_k_overlap(s, y, ratio) for s, y in zip(scores, labels, strict=True)]))
        for ratio in keep_ratios
    }
    metrics["spearman"] = float(np.mean([spearman(s, y) for s, y in zip(scores, labels, strict=True)]))
    return metrics
