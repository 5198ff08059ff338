"""Model configs: frozen dataclasses with one named preset per published checkpoint.

`DecoderConfig` describes the Qwen2/Llama-family language model shared by every MLLM family;
`Qwen2VisionConfig` the Qwen2-VL ViT; `Qwen2VLConfig` ties them together with the special token
ids. `from_hf_config` reads a transformers `config.json` dict, in the flat layout the released
checkpoints use as well as the nested `text_config` layout transformers 5 writes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """A Qwen2/Llama decoder: RMSNorm, GQA attention, SwiGLU MLP, rotary positions."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    attention_bias: bool = True  # q/k/v biases (Qwen2); o_proj never has one
    tie_word_embeddings: bool = False
    hidden_act: str = "silu"
    mrope_section: tuple[int, ...] | None = None  # (t, h, w) split of head_dim // 2 for M-RoPE

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if self.mrope_section is not None:
            object.__setattr__(self, "mrope_section", tuple(self.mrope_section))  # JSON stores a list
        if self.mrope_section is not None and 2 * sum(self.mrope_section) != self.head_dim:
            raise ValueError(f"mrope_section {self.mrope_section} must sum to head_dim // 2 = {self.head_dim // 2}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


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
        if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 4:
            raise ValueError(f"vision embed_dim {self.embed_dim} / num_heads {self.num_heads} must be a multiple of 4")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def patch_dim(self) -> int:
        """Length of one flattened patch: channels x temporal patch x patch x patch."""
        return self.in_channels * self.temporal_patch_size * self.patch_size**2


@dataclasses.dataclass(frozen=True)
class SiglipVisionConfig:
    """The SigLIP vision tower of LLaVA-OneVision and VILA1.5 (transformers' `SiglipVisionConfig`)."""

    hidden_size: int = 1152
    intermediate_size: int = 4304
    num_hidden_layers: int = 26  # siglip-so400m has 27; LLaVA-OneVision and VILA1.5 keep 26
    num_attention_heads: int = 16
    image_size: int = 384
    patch_size: int = 14
    num_channels: int = 3
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu_pytorch_tanh"

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by {self.num_attention_heads} heads")

    @property
    def grid_side(self) -> int:
        """Patches per side; like the stride-p convolution, pixels past the last whole patch are unused
        (384-pixel tiles, 14-pixel patches: 27)."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_side**2

    @classmethod
    def from_hf_config(cls, hf: dict[str, Any]) -> SiglipVisionConfig:
        """From a transformers `vision_config` dict (fields it lacks keep SigLIP's defaults)."""
        return cls(**{field.name: hf[field.name] for field in dataclasses.fields(cls) if field.name in hf})


class MultimodalConfig:
    """to_dict / from_dict of a family config made of `text` (DecoderConfig), `vision` (the family's
    VISION config class) and flat fields: the form stored beside converted checkpoints."""

    VISION: ClassVar[type]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Inverse of `to_dict`."""
        fields = {k: v for k, v in data.items() if k not in ("text", "vision")}
        return cls(text=DecoderConfig(**data["text"]), vision=cls.VISION(**data["vision"]), **fields)


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
        if self.vision.out_hidden_size != self.text.hidden_size:
            raise ValueError(
                f"vision out_hidden_size {self.vision.out_hidden_size} != text hidden_size {self.text.hidden_size}"
            )
        if self.text.mrope_section is None:
            raise ValueError("Qwen2-VL needs text.mrope_section")

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
        """Build from a transformers Qwen2-VL `config.json` dict (flat or nested layout)."""
        if hf.get("model_type") != "qwen2_vl":
            raise ValueError(f"config.json has model_type {hf.get('model_type')!r}, expected 'qwen2_vl'")
        text_hf = {**hf, **(hf.get("text_config") or {})}
        rope = text_hf.get("rope_parameters") or text_hf.get("rope_scaling") or {}
        vision_hf = hf["vision_config"]
        text = DecoderConfig(
            vocab_size=text_hf["vocab_size"],
            hidden_size=text_hf["hidden_size"],
            intermediate_size=text_hf["intermediate_size"],
            num_hidden_layers=text_hf["num_hidden_layers"],
            num_attention_heads=text_hf["num_attention_heads"],
            num_key_value_heads=text_hf.get("num_key_value_heads") or text_hf["num_attention_heads"],
            rms_norm_eps=text_hf.get("rms_norm_eps", 1e-6),
            rope_theta=rope.get("rope_theta", text_hf.get("rope_theta", 1_000_000.0)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings") or text_hf.get("tie_word_embeddings")),
            hidden_act=text_hf.get("hidden_act", "silu"),
            mrope_section=tuple(rope.get("mrope_section", (16, 24, 24))),
        )
        vision_rope = vision_hf.get("rope_parameters") or {}
        vision = Qwen2VisionConfig(
            depth=vision_hf["depth"],
            embed_dim=vision_hf["embed_dim"],
            num_heads=vision_hf["num_heads"],
            mlp_ratio=vision_hf.get("mlp_ratio", 4),
            hidden_act=vision_hf.get("hidden_act", "quick_gelu"),
            in_channels=vision_hf.get("in_channels", vision_hf.get("in_chans", 3)),
            patch_size=vision_hf.get("patch_size", 14),
            temporal_patch_size=vision_hf.get("temporal_patch_size", 2),
            spatial_merge_size=vision_hf.get("spatial_merge_size", 2),
            out_hidden_size=vision_hf.get("hidden_size", text.hidden_size),
            rope_theta=vision_rope.get("rope_theta", 10_000.0),
        )
        return cls(
            text=text,
            vision=vision,
            image_token_id=hf.get("image_token_id", 151655),
            video_token_id=hf.get("video_token_id", 151656),
            vision_start_token_id=hf.get("vision_start_token_id", 151652),
            vision_end_token_id=hf.get("vision_end_token_id", 151653),
        )


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
    def from_hf_config(cls, hf: dict[str, Any]) -> LlavaOnevisionConfig:
        """From a transformers LLaVA-OneVision `config.json` dict."""
        if hf.get("model_type") != "llava_onevision":
            raise ValueError(f"config.json has model_type {hf.get('model_type')!r}, expected 'llava_onevision'")
        text_hf = hf["text_config"]
        rope = text_hf.get("rope_parameters") or {}
        text = DecoderConfig(
            vocab_size=text_hf["vocab_size"], hidden_size=text_hf["hidden_size"],
            intermediate_size=text_hf["intermediate_size"], num_hidden_layers=text_hf["num_hidden_layers"],
            num_attention_heads=text_hf["num_attention_heads"],
            num_key_value_heads=text_hf.get("num_key_value_heads") or text_hf["num_attention_heads"],
            rms_norm_eps=text_hf.get("rms_norm_eps", 1e-6),
            rope_theta=rope.get("rope_theta", text_hf.get("rope_theta", 1_000_000.0)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings") or text_hf.get("tie_word_embeddings")),
            hidden_act=text_hf.get("hidden_act", "silu"),
        )  # fmt: skip
        if hf.get("vision_feature_select_strategy", "full") != "full":
            raise ValueError("only vision_feature_select_strategy='full' (SigLIP has no CLS token) is supported")
        layer = hf.get("vision_feature_layer", -1)
        if not isinstance(layer, int):
            raise ValueError(f"vision_feature_layer {layer!r}: only one layer is supported")
        return cls(
            text=text, vision=SiglipVisionConfig.from_hf_config(hf["vision_config"]),
            image_token_id=hf.get("image_token_index", 151646), video_token_id=hf.get("video_token_index", 151647),
            image_grid_pinpoints=tuple(tuple(p) for p in hf.get("image_grid_pinpoints", ANYRES_PINPOINTS)),
            vision_feature_layer=layer, vision_aspect_ratio=hf.get("vision_aspect_ratio", "anyres_max_9"),
            projector_hidden_act=hf.get("projector_hidden_act", "gelu"),
            multimodal_projector_bias=hf.get("multimodal_projector_bias", True),
        )  # fmt: skip


VILA_IMAGE_PLACEHOLDER = -200  # VILA's IMAGE_TOKEN_INDEX: one per image in the prompt, expanded on the host


@dataclasses.dataclass(frozen=True)
class VilaConfig(MultimodalConfig):
    """VILA1.5 (`llava_llama`): SigLIP -> mlp_downsample projector (2x2 token concat, LayerNorm, Linear,
    GELU, Linear) -> Llama. Each image is one 384-pixel tile; a video is a sequence of frames."""

    text: DecoderConfig
    vision: SiglipVisionConfig
    image_token_id: int = VILA_IMAGE_PLACEHOLDER
    video_token_id: int = VILA_IMAGE_PLACEHOLDER  # frames are images to VILA
    vision_feature_layer: int = -2  # mm_vision_select_layer
    family: str = "vila"
    VISION: ClassVar[type] = SiglipVisionConfig

    def __post_init__(self):
        if self.text.mrope_section is not None or self.text.attention_bias:
            raise ValueError("VILA's Llama decoder has 1-D RoPE and no attention biases")

    @property
    def tokens_per_image(self) -> int:
        """27 x 27 SigLIP features, padded to even sides and folded 2 x 2: 196."""
        return ((self.vision.grid_side + 1) // 2) ** 2

    @classmethod
    def from_vila_top_config(cls, top: dict[str, Any]) -> VilaConfig:
        """From a VILA1.5 config.json, which carries its parts' configs (llm_cfg, vision_tower_cfg)."""
        if not isinstance(top.get("llm_cfg"), dict) or not isinstance(top.get("vision_tower_cfg"), dict):
            raise ValueError("a VILA1.5 config.json needs the llm_cfg and vision_tower_cfg dicts of its parts")
        return cls.from_vila_configs(top, top["llm_cfg"], top["vision_tower_cfg"])

    @classmethod
    def from_vila_configs(cls, top: dict[str, Any], llm: dict[str, Any], vision: dict[str, Any]) -> VilaConfig:
        """From a VILA1.5 directory's config.json, llm/config.json and vision_tower/config.json."""
        projector = (top.get("mm_projector_cfg") or {}).get("mm_projector_type", top.get("mm_projector_type"))
        if projector not in (None, "mlp_downsample"):
            raise ValueError(f"mm_projector_type {projector!r}: only mlp_downsample (VILA1.5) is supported")
        rope = llm.get("rope_parameters") or llm.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
            raise ValueError(f"llm rope scaling {rope!r} is not supported")
        text = DecoderConfig(
            vocab_size=llm["vocab_size"], hidden_size=llm["hidden_size"], intermediate_size=llm["intermediate_size"],
            num_hidden_layers=llm["num_hidden_layers"], num_attention_heads=llm["num_attention_heads"],
            num_key_value_heads=llm.get("num_key_value_heads") or llm["num_attention_heads"],
            rms_norm_eps=llm.get("rms_norm_eps", 1e-5), rope_theta=rope.get("rope_theta", llm.get("rope_theta", 10_000.0)),
            attention_bias=bool(llm.get("attention_bias", False)), tie_word_embeddings=bool(llm.get("tie_word_embeddings")),
            hidden_act=llm.get("hidden_act", "silu"),
        )  # fmt: skip
        return cls(
            text=text, vision=SiglipVisionConfig.from_hf_config(vision),
            vision_feature_layer=top.get("mm_vision_select_layer", -2),
        )  # fmt: skip
