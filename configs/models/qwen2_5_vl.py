"""Qwen2.5-VL model presets as ml_collections configs: `--config configs/models/qwen2_5_vl.py:7b`.

Variants: 3b, 7b (released config.json values of Qwen/Qwen2.5-VL-*-Instruct) and tiny (tests).
"""

from ml_collections import ConfigDict

from configs.models import preset_config
from tokcomp_jax.models.qwen2_5_vl.config import Qwen25VLConfig

PRESETS = {"3b": Qwen25VLConfig.qwen2_5_vl_3b, "7b": Qwen25VLConfig.qwen2_5_vl_7b, "tiny": Qwen25VLConfig.tiny}


def get_config(variant: str = "tiny") -> ConfigDict:
    return preset_config(PRESETS, variant, "Qwen2.5-VL")


def model_config(config: ConfigDict) -> Qwen25VLConfig:
    """The frozen model config a ConfigDict (possibly overridden on the command line) describes."""
    return Qwen25VLConfig.from_dict(config.to_dict())
