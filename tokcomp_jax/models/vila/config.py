"""VILA1.5's config (`llava_llama`): SigLIP -> mlp_downsample projector -> Llama.

A VILA1.5 checkpoint is three parts, each with its own transformers config: llm/config.json (a
Llama), vision_tower/config.json (a SigLIP vision model) and mm_projector/; the top config.json
repeats the parts' configs as llm_cfg / vision_tower_cfg and adds mm_vision_select_layer. The parts'
own files are what their weights were saved with, so they are read first (the top's copies are the
fallback); missing fields take LlamaConfig's and SiglipVisionConfig's defaults, as in transformers.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

from tokcomp_jax.fields import check_field_types
from tokcomp_jax.models.common.config import (
    LLAMA_DEFAULTS,
    DecoderConfig,
    MultimodalConfig,
    SiglipVisionConfig,
    read_decoder,
    rope_parameters,
)

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
        check_field_types(self)
        if self.text.mrope_section is not None or self.text.attention_bias:
            raise ValueError("VILA's Llama decoder has 1-D RoPE and no attention biases")

    @property
    def tokens_per_image(self) -> int:
        """27 x 27 SigLIP features, padded to even sides and folded 2 x 2: 196."""
        return ((self.vision.grid_side + 1) // 2) ** 2

    @classmethod
    def from_vila_top_config(cls, top: dict[str, Any]) -> VilaConfig:
        """From a VILA1.5 config.json alone, which carries its parts' configs (llm_cfg, vision_tower_cfg)."""
        return cls.from_vila_configs(top, top.get("llm_cfg"), top.get("vision_tower_cfg"))

    @classmethod
    def from_directory(cls, directory: str | Path) -> VilaConfig:
        """From a VILA1.5 directory: config.json, with llm/config.json and vision_tower/config.json
        preferred over its llm_cfg / vision_tower_cfg copies."""
        directory = Path(directory)
        top = json.loads((directory / "config.json").read_text())
        parts = {}
        for part, key in (("llm", "llm_cfg"), ("vision_tower", "vision_tower_cfg")):
            path = directory / part / "config.json"
            parts[part] = json.loads(path.read_text()) if path.exists() else top.get(key)
        return cls.from_vila_configs(top, parts["llm"], parts["vision_tower"])

    @classmethod
    def from_vila_configs(cls, top: dict[str, Any], llm: dict[str, Any] | None, vision: dict[str, Any] | None):
        """From a VILA1.5 config.json and its parts' configs (llm/config.json, vision_tower/config.json)."""
        if not isinstance(llm, dict) or not isinstance(vision, dict):
            raise ValueError("a VILA1.5 checkpoint needs its LLM's and vision tower's configs (llm/config.json and "
                             "vision_tower/config.json, or llm_cfg and vision_tower_cfg in config.json)")  # fmt: skip
        projector = (top.get("mm_projector_cfg") or {}).get("mm_projector_type", top.get("mm_projector_type"))
        if projector not in (None, "mlp_downsample"):
            raise ValueError(f"mm_projector_type {projector!r}: only mlp_downsample (VILA1.5) is supported")
        rope = rope_parameters(llm, LLAMA_DEFAULTS["rope_theta"])
        if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
            raise ValueError(f"llm rope scaling {rope!r} is not supported")
        text = read_decoder(llm, LLAMA_DEFAULTS, attention_bias=bool(llm.get("attention_bias", False)))
        return cls(
            text=text,
            vision=SiglipVisionConfig.from_hf_config(vision),
            vision_feature_layer=top.get("mm_vision_select_layer", -2),
        )
