"""Qwen2.5-VL's config: Qwen2-VL's, with a vision tower of RMSNorm and gated-MLP blocks that attend
in windows (full attention only in `fullatt_block_indexes`) and absolute time for video M-RoPE.

Presets are the released config.json values of Qwen/Qwen2.5-VL-3B-Instruct and
Qwen/Qwen2.5-VL-7B-Instruct (text: 36 layers of 2048 / 28 of 3584; vision: 32 blocks of 1280,
intermediate 3420, windows of 112 pixels, full attention in blocks 7, 15, 23, 31, 2 tokens per
second), as re-saved copies of both files show. `from_hf_config` reads the released layout (text
fields at the top level, `rope_scaling`) and transformers 5's (`text_config`, `rope_parameters`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from tokcomp_jax.fields import check_field_types
from tokcomp_jax.models.common.config import DecoderConfig, MultimodalConfig
from tokcomp_jax.models.qwen2_vl.config import TOKEN_DEFAULTS, check_qwen_vl, read_qwen_vl_text

# transformers' Qwen2_5_VLVisionConfig defaults (5.x) for the fields we read.
VISION_DEFAULTS = dict(depth=32, hidden_size=3584, hidden_act="silu", intermediate_size=3420, num_heads=16,
                       in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, tokens_per_second=4,
                       window_size=112, out_hidden_size=3584, fullatt_block_indexes=(7, 15, 23, 31))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Qwen25VisionConfig:
    """The Qwen2.5-VL vision transformer (windowed RMSNorm / SwiGLU blocks) and its 2x2 patch merger."""

    depth: int = 32
    embed_dim: int = 1280  # config.json's vision hidden_size
    intermediate_size: int = 3420
    num_heads: int = 16
    hidden_act: str = "silu"
    in_channels: int = 3
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    window_size: int = 112  # pixels per window side
    fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)
    tokens_per_second: int = 2
    out_hidden_size: int = 3584
    rope_theta: float = 10_000.0

    def __post_init__(self):
        object.__setattr__(self, "fullatt_block_indexes", tuple(self.fullatt_block_indexes))  # JSON stores a list
        check_field_types(self)
        if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 4:
            raise ValueError(f"vision embed_dim {self.embed_dim} / num_heads {self.num_heads} must be a multiple of 4")
        if self.window_size % (self.spatial_merge_size * self.patch_size):
            raise ValueError(
                f"window_size {self.window_size} must be a multiple of spatial_merge_size x patch_size "
                f"({self.spatial_merge_size * self.patch_size})"
            )
        if any(not 0 <= index < self.depth for index in self.fullatt_block_indexes):
            raise ValueError(f"fullatt_block_indexes {self.fullatt_block_indexes} must lie in [0, depth {self.depth})")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def patch_dim(self) -> int:
        return self.in_channels * self.temporal_patch_size * self.patch_size**2

    @property
    def window_units(self) -> int:
        """Window side in merge units (2x2 patches): 112 / 2 / 14 = 4."""
        return self.window_size // self.spatial_merge_size // self.patch_size

    @property
    def window_patches(self) -> int:
        """Patches in a whole window: (4 x 2)^2 = 64; windows at a grid's edges hold fewer."""
        return (self.window_units * self.spatial_merge_size) ** 2


@dataclasses.dataclass(frozen=True)
class Qwen25VLConfig(MultimodalConfig):
    """Qwen2.5-VL: windowed vision tower + merger + Qwen2 decoder with M-RoPE (absolute time for video)."""

    text: DecoderConfig
    vision: Qwen25VisionConfig
    image_token_id: int = TOKEN_DEFAULTS["image_token_id"]
    video_token_id: int = TOKEN_DEFAULTS["video_token_id"]
    vision_start_token_id: int = TOKEN_DEFAULTS["vision_start_token_id"]
    vision_end_token_id: int = TOKEN_DEFAULTS["vision_end_token_id"]
    family: str = "qwen2_5_vl"
    VISION: ClassVar[type] = Qwen25VisionConfig

    def __post_init__(self):
        check_qwen_vl(self)

    @classmethod
    def qwen2_5_vl_3b(cls) -> Qwen25VLConfig:
        return cls(
            text=DecoderConfig(
                vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                num_attention_heads=16, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
                tie_word_embeddings=True, mrope_section=(16, 24, 24), max_position_embeddings=128000,
            ),
            vision=Qwen25VisionConfig(out_hidden_size=2048),
        )  # fmt: skip

    @classmethod
    def qwen2_5_vl_7b(cls) -> Qwen25VLConfig:
        return cls(
            text=DecoderConfig(
                vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                num_attention_heads=28, num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
                tie_word_embeddings=False, mrope_section=(16, 24, 24), max_position_embeddings=128000,
            ),
            vision=Qwen25VisionConfig(out_hidden_size=3584),
        )  # fmt: skip

    @classmethod
    def tiny(cls) -> Qwen25VLConfig:
        """A few-hundred-kilobyte model of the architecture: windows of 2 x 2 merge units, block 1 full."""
        return cls(
            text=DecoderConfig(
                vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, rope_theta=10_000.0, mrope_section=(2, 3, 3),
            ),
            vision=Qwen25VisionConfig(depth=2, embed_dim=32, intermediate_size=48, num_heads=4, out_hidden_size=64,
                                      window_size=56, fullatt_block_indexes=(1,)),
            image_token_id=310, video_token_id=311, vision_start_token_id=312, vision_end_token_id=313,
        )  # fmt: skip

    @classmethod
    def from_hf_config(cls, hf: dict[str, Any]) -> Qwen25VLConfig:
        """From a transformers Qwen2.5-VL `config.json` dict; fields it leaves out take transformers' defaults."""
        if hf.get("model_type") != "qwen2_5_vl":
            raise ValueError(f"config.json has model_type {hf.get('model_type')!r}, expected 'qwen2_5_vl'")
        text = read_qwen_vl_text(hf)
        vision_hf = {**VISION_DEFAULTS, **(hf.get("vision_config") or {})}
        vision = Qwen25VisionConfig(
            depth=vision_hf["depth"], embed_dim=vision_hf["hidden_size"],
            intermediate_size=vision_hf["intermediate_size"], num_heads=vision_hf["num_heads"],
            hidden_act=vision_hf["hidden_act"], in_channels=vision_hf.get("in_chans", vision_hf["in_channels"]),
            patch_size=vision_hf["patch_size"], temporal_patch_size=vision_hf["temporal_patch_size"],
            spatial_merge_size=vision_hf["spatial_merge_size"], window_size=vision_hf["window_size"],
            fullatt_block_indexes=tuple(vision_hf["fullatt_block_indexes"]),
            tokens_per_second=vision_hf["tokens_per_second"], out_hidden_size=vision_hf["out_hidden_size"],
            rope_theta=(vision_hf.get("rope_parameters") or {}).get("rope_theta", 10_000.0),
        )  # fmt: skip
        return cls(text=text, vision=vision, **{key: hf.get(key, value) for key, value in TOKEN_DEFAULTS.items()})
