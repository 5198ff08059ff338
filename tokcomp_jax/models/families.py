"""The family registry: adding a family is one folder (models/<family>/) and one entry here."""

from __future__ import annotations

from typing import Any

from tokcomp_jax.models.family import Family
from tokcomp_jax.models.llava_onevision.family import LLAVA_ONEVISION
from tokcomp_jax.models.qwen2_5_vl.family import QWEN2_5_VL
from tokcomp_jax.models.qwen2_vl.family import QWEN2_VL
from tokcomp_jax.models.qwen3_vl.family import QWEN3_VL
from tokcomp_jax.models.vila.family import VILA

FAMILIES: dict[str, Family] = {
    family.name: family for family in (QWEN2_VL, QWEN2_5_VL, QWEN3_VL, LLAVA_ONEVISION, VILA)
}


def family_of(config: Any) -> Family:
    """The family of a model config (its `family` field)."""
    if config.family not in FAMILIES:
        raise ValueError(f"unknown model family {config.family!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[config.family]


def family_named(name: str) -> Family:
    """A family by its name or by a `model_type` of its checkpoints (`llava_llama` is VILA1.5), as
    family_of_hf_config's message lists them."""
    for family in FAMILIES.values():
        if name == family.name or name in family.hf_model_types:
            return family
    raise ValueError(f"unknown model family {name!r}; known: {family_names()}")


def family_names() -> list[str]:
    """Every name family_named accepts: the families' and their checkpoints' model_type values."""
    return sorted({*FAMILIES, *(t for f in FAMILIES.values() for t in f.hf_model_types)})


def family_of_hf_config(hf_config: dict[str, Any]) -> Family:
    """The family a transformers `config.json` belongs to, by its `model_type`."""
    model_type = hf_config.get("model_type")
    for family in FAMILIES.values():
        if model_type in family.hf_model_types:
            return family
    known = sorted(t for f in FAMILIES.values() for t in f.hf_model_types)
    raise ValueError(f"config.json model_type {model_type!r} is not supported; known: {known}")
