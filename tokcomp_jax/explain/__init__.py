"""Explanations: relevance of each visual token for the model's answer (labels for the mapper)."""

from tokcomp_jax.explain.relevance import METHODS, append_answers, relevance

__all__ = ["METHODS", "append_answers", "relevance"]
