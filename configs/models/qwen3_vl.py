"""Qwen3-VL model presets as ml_collections configs: `--config configs/models/qwen3_vl.py:8b`.

Variants: 2b, 4b, 8b (released config.json values of Qwen/Qwen3-VL-*-Instruct) and tiny (tests).
"""

from ml_collections import ConfigDict

from configs.models import preset_config
from tokcomp_jax.models.qwen3_vl.config import Qwen3VLConfig

PRESETS = {
    "2b": Qwen3VLConfig.qwen3_vl_2b,
    "4b": Qwen3VLConfig.qwen3_vl_4b,
    "8b": Qwen3VLConfig.qwen3_vl_8b,
    "tiny": Qwen3VLConfig.tiny,
}


def get_config(variant: str = "tiny") -> ConfigDict:
    return preset_config(PRESETS, variant, "Qwen3-VL")


def model_config(config: ConfigDict) -> Qwen3VLConfig:
    """The frozen model config a ConfigDict (possibly overridden on the command line) describes."""
    return Qwen3VLConfig.from_dict(config.to_dict())
