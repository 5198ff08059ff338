"""Flax NNX ports of the MLLM families; they know nothing of pruning or explanations."""

from tokcomp_jax.models.common.config import DecoderConfig
from tokcomp_jax.models.qwen2_vl.config import Qwen2VisionConfig, Qwen2VLConfig
from tokcomp_jax.models.qwen2_vl.modeling import Qwen2VL, Qwen2VLInputs, Qwen2VLOutput, prepare_inputs

__all__ = [
    "DecoderConfig",
    "Qwen2VisionConfig",
    "Qwen2VLConfig",
    "Qwen2VL",
    "Qwen2VLInputs",
    "Qwen2VLOutput",
    "prepare_inputs",
]
