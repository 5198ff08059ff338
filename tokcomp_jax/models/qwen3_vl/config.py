"""Qwen3-VL's config: a ViT with learned, resampled position embeddings, 16-pixel patches and
DeepStack mergers; a Qwen3 decoder (q/k norms, explicit head_dim, no q/k/v biases) with
interleaved M-RoPE.

Presets are the released config.json values of Qwen/Qwen3-VL-2B-Instruct, -4B-Instruct and
-8B-Instruct (text: 28 layers of 2048 / 36 of 2560 / 36 of 4096, head_dim 128, 8 KV heads,
rope_theta 5e6, M-RoPE sections (24, 20, 20) interleaved; vision: 24 blocks of 1024 with DeepStack
after blocks 5, 11, 17 for 2B and 4B, 27 blocks of 1152 after 8, 16, 24 for 8B; a 48 x 48 table
of position embeddings), as re-saved copies of the 4B and 8B files show. `from_hf_config` reads
the released layout (`rope_scaling`) and transformers 5's (`rope_parameters`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from tokcomp_jax.fields import check_field_types
from tokcomp_jax.models.common.config import DecoderConfig, MultimodalConfig, read_decoder, rope_parameters
from tokcomp_jax.models.qwen2_vl.config import TOKEN_DEFAULTS, check_qwen_vl

# transformers' Qwen3VLTextConfig and Qwen3VLVisionConfig defaults (5.x) for the fields we read.
TEXT_DEFAULTS = dict(vocab_size=151936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32,
                     num_attention_heads=32, rms_norm_eps=1e-6, rope_theta=500_000.0, hidden_act="silu",
                     max_position_embeddings=128000, head_dim=128)  # fmt: skip
VISION_DEFAULTS = dict(depth=27, hidden_size=1152, hidden_act="gelu_pytorch_tanh", intermediate_size=4304, num_heads=16,
                       in_channels=3, patch_size=16, spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=3584,
                       num_position_embeddings=2304, deepstack_visual_indexes=(8, 16, 24))  # fmt: skip
DEFAULT_MROPE_SECTION = (24, 20, 20)  # transformers' Qwen3VLTextRotaryEmbedding when the file gives none


@dataclasses.dataclass(frozen=True)
class Qwen3VisionConfig:
    """The Qwen3-VL vision transformer, its 2x2 patch merger and one DeepStack merger per tapped block."""

    depth: int = 27
    embed_dim: int = 1152  # config.json's vision hidden_size
    intermediate_size: int = 4304
    num_heads: int = 16
    hidden_act: str = "gelu_pytorch_tanh"
    in_channels: int = 3
    patch_size: int = 16
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    out_hidden_size: int = 3584
    num_position_embeddings: int = 2304  # a square table, resampled to each image's patch grid
    deepstack_visual_indexes: tuple[int, ...] = (8, 16, 24)  # blocks whose outputs feed DeepStack
    rope_theta: float = 10_000.0

    def __post_init__(self):
        object.__setattr__(self, "deepstack_visual_indexes", tuple(self.deepstack_visual_indexes))  # JSON: a list
        check_field_types(self)
        if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 4:
            raise ValueError(f"vision embed_dim {self.embed_dim} / num_heads {self.num_heads} must be a multiple of 4")
        if math.isqrt(self.num_position_embeddings) ** 2 != self.num_position_embeddings:
            raise ValueError(f"num_position_embeddings {self.num_position_embeddings} is not a square table")
        if any(not 0 <= index < self.depth for index in self.deepstack_visual_indexes):
            raise ValueError(
                f"deepstack_visual_indexes {self.deepstack_visual_indexes} must lie in [0, depth {self.depth})"
            )

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def patch_dim(self) -> int:
        return self.in_channels * self.temporal_patch_size * self.patch_size**2

    @property
    def position_grid_side(self) -> int:
        """Side of the learned position-embedding table (48 for 2304 entries)."""
        return math.isqrt(self.num_position_embeddings)


@dataclasses.dataclass(frozen=True)
class Qwen3VLConfig(MultimodalConfig):
    """Qwen3-VL: vision tower + merger + DeepStack mergers + Qwen3 decoder with interleaved M-RoPE."""

    text: DecoderConfig
    vision: Qwen3VisionConfig
    image_token_id: int = TOKEN_DEFAULTS["image_token_id"]
    video_token_id: int = TOKEN_DEFAULTS["video_token_id"]
    vision_start_token_id: int = TOKEN_DEFAULTS["vision_start_token_id"]
    vision_end_token_id: int = TOKEN_DEFAULTS["vision_end_token_id"]
    family: str = "qwen3_vl"
    VISION: ClassVar[type] = Qwen3VisionConfig

    def __post_init__(self):
        check_qwen_vl(self)
        if not (self.text.qk_norm and self.text.mrope_interleaved):
            raise ValueError(
                "Qwen3-VL's decoder has q/k norms and interleaved M-RoPE (text.qk_norm, mrope_interleaved)"
            )
        if len(self.vision.deepstack_visual_indexes) > self.text.num_hidden_layers:
            raise ValueError(
                f"{len(self.vision.deepstack_visual_indexes)} DeepStack levels for "
                f"{self.text.num_hidden_layers} decoder layers"
            )

    @staticmethod
    def _text(**fields) -> DecoderConfig:
        return DecoderConfig(
            vocab_size=151936, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6, rope_theta=5_000_000.0,
            attention_bias=False, mrope_section=DEFAULT_MROPE_SECTION, mrope_interleaved=True, qk_norm=True,
            max_position_embeddings=262144, **fields,
        )  # fmt: skip

    @classmethod
    def qwen3_vl_2b(cls) -> Qwen3VLConfig:
        return cls(
            text=cls._text(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                           tie_word_embeddings=True),
            vision=Qwen3VisionConfig(depth=24, embed_dim=1024, intermediate_size=4096, out_hidden_size=2048,
                                     deepstack_visual_indexes=(5, 11, 17)),
        )  # fmt: skip

    @classmethod
    def qwen3_vl_4b(cls) -> Qwen3VLConfig:
        return cls(
            text=cls._text(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                           tie_word_embeddings=True),
            vision=Qwen3VisionConfig(depth=24, embed_dim=1024, intermediate_size=4096, out_hidden_size=2560,
                                     deepstack_visual_indexes=(5, 11, 17)),
        )  # fmt: skip

    @classmethod
    def qwen3_vl_8b(cls) -> Qwen3VLConfig:
        return cls(
            text=cls._text(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                           tie_word_embeddings=False),
            vision=Qwen3VisionConfig(out_hidden_size=4096),
        )  # fmt: skip

    @classmethod
    def tiny(cls) -> Qwen3VLConfig:
        """A few-hundred-kilobyte model of the architecture: 3 vision blocks, DeepStack after blocks 0 and 1."""
        return cls(
            text=DecoderConfig(
                vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=24, rope_theta=10_000.0, attention_bias=False, mrope_section=(6, 3, 3),
                mrope_interleaved=True, qk_norm=True,
            ),
            vision=Qwen3VisionConfig(depth=3, embed_dim=32, intermediate_size=48, num_heads=4, out_hidden_size=64,
                                     num_position_embeddings=64, deepstack_visual_indexes=(0, 1)),
            image_token_id=310, video_token_id=311, vision_start_token_id=312, vision_end_token_id=313,
        )  # fmt: skip

    @classmethod
    def from_hf_config(cls, hf: dict[str, Any]) -> Qwen3VLConfig:
        """From a transformers Qwen3-VL `config.json` dict; fields it leaves out take transformers' defaults."""
        if hf.get("model_type") != "qwen3_vl":
            raise ValueError(f"config.json has model_type {hf.get('model_type')!r}, expected 'qwen3_vl'")
        text_hf = hf.get("text_config") or {}
        rope = rope_parameters(text_hf, TEXT_DEFAULTS["rope_theta"])
        tie = bool(hf.get("tie_word_embeddings") or text_hf.get("tie_word_embeddings"))
        text = read_decoder(
            {**text_hf, "tie_word_embeddings": tie}, TEXT_DEFAULTS,
            head_dim=text_hf.get("head_dim") or TEXT_DEFAULTS["head_dim"], qk_norm=True, mrope_interleaved=True,
            attention_bias=bool(text_hf.get("attention_bias", False)),
            mrope_section=tuple(rope.get("mrope_section", DEFAULT_MROPE_SECTION)),
        )  # fmt: skip
        vision_hf = {**VISION_DEFAULTS, **(hf.get("vision_config") or {})}
        vision = Qwen3VisionConfig(
            depth=vision_hf["depth"], embed_dim=vision_hf["hidden_size"],
            intermediate_size=vision_hf["intermediate_size"], num_heads=vision_hf["num_heads"],
            hidden_act=vision_hf["hidden_act"], in_channels=vision_hf["in_channels"],
            patch_size=vision_hf["patch_size"], temporal_patch_size=vision_hf["temporal_patch_size"],
            spatial_merge_size=vision_hf["spatial_merge_size"], out_hidden_size=vision_hf["out_hidden_size"],
            num_position_embeddings=vision_hf["num_position_embeddings"],
            deepstack_visual_indexes=tuple(vision_hf["deepstack_visual_indexes"]),
            rope_theta=(vision_hf.get("rope_parameters") or {}).get("rope_theta", 10_000.0),
        )  # fmt: skip
        return cls(text=text, vision=vision, **{key: hf.get(key, value) for key, value in TOKEN_DEFAULTS.items()})
