"""Shared fixtures: tiny random-init transformers Qwen2-VL checkpoints, built once per session."""

from __future__ import annotations

import jax

jax.config.update("jax_default_matmul_precision", "highest")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import Qwen2VLConfig as HFQwen2VLConfig  # noqa: E402
from transformers import Qwen2VLForConditionalGeneration  # noqa: E402

import tokcomp_jax  # noqa: E402


def tiny_hf_config(
    hidden: int = 64, heads: int = 4, kv_heads: int = 2, layers: int = 2, mrope=(2, 3, 3), tie: bool = False, **vision
) -> HFQwen2VLConfig:
    """A few-hundred-kilobyte Qwen2-VL config; ids 250..253 are the special vision tokens."""
    vision_config = dict(depth=2, embed_dim=32, num_heads=4, hidden_size=hidden, patch_size=14)
    vision_config.update(vision)
    return HFQwen2VLConfig(
        text_config=dict(
            vocab_size=256, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
            num_attention_heads=heads, num_key_value_heads=kv_heads, rms_norm_eps=1e-6, max_position_embeddings=512,
            rope_parameters={"rope_type": "default", "mrope_section": list(mrope), "rope_theta": 10000.0},
            bos_token_id=None, eos_token_id=None, tie_word_embeddings=tie,
        ),
        vision_config=vision_config,
        image_token_id=250, video_token_id=251, vision_start_token_id=252, vision_end_token_id=253,
        tie_word_embeddings=tie,
    )  # fmt: skip


def save_tiny_model(directory, seed: int = 0, **config_overrides):
    """Random-init a tiny transformers Qwen2-VL (eager attention), save it as a HF directory, return it."""
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration._from_config(
        tiny_hf_config(**config_overrides), attn_implementation="eager"
    )
    # Random init leaves norms at 1/0; perturb them so a transposed or missing norm cannot pass.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or "ln_q" in name:
                param.add_(0.1 * torch.randn_like(param))
    model.eval().save_pretrained(directory)
    return model


@pytest.fixture(scope="session")
def tiny_qwen2vl(tmp_path_factory):
    """(HF directory, transformers model, Flax model loaded from that directory)."""
    directory = tmp_path_factory.mktemp("tiny_qwen2vl")
    torch_model = save_tiny_model(directory)
    return directory, torch_model, tokcomp_jax.load(directory)
