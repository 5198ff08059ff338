"""ml_collections model configs round-trip to the frozen presets, overrides included."""

from __future__ import annotations

import pytest

from configs.models import qwen2_vl
from tokcomp_jax.models import Qwen2VLConfig


@pytest.mark.parametrize("variant", ["2b", "7b", "tiny"])
def test_config_file_matches_the_preset(variant):
    assert qwen2_vl.model_config(qwen2_vl.get_config(variant)) == qwen2_vl.PRESETS[variant]()


def test_override_and_validation():
    config = qwen2_vl.get_config("tiny")
    config.text.num_hidden_layers = 3
    assert qwen2_vl.model_config(config).text.num_hidden_layers == 3
    config.text.num_key_value_heads = 3
    with pytest.raises(ValueError, match="not a multiple of num_key_value_heads 3"):
        qwen2_vl.model_config(config)
    with pytest.raises(ValueError, match="unknown Qwen2-VL preset"):
        qwen2_vl.get_config("72b")


def test_2b_preset_has_the_published_values():
    config = Qwen2VLConfig.qwen2_vl_2b()
    assert (config.text.hidden_size, config.text.num_attention_heads, config.text.num_key_value_heads) == (1536, 12, 2)
    assert config.text.tie_word_embeddings and config.text.mrope_section == (16, 24, 24)
