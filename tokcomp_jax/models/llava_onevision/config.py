"""LLaVA-OneVision's config (transformers' `LlavaOnevisionConfig`): SigLIP tiles, a 2-layer MLP
projector and a Qwen2 decoder with 1-D RoPE.

Presets: the config.json of llava-hf/llava-onevision-qwen2-0.5b-ov-hf and -7b-ov-hf. Reading a
config.json follows transformers: a missing `text_config` is a Qwen2 with Qwen2Config's defaults,
a missing `vision_config` is LLaVA-OneVision's SigLIP-so400m (26 layers), and each field left out
takes its class default.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from tokcomp_jax.fields import check_field_types
from tokcomp_jax.models.common.config import (
    QWEN2_DEFAULTS,
    SIGLIP_DEFAULTS,
    DecoderConfig,
    MultimodalConfig,
    SiglipVisionConfig,
    read_decoder,
)

# transformers' LlavaOnevisionConfig: its default vision tower, and its top-level defaults.
VISION_DEFAULTS = dict(SIGLIP_DEFAULTS, hidden_size=1152, intermediate_size=4304, num_hidden_layers=26,
                       num_attention_heads=16, image_size=384, patch_size=14)  # fmt: skip

ANYRES_PINPOINTS = tuple((384 * rows, 384 * cols) for rows in range(1, 7) for cols in range(1, 7))


@dataclasses.dataclass(frozen=True)
class LlavaOnevisionConfig(MultimodalConfig):
    """LLaVA-OneVision (transformers' `LlavaOnevisionConfig`): SigLIP tiles -> 2-layer MLP -> Qwen2."""

    text: DecoderConfig
    vision: SiglipVisionConfig
    image_token_id: int = 151646
    video_token_id: int = 151647
    image_grid_pinpoints: tuple[tuple[int, int], ...] = ANYRES_PINPOINTS
    vision_feature_layer: int = -1
    vision_aspect_ratio: str = "anyres_max_9"
    projector_hidden_act: str = "gelu"
    multimodal_projector_bias: bool = True
    family: str = "llava_onevision"
    VISION: ClassVar[type] = SiglipVisionConfig

    def __post_init__(self):
        if self.text.mrope_section is not None:
            raise ValueError("LLaVA-OneVision's Qwen2 decoder uses 1-D RoPE; mrope_section must be None")
        if not self.vision_aspect_ratio.startswith("anyres_max_"):
            raise ValueError(f"vision_aspect_ratio {self.vision_aspect_ratio!r}: only anyres_max_N is supported")
        object.__setattr__(self, "image_grid_pinpoints", tuple(tuple(p) for p in self.image_grid_pinpoints))
        check_field_types(self)

    @property
    def max_tiles(self) -> int:
        return int(self.vision_aspect_ratio.removeprefix("anyres_max_"))

    @classmethod
    def llava_onevision_0_5b(cls) -> LlavaOnevisionConfig:
        """llava-hf/llava-onevision-qwen2-0.5b-ov-hf."""
        return cls(
            text=DecoderConfig(
                vocab_size=152000, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                num_attention_heads=14, num_key_value_heads=2, rope_theta=1_000_000.0, tie_word_embeddings=True,
            ),
            vision=SiglipVisionConfig(),
        )  # fmt: skip

    @classmethod
    def llava_onevision_7b(cls) -> LlavaOnevisionConfig:
        """llava-hf/llava-onevision-qwen2-7b-ov-hf."""
        return cls(
            text=DecoderConfig(
                vocab_size=152128, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                num_attention_heads=28, num_key_value_heads=4, rope_theta=1_000_000.0, tie_word_embeddings=False,
            ),
            vision=SiglipVisionConfig(),
        )  # fmt: skip

    @classmethod
    def llava_onevision_72b(cls) -> LlavaOnevisionConfig:
        """llava-hf/llava-onevision-qwen2-72b-ov-hf: Qwen2-72B's decoder; the vocabulary as the 7B's (152128)."""
        return cls(
            text=DecoderConfig(
                vocab_size=152128, hidden_size=8192, intermediate_size=29568, num_hidden_layers=80,
                num_attention_heads=64, num_key_value_heads=8, rope_theta=1_000_000.0, tie_word_embeddings=False,
            ),
            vision=SiglipVisionConfig(),
        )  # fmt: skip

    @classmethod
    def from_hf_config(cls, hf: dict[str, Any]) -> LlavaOnevisionConfig:
        """From a transformers LLaVA-OneVision `config.json` dict; fields it leaves out take transformers' defaults."""
        if hf.get("model_type") != "llava_onevision":
            raise ValueError(f"config.json has model_type {hf.get('model_type')!r}, expected 'llava_onevision'")
        text_hf = hf.get("text_config") or {}
        if text_hf.get("model_type", "qwen2") != "qwen2":
            raise ValueError(f"text_config model_type {text_hf['model_type']!r}: only qwen2 is supported")
        tie = bool(hf.get("tie_word_embeddings") or text_hf.get("tie_word_embeddings"))
        text = read_decoder({**text_hf, "tie_word_embeddings": tie}, QWEN2_DEFAULTS)
        if hf.get("vision_feature_select_strategy", "full") != "full":
            raise ValueError("only vision_feature_select_strategy='full' (SigLIP has no CLS token) is supported")
        layer = hf.get("vision_feature_layer", -1)
        if not isinstance(layer, int):
            raise ValueError(f"vision_feature_layer {layer!r}: only one layer is supported")
        return cls(
            text=text, vision=SiglipVisionConfig.from_hf_config(hf.get("vision_config") or {}, VISION_DEFAULTS),
            image_token_id=hf.get("image_token_index", 151646), video_token_id=hf.get("video_token_index", 151647),
            image_grid_pinpoints=tuple(tuple(p) for p in hf.get("image_grid_pinpoints", ANYRES_PINPOINTS)),
            vision_feature_layer=layer, vision_aspect_ratio=hf.get("vision_aspect_ratio", "anyres_max_9"),
            projector_hidden_act=hf.get("projector_hidden_act", "gelu"),
            multimodal_projector_bias=hf.get("multimodal_projector_bias", True),
        )  # fmt: skip
