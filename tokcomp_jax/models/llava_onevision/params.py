"""Checkpoint names of LLaVA-OneVision (transformers-5 and released llava-hf layouts) -> Flax paths."""

from __future__ import annotations

from tokcomp_jax.models.common.params_decoder import decoder_rules, lm_head_rule
from tokcomp_jax.models.common.params_siglip import siglip_ignored, siglip_rules
from tokcomp_jax.models.loading import NameMap, Rule, Transform

_VISION = r"(?:model\.)?vision_tower\.(?:vision_model\.)?"
_LM = r"(?:model\.language_model\.|language_model\.model\.)"
_HEAD = r"(?:language_model\.)?"


def llava_onevision_name_map(tie_word_embeddings: bool) -> NameMap:
    rules = (
        *siglip_rules(_VISION, "vision_tower."),
        Rule(r"(?:model\.)?multi_modal_projector\.(linear_[12])\.weight", r"multi_modal_projector.\1.kernel",
             Transform.LINEAR),
        Rule(r"(?:model\.)?multi_modal_projector\.(linear_[12])\.bias", r"multi_modal_projector.\1.bias"),
        Rule(r"(?:model\.)?image_newline", "image_newline"),
        *decoder_rules(_LM),
    )  # fmt: skip
    ignored = siglip_ignored(_VISION)
    if tie_word_embeddings:
        return NameMap(rules, ignored=(*ignored, rf"{_HEAD}lm_head\.weight"))
    return NameMap((*rules, lm_head_rule(_HEAD)), ignored=ignored)
