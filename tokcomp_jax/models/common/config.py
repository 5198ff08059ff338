"""Config parts every family shares: the Qwen2/Llama decoder, the SigLIP tower, and the stored form.

Family configs (models/<family>/config.py) are frozen dataclasses made of these parts. Reading a
transformers `config.json` follows transformers' own rules (`read_decoder`, `SiglipVisionConfig.from_hf_config`): a field
the file leaves out takes the default of the transformers config class it belongs to, as
checkpoints re-saved by later transformers versions leave out every field equal to its default.
The defaults below are those of transformers 5.24 (tests/models/test_config_layouts.py checks our
reading against transformers' own on every layout).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

import numpy as np

from tokcomp_jax.fields import check_field_types, from_fields


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
    max_position_embeddings: int = 32768  # positions the model was trained on; longer inputs are refused
    head_dim: int | None = None  # None: hidden_size // num_attention_heads (Qwen3 sets it)
    qk_norm: bool = False  # RMSNorm over each query and key head before RoPE (Qwen3)
    mrope_interleaved: bool = False  # M-RoPE frequencies cycle t, h, w instead of coming in chunks (Qwen3-VL)

    def __post_init__(self):
        if self.mrope_section is not None:
            object.__setattr__(self, "mrope_section", tuple(self.mrope_section))  # JSON stores a list
        check_field_types(self)
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        if self.mrope_section is not None and 2 * sum(self.mrope_section) != self.head_dim:
            raise ValueError(f"mrope_section {self.mrope_section} must sum to head_dim // 2 = {self.head_dim // 2}")


class PositionWarning(UserWarning):
    """Inputs whose positions pass the ones the model was trained on."""


def warn_past_positions(text: DecoderConfig, position_ids, attention_mask) -> None:
    """Warn when a real token's position (ids [..., B, T] and mask [B, T], host arrays) reaches
    `text.max_position_embeddings`: the model runs there (RoPE extrapolates, as in transformers) but
    was never trained there. The CLIs refuse such inputs; from Python, check a generation's last
    position with tokcomp_jax.generate.check_positions(config, position_ids, mask, max_new_tokens)."""
    real = np.asarray(attention_mask).astype(bool)
    last = int(np.where(real, np.asarray(position_ids), -1).max()) if real.size else -1
    if last >= text.max_position_embeddings:
        warnings.warn(
            f"the inputs reach position {last}, past the model's max_position_embeddings "
            f"{text.max_position_embeddings}: it was never trained there (the CLIs refuse this)",
            PositionWarning,
            stacklevel=3,
        )


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
        check_field_types(self)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by {self.num_attention_heads} heads")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def grid_side(self) -> int:
        """Patches per side; like the stride-p convolution, pixels past the last whole patch are unused
        (384-pixel tiles, 14-pixel patches: 27)."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_side**2

    @classmethod
    def from_hf_config(cls, hf: dict[str, Any], defaults: dict[str, Any] | None = None) -> SiglipVisionConfig:
        """From a transformers `vision_config` dict; missing fields take `defaults` (transformers'
        SiglipVisionConfig defaults, SIGLIP_DEFAULTS, unless given)."""
        defaults = SIGLIP_DEFAULTS if defaults is None else defaults
        return cls(**{field.name: hf.get(field.name, defaults[field.name]) for field in dataclasses.fields(cls)})


class MultimodalConfig:
    """to_dict / from_dict of a family config made of `text` (DecoderConfig), `vision` (the family's
    VISION config class) and flat fields: the form stored beside converted checkpoints."""

    VISION: ClassVar[type]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Inverse of `to_dict`."""
        if not isinstance(data, dict):
            raise ValueError(f"config must be an object of {cls.__name__} fields, got a {type(data).__name__}")
        fields = {k: v for k, v in data.items() if k not in ("text", "vision")}
        text = from_fields(DecoderConfig, data.get("text"), "config.text")
        vision = from_fields(cls.VISION, data.get("vision"), "config.vision")
        return from_fields(cls, fields | {"text": text, "vision": vision}, "config")


# transformers' defaults, per config class, for the fields we read.
QWEN2_DEFAULTS = dict(vocab_size=151936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32,
                      num_attention_heads=32, rms_norm_eps=1e-6, rope_theta=10_000.0, hidden_act="silu",
                      max_position_embeddings=32768)  # fmt: skip
LLAMA_DEFAULTS = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, rms_norm_eps=1e-6, rope_theta=10_000.0, hidden_act="silu",
                      attention_bias=False, max_position_embeddings=2048)  # fmt: skip
SIGLIP_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       image_size=224, patch_size=16, num_channels=3, layer_norm_eps=1e-6,
                       hidden_act="gelu_pytorch_tanh")  # fmt: skip


def rope_parameters(hf: dict[str, Any], default_theta: float) -> dict[str, Any]:
    """transformers' rope_parameters of a text config: `rope_scaling` (older files) or
    `rope_parameters`, with `rope_theta` filled in from the top level or the class default."""
    rope = dict(hf.get("rope_scaling") or hf.get("rope_parameters") or {})
    rope.setdefault("rope_theta", hf.get("rope_theta", default_theta))
    return rope


SIZE_FIELDS = ("hidden_size", "num_attention_heads")  # what the head size is made of


def read_decoder(hf: dict[str, Any], defaults: dict[str, Any], **fixed) -> DecoderConfig:
    """A DecoderConfig from a transformers text config dict: missing fields take `defaults`
    (QWEN2_DEFAULTS, LLAMA_DEFAULTS, ...); `fixed` sets fields the architecture decides. A config
    that does not hold together names the sizes the file leaves out (a default may not fit the rest)."""
    get = lambda key: hf[key] if hf.get(key) is not None else defaults[key]  # noqa: E731
    heads = get("num_attention_heads")
    try:
        return DecoderConfig(
            vocab_size=get("vocab_size"), hidden_size=get("hidden_size"), intermediate_size=get("intermediate_size"),
            num_hidden_layers=get("num_hidden_layers"), num_attention_heads=heads,
            num_key_value_heads=hf.get("num_key_value_heads") or heads, rms_norm_eps=get("rms_norm_eps"),
            rope_theta=rope_parameters(hf, defaults["rope_theta"])["rope_theta"], hidden_act=get("hidden_act"),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings")),
            max_position_embeddings=get("max_position_embeddings"), **fixed,
        )  # fmt: skip
    except ValueError as err:
        taken = [f"{key} (transformers' default {defaults[key]} taken)" for key in SIZE_FIELDS if hf.get(key) is None]
        if not taken:
            raise
        raise ValueError(f"{err}; the file leaves out {', '.join(taken)}: add the checkpoint's value") from None
