"""Shared fixtures: tiny random-init transformers Qwen2-VL checkpoints, built once per session."""

from __future__ import annotations

import jax

jax.config.update("jax_default_matmul_precision", "highest")

import pytest  # noqa: E402

import tokcomp_jax  # noqa: E402
from conversion.tiny import save_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_qwen2vl(tmp_path_factory):
    """(HF directory, transformers model, Flax model loaded from that directory)."""
    directory = tmp_path_factory.mktemp("tiny_qwen2vl")
    torch_model = save_tiny_model(directory)
    return directory, torch_model, tokcomp_jax.load(directory)
