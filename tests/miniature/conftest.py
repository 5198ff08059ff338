"""A tiny generated dataset and a random miniature model for the miniature's tests."""

from __future__ import annotations

import pytest
from flax import nnx

from configs.miniature import get_config
from tokcomp_jax.mapper.model import Mapper, MapperConfig
from tokcomp_jax.miniature.datasets import load_splits
from tokcomp_jax.miniature.samples import miniature_config
from tokcomp_jax.models import Qwen2VL


@pytest.fixture(scope="session")
def mini_config():
    return get_config("test")


@pytest.fixture(scope="session")
def mini_splits(mini_config, tmp_path_factory):
    return load_splits(mini_config.data.builders, mini_config.data.config, tmp_path_factory.mktemp("mini_data"))


@pytest.fixture(scope="session")
def mini_model(mini_config):
    return Qwen2VL(miniature_config(**mini_config.mllm.model), rngs=nnx.Rngs(3))


@pytest.fixture(scope="session")
def mini_mapper(mini_model):
    config = MapperConfig(num_heads=mini_model.config.text.num_attention_heads, channels=(8, 8), family="qwen2_vl")
    return Mapper(config, rngs=nnx.Rngs(4))
