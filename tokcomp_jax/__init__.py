"""tokcomp_jax: explainability-guided visual-token pruning for multimodal LLMs, in JAX/Flax."""

from tokcomp_jax.models.checkpoint import load

__all__ = ["load"]
__version__ = "0.1.0"
