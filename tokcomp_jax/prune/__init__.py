"""Visual-token pruning at the LLM input: first-layer features, static top-k selection, baselines."""

from tokcomp_jax.models.layout import Buckets, keep_count
from tokcomp_jax.prune.pruner import (
    SCORERS,
    PruneConfig,
    PrunedOutput,
    prepare_pruning,
    prune_embeddings,
    pruned_forward,
)

__all__ = [
    "SCORERS",
    "Buckets",
    "PruneConfig",
    "PrunedOutput",
    "keep_count",
    "prepare_pruning",
    "prune_embeddings",
    "pruned_forward",
]
