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


@pytest.mark.parametrize("variant,parameters", [("0.5b", 0.894e9), ("7b", 8.031e9), ("tiny", None)])
def test_llava_onevision_presets_build_abstractly_with_the_published_sizes(variant, parameters):
    """jax.eval_shape over each preset: no weights are allocated; sizes match the released models."""
    import jax
    from flax import nnx

    from configs.models import llava_onevision
    from tokcomp_jax.models.llava_onevision import LlavaOnevision

    config = llava_onevision.model_config(llava_onevision.get_config(variant))
    assert config == llava_onevision.PRESETS[variant]()
    model = nnx.eval_shape(lambda: LlavaOnevision(config, rngs=nnx.Rngs(0)))
    count = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    if parameters is not None:
        assert abs(count - parameters) / parameters < 1e-3
    assert model.vision_tower.embeddings.position_embedding.embedding.shape[0] == config.vision.grid_side**2
