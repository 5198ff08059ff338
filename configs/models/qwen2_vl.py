"""Qwen2-VL model presets as ml_collections configs: `--config configs/models/qwen2_vl.py:2b`.

Variants: 2b, 7b, 72b (published config.json values of Qwen/Qwen2-VL-*-Instruct) and tiny (tests, demo).
"""

from ml_collections import ConfigDict

from configs.models import preset_config
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig

PRESETS = {
    "2b": Qwen2VLConfig.qwen2_vl_2b,
    "7b": Qwen2VLConfig.qwen2_vl_7b,
    "72b": Qwen2VLConfig.qwen2_vl_72b,
    "tiny": Qwen2VLConfig.tiny,
}


def get_config(variant: str = "tiny") -> ConfigDict:
    return preset_config(PRESETS, variant, "Qwen2-VL")


def model_config(config: ConfigDict) -> Qwen2VLConfig:
    """The frozen model config a ConfigDict (possibly overridden on the command line) describes."""
    return Qwen2VLConfig.from_dict(config.to_dict())
