"""Qwen2-VL's config: the ViT with its 2x2 patch merger, the Qwen2 decoder with M-RoPE, token ids.

Presets are the released checkpoints' config.json values (Qwen/Qwen2-VL-2B-Instruct and
Qwen/Qwen2-VL-7B-Instruct; copies of both files, original and re-saved, are in
tests/fixtures/configs with their sources, and tests/models/test_config_layouts.py reads them back
to these presets). The released preprocessor_config.json says min_pixels 3136, max_pixels 12845056
(Qwen/Qwen2-VL-2B @258ddfb); without that file, the processor keeps transformers' defaults.
`from_hf_config` reads a transformers `config.json` dict as transformers does: flat or nested
(`text_config`) text fields, `rope_scaling` or `rope_parameters`, and a `vision_config` that holds
only the fields differing from transformers' defaults (checkpoints re-saved by later versions).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from tokcomp_jax.fields import check_field_types
from tokcomp_jax.models.common.config import DecoderConfig, MultimodalConfig, read_decoder, rope_parameters

# transformers' Qwen2VLTextConfig and Qwen2VLVisionConfig defaults (5.24) for the fields we read.
TEXT_DEFAULTS = dict(vocab_size=152064, hidden_size=8192, intermediate_size=29568, num_hidden_layers=80,
                     num_attention_heads=64, rms_norm_eps=1e-5, rope_theta=1_000_000.0, hidden_act="silu",
                     max_position_embeddings=32768)  # fmt: skip
VISION_DEFAULTS = dict(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4, hidden_act="quick_gelu", in_channels=3,
                       patch_size=14, temporal_patch_size=2, spatial_merge_size=2, hidden_size=3584)  # fmt: skip
DEFAULT_MROPE_SECTION = (16, 24, 24)  # transformers' Qwen2VLRotaryEmbedding when the file gives none
TOKEN_DEFAULTS = dict(image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
                      vision_end_token_id=151653)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Qwen2VisionConfig:
    """The Qwen2-VL vision transformer and its 2x2 patch merger."""

    depth: int = 32
    embed_dim: int = 1280
    num_heads: int = 16
    mlp_ratio: int = 4
    hidden_act: str = "quick_gelu"
    in_channels: int = 3
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    out_hidden_size: int = 1536  # the LLM width the merger projects to
    rope_theta: float = 10_000.0

    def __post_init__(self):
        check_field_types(self)
        if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 4:
            raise ValueError(f"vision embed_dim {self.embed_dim} / num_heads {self.num_heads} must be a multiple of 4")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def patch_dim(self) -> int:
        """Length of one flattened patch: channels x temporal patch x patch x patch."""
        return self.in_channels * self.temporal_patch_size * self.patch_size**2


def read_qwen_vl_text(hf: dict[str, Any]) -> DecoderConfig:
    """The M-RoPE decoder of a Qwen2-VL-style config.json: flat or nested (`text_config`) text fields,
    as transformers reads them from one place; tied embeddings wherever the file says so."""
    text_hf = hf.get("text_config") or hf
    rope = rope_parameters(text_hf, TEXT_DEFAULTS["rope_theta"])
    tie = bool(hf.get("tie_word_embeddings") or text_hf.get("tie_word_embeddings"))
    mrope = tuple(rope.get("mrope_section", DEFAULT_MROPE_SECTION))
    return read_decoder({**text_hf, "tie_word_embeddings": tie}, TEXT_DEFAULTS, mrope_section=mrope)


def check_qwen_vl(config) -> None:
    """What a Qwen2-VL-style config (Qwen2-VL, Qwen2.5-VL) must hold together."""
    check_field_types(config)
    if not isinstance(config.vision, config.VISION):
        raise TypeError(f"{type(config).__name__}.vision must be a {config.VISION.__name__}")
    if config.vision.out_hidden_size != config.text.hidden_size:
        raise ValueError(
            f"vision out_hidden_size {config.vision.out_hidden_size} != text hidden_size {config.text.hidden_size}"
        )
    if config.text.mrope_section is None:
        raise ValueError(f"{type(config).__name__} needs text.mrope_section")


@dataclasses.dataclass(frozen=True)
class Qwen2VLConfig(MultimodalConfig):
    """Qwen2-VL: vision tower + merger + Qwen2 decoder with M-RoPE."""

    text: DecoderConfig
    vision: Qwen2VisionConfig
    image_token_id: int = 151655
    video_token_id: int = 151656
    vision_start_token_id: int = 151652
    vision_end_token_id: int = 151653
    family: str = "qwen2_vl"
    VISION: ClassVar[type] = Qwen2VisionConfig

    def __post_init__(self):
        check_qwen_vl(self)

    # Published presets (config.json of the Qwen/Qwen2-VL-*-Instruct checkpoints).
    @classmethod
    def qwen2_vl_2b(cls) -> Qwen2VLConfig:
        return cls(
            text=DecoderConfig(
                vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                num_attention_heads=12, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
                tie_word_embeddings=True, mrope_section=(16, 24, 24),
            ),
            vision=Qwen2VisionConfig(depth=32, embed_dim=1280, num_heads=16, out_hidden_size=1536),
        )  # fmt: skip

    @classmethod
    def qwen2_vl_7b(cls) -> Qwen2VLConfig:
        return cls(
            text=DecoderConfig(
                vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                num_attention_heads=28, num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
                tie_word_embeddings=False, mrope_section=(16, 24, 24),
            ),
            vision=Qwen2VisionConfig(depth=32, embed_dim=1280, num_heads=16, out_hidden_size=3584),
        )  # fmt: skip

    @classmethod
    def qwen2_vl_72b(cls) -> Qwen2VLConfig:
        """Qwen2-VL-72B-Instruct: Qwen2-72B's decoder (the released config.json's values) behind the 7B's vision tower."""
        return cls(
            text=DecoderConfig(
                vocab_size=152064, hidden_size=8192, intermediate_size=29568, num_hidden_layers=80,
                num_attention_heads=64, num_key_value_heads=8, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
                tie_word_embeddings=False, mrope_section=(16, 24, 24),
            ),
            vision=Qwen2VisionConfig(depth=32, embed_dim=1280, num_heads=16, out_hidden_size=8192),
        )  # fmt: skip

    @classmethod
    def tiny(cls) -> Qwen2VLConfig:
        """A few-hundred-kilobyte model of the real architecture, for tests and demos."""
        return cls(
            text=DecoderConfig(
                vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, rope_theta=10_000.0, mrope_section=(2, 3, 3),
            ),
            vision=Qwen2VisionConfig(depth=2, embed_dim=32, num_heads=4, out_hidden_size=64),
            image_token_id=310, video_token_id=311, vision_start_token_id=312, vision_end_token_id=313,
        )  # fmt: skip

    @classmethod
    def from_hf_config(cls, hf: dict[str, Any]) -> Qwen2VLConfig:
        """From a transformers Qwen2-VL `config.json` dict; fields it leaves out take transformers' defaults."""
        if hf.get("model_type") != "qwen2_vl":
            raise ValueError(f"config.json has model_type {hf.get('model_type')!r}, expected 'qwen2_vl'")
        text = read_qwen_vl_text(hf)
        vision_hf = {**VISION_DEFAULTS, **(hf.get("vision_config") or {})}
        vision = Qwen2VisionConfig(
            depth=vision_hf["depth"], embed_dim=vision_hf["embed_dim"], num_heads=vision_hf["num_heads"],
            mlp_ratio=vision_hf["mlp_ratio"], hidden_act=vision_hf["hidden_act"],
            in_channels=vision_hf["in_channels"], patch_size=vision_hf["patch_size"],
            temporal_patch_size=vision_hf["temporal_patch_size"], spatial_merge_size=vision_hf["spatial_merge_size"],
            out_hidden_size=vision_hf["hidden_size"],
            rope_theta=(vision_hf.get("rope_parameters") or {}).get("rope_theta", 10_000.0),
        )  # fmt: skip
        return cls(text=text, vision=vision, **{key: hf.get(key, value) for key, value in TOKEN_DEFAULTS.items()})
