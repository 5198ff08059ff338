"""LLaVA-OneVision model presets as ml_collections configs: `--config configs/models/llava_onevision.py:0.5b`.

Variants: 0.5b, 7b, 72b (llava-hf/llava-onevision-qwen2-*-ov-hf; 72b: Qwen2-72B's decoder) and tiny (tests: 56-pixel SigLIP tiles, a
2-layer Qwen2). Sources: transformers' convert_llava_onevision_weights_to_hf.py builds those configs
from Qwen/Qwen2-0.5B-Instruct / Qwen2-7B-Instruct and SigLIP-so400m with 26 layers, the vocabulary
resized to the Qwen2 tokenizer + 2 (<image>, <video>: 151646, 151647, added_tokens.json) padded to a
multiple of 64 (152000, 152128); the image token id and the 36 pinpoints are read in
mgoin/llava-onevision-qwen2-7b-ov-hf-bnb-full-4bit's copy of the 7b config.json. The released
config.json files themselves were not found in a public copy.
"""

from ml_collections import ConfigDict

from configs.models import preset_config
from tokcomp_jax.models.common.config import DecoderConfig, SiglipVisionConfig
from tokcomp_jax.models.llava_onevision.config import LlavaOnevisionConfig


def tiny() -> LlavaOnevisionConfig:
    return LlavaOnevisionConfig(
        text=DecoderConfig(
            vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, rope_theta=10_000.0,
        ),
        vision=SiglipVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=56,
        ),
        image_token_id=250, video_token_id=251,
        image_grid_pinpoints=((56, 56), (56, 112), (112, 56), (112, 112), (56, 168), (168, 56)),
    )  # fmt: skip


PRESETS = {
    "0.5b": LlavaOnevisionConfig.llava_onevision_0_5b,
    "7b": LlavaOnevisionConfig.llava_onevision_7b,
    "72b": LlavaOnevisionConfig.llava_onevision_72b,
    "tiny": tiny,
}


def get_config(variant: str = "tiny") -> ConfigDict:
    return preset_config(PRESETS, variant, "LLaVA-OneVision")


def model_config(config: ConfigDict) -> LlavaOnevisionConfig:
    return LlavaOnevisionConfig.from_dict(config.to_dict())
