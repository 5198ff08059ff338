"""Checkpoint names of a VILA1.5 directory -> Flax paths. Its three parts are read from their own
subdirectories, each tensor name prefixed with the part: `llm/model.layers.0...`,
`vision_tower/vision_model.encoder...`, `mm_projector/layers.2.weight`."""

from __future__ import annotations

from tokcomp_jax.models.common.params_decoder import decoder_rules, lm_head_rule
from tokcomp_jax.models.common.params_siglip import siglip_ignored, siglip_rules
from tokcomp_jax.models.loading import NameMap, Rule, Transform

PARTS = ("llm", "vision_tower", "mm_projector")
_VISION = r"vision_tower/(?:vision_model\.)?"
# mm_projector is nn.Sequential(DownSampleBlock, LayerNorm, Linear, GELU, Linear): layers 1, 2 and 4 hold weights.
_PROJECTOR = (("1", "layer_norm", "scale", Transform.NONE), ("2", "linear_1", "kernel", Transform.LINEAR),
              ("4", "linear_2", "kernel", Transform.LINEAR))  # fmt: skip


def vila_name_map(tie_word_embeddings: bool) -> NameMap:
    projector = tuple(
        rule
        for index, name, weight, transform in _PROJECTOR
        for rule in (
            Rule(rf"mm_projector/layers\.{index}\.weight", f"mm_projector.{name}.{weight}", transform),
            Rule(rf"mm_projector/layers\.{index}\.bias", f"mm_projector.{name}.bias"),
        )
    )
    rules = (*decoder_rules(r"llm/model\."), *siglip_rules(_VISION, "vision_tower."), *projector)
    ignored = siglip_ignored(_VISION)
    if tie_word_embeddings:
        return NameMap(rules, ignored=(*ignored, r"llm/lm_head\.weight"))
    return NameMap((*rules, lm_head_rule("llm/")), ignored=ignored)
