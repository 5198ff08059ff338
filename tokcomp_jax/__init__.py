"""tokcomp_jax: explainability-guided visual-token pruning for multimodal LLMs, in JAX/Flax."""

from tokcomp_jax.models.checkpoint import load
from tokcomp_jax.pipeline import Answer, Pipeline

__all__ = ["Answer", "Pipeline", "load"]
__version__ = "0.1.0"
