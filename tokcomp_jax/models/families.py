"""The model families this package knows: config class, model class and name map of each."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from flax import nnx

from tokcomp_jax.models.config import LlavaOnevisionConfig, Qwen2VLConfig, VilaConfig
from tokcomp_jax.models.llava_onevision import LlavaOnevision
from tokcomp_jax.models.loading import NameMap
from tokcomp_jax.models.params_llava import llava_onevision_name_map
from tokcomp_jax.models.params_qwen2vl import qwen2vl_name_map
from tokcomp_jax.models.params_vila import PARTS as VILA_PARTS
from tokcomp_jax.models.params_vila import vila_name_map
from tokcomp_jax.models.qwen2vl import Qwen2VL
from tokcomp_jax.models.vila import Vila


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    hf_model_types: tuple[str, ...]
    config_from_hf: Callable[[dict[str, Any]], Any]
    config_from_dict: Callable[[dict[str, Any]], Any]
    model: Callable[..., nnx.Module]
    name_map: Callable[[Any], NameMap]
    checkpoint_parts: tuple[str, ...] = ()  # subdirectories holding the weights, their names prefixed "<part>/"

    def builder(self, config: Any, dtype: jnp.dtype) -> Callable[[], nnx.Module]:
        """A zero-argument constructor (for `nnx.eval_shape`)."""
        return lambda: self.model(config, dtype=dtype, rngs=nnx.Rngs(0))


FAMILIES = {
    "vila": Family(
        name="vila",
        hf_model_types=("llava_llama",),
        config_from_hf=VilaConfig.from_vila_top_config,
        config_from_dict=VilaConfig.from_dict,
        model=Vila,
        name_map=lambda config: vila_name_map(config.text.tie_word_embeddings),
        checkpoint_parts=VILA_PARTS,
    ),
    "llava_onevision": Family(
        name="llava_onevision",
        hf_model_types=("llava_onevision",),
        config_from_hf=LlavaOnevisionConfig.from_hf_config,
        config_from_dict=LlavaOnevisionConfig.from_dict,
        model=LlavaOnevision,
        name_map=lambda config: llava_onevision_name_map(config.text.tie_word_embeddings),
    ),
    "qwen2_vl": Family(
        name="qwen2_vl",
        hf_model_types=("qwen2_vl",),
        config_from_hf=Qwen2VLConfig.from_hf_config,
        config_from_dict=Qwen2VLConfig.from_dict,
        model=Qwen2VL,
        name_map=lambda config: qwen2vl_name_map(config.text.tie_word_embeddings),
    ),
}


def family_of_hf_config(hf_config: dict[str, Any]) -> Family:
    """The family a transformers `config.json` belongs to, by its `model_type`."""
    model_type = hf_config.get("model_type")
    for family in FAMILIES.values():
        if model_type in family.hf_model_types:
            return family
    known = sorted(t for f in FAMILIES.values() for t in f.hf_model_types)
    raise ValueError(f"config.json model_type {model_type!r} is not supported; known: {known}")
