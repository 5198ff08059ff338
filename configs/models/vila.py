"""VILA1.5 model presets as ml_collections configs: `--config configs/models/vila.py:3b`.

Variants: 3b (Sheared-LLaMA-2.7B), 8b (Llama-3-8B), both with SigLIP-so400m-384 (27 layers, features
from the second-to-last) and the mlp_downsample projector; tiny (tests). A converted checkpoint
always takes its values from its own config files; these presets size eval_shape checks.

Sources: 3b: Efficient-Large-Model/VILA1.5-3b config.json (llm_cfg, vision_tower_cfg; the copy in
NVIDIA/TensorRT-LLM tests/unittest/_torch/modeling/test_modeling_vila.py) and vision_tower/config.json
(huggingface.co, @a3d3e07); tests/models/test_config_layouts.py reads the file back to this preset.
8b: the vision tower as the 3b's (Llama-3-VILA1.5-8b-AWQ vision_tower/config.json); the LLM is
Llama-3-8B's with the vocabulary of 128257 its released llm/config.json gives (VILA's training adds
a [PAD] token to Llama-3's 128256: NVlabs/VILA llava/train/train.py); that llm/config.json itself
was not found in a public copy, so the 8b's other LLM values are Llama-3-8B's.
"""

from ml_collections import ConfigDict

from configs.models import preset_config
from tokcomp_jax.models.common.config import DecoderConfig, SiglipVisionConfig
from tokcomp_jax.models.vila.config import VilaConfig

SIGLIP_SO400M_384 = SiglipVisionConfig(num_hidden_layers=27)


def vila_3b() -> VilaConfig:
    return VilaConfig(
        text=DecoderConfig(
            vocab_size=32000, hidden_size=2560, intermediate_size=6912, num_hidden_layers=32, num_attention_heads=20,
            num_key_value_heads=20, rms_norm_eps=1e-5, rope_theta=10_000.0, attention_bias=False,
            max_position_embeddings=4096,
        ),
        vision=SIGLIP_SO400M_384,
    )  # fmt: skip


def vila_8b() -> VilaConfig:
    return VilaConfig(
        text=DecoderConfig(
            vocab_size=128257, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
            num_key_value_heads=8, rms_norm_eps=1e-5, rope_theta=500_000.0, attention_bias=False,
            max_position_embeddings=8192,
        ),
        vision=SIGLIP_SO400M_384,
    )  # fmt: skip


def tiny() -> VilaConfig:
    return VilaConfig(
        text=DecoderConfig(
            vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10_000.0, attention_bias=False,
            max_position_embeddings=2048,
        ),
        vision=SiglipVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=70,
        ),
    )  # fmt: skip


PRESETS = {"3b": vila_3b, "8b": vila_8b, "tiny": tiny}


def get_config(variant: str = "tiny") -> ConfigDict:
    return preset_config(PRESETS, variant, "VILA1.5")


def model_config(config: ConfigDict) -> VilaConfig:
    return VilaConfig.from_dict(config.to_dict())
