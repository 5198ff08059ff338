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
        qwen2_vl.get_config("13b")


def test_2b_preset_has_the_published_values():
    config = Qwen2VLConfig.qwen2_vl_2b()
    assert (config.text.hidden_size, config.text.num_attention_heads, config.text.num_key_value_heads) == (1536, 12, 2)
    assert config.text.tie_word_embeddings and config.text.mrope_section == (16, 24, 24)


@pytest.mark.parametrize(
    "family,variant,parameters",
    [("llava_onevision", "0.5b", 0.894e9), ("llava_onevision", "7b", 8.031e9),
     ("llava_onevision", "72b", 73.2e9), ("llava_onevision", "tiny", None),
     ("vila", "3b", 3.133e9), ("vila", "8b", 8.479e9), ("vila", "tiny", None)],
)  # fmt: skip
def test_presets_build_abstractly(family, variant, parameters):
    """jax.eval_shape over each preset of the other two families: no weights are allocated. The
    LLaVA-OneVision sizes are the released models' (0.89B, 8.03B); VILA1.5's follow from its
    recalled config values (configs/models/vila.py)."""
    import importlib

    import jax
    from flax import nnx

    from tokcomp_jax.models.families import FAMILIES

    presets = importlib.import_module(f"configs.models.{family}")
    config = presets.model_config(presets.get_config(variant))
    assert config == presets.PRESETS[variant]() and config.family == family
    model = nnx.eval_shape(lambda: FAMILIES[family].model(config, rngs=nnx.Rngs(0)))
    count = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    if parameters is not None:
        assert abs(count - parameters) / parameters < 1e-3
    assert model.vision_tower.embeddings.position_embedding.embedding.shape[0] == config.vision.grid_side**2


@pytest.mark.parametrize("variant", ["3b", "7b", "tiny"])
def test_qwen2_5_vl_presets_round_trip_through_ml_collections(variant):
    from configs.models import qwen2_5_vl

    config = qwen2_5_vl.model_config(qwen2_5_vl.get_config(variant))
    assert config == qwen2_5_vl.PRESETS[variant]() and config.family == "qwen2_5_vl"


@pytest.mark.parametrize("variant", ["2b", "4b", "8b", "tiny"])
def test_qwen3_vl_presets_round_trip_through_ml_collections(variant):
    from configs.models import qwen3_vl

    config = qwen3_vl.model_config(qwen3_vl.get_config(variant))
    assert config == qwen3_vl.PRESETS[variant]() and config.family == "qwen3_vl"


EVAL_CONFIGS = [("images", ""), ("videos", ""), ("jsonl", "test.jsonl"), ("miniature", ""),
                ("released", "images"), ("released", "videos"), ("released", "bench.jsonl")]  # fmt: skip


@pytest.mark.parametrize("name,variant", EVAL_CONFIGS)
def test_eval_configs_hold_what_the_runner_reads(name, variant):
    """Every eval config (and each variant of released.py) gives scripts/evaluate.py its fields:
    benchmarks with an adapter the harness knows, increasing buckets, a positive batch and answer length."""
    import importlib

    from tokcomp_jax.eval.adapters import ADAPTERS

    module = importlib.import_module(f"configs.eval.{name}")
    config = module.get_config(variant) if variant else module.get_config()
    assert config.codec in ("chat", "miniature")
    assert config.benchmarks and all(b.adapter in ADAPTERS and b.name and b.data_dir for b in config.benchmarks)
    for buckets in (config.text_buckets, config.visual_buckets):
        assert list(buckets) == sorted(set(buckets)) and buckets[0] > 0
    assert config.batch_size >= 1 and config.max_new_tokens >= 1


def test_released_eval_buckets_reach_the_released_image_sizes():
    """configs/eval/released.py holds one image at the released processors' largest (16384 visual
    tokens: Qwen2-VL's default max_pixels 12845056 / 28^2) and answers of the benchmarks' length."""
    from configs.eval import images, released

    for variant in ("images", "videos", "bench.jsonl"):
        config = released.get_config(variant)
        assert max(config.visual_buckets) >= 12845056 // 28**2 == 16384
        assert config.max_new_tokens >= 16
    assert [b.name for b in released.get_config("images").benchmarks] == [b[0] for b in images.BENCHMARKS]


def test_released_label_config_overrides_only_fields_label_py_knows():
    """configs/label/released.py has exactly the tiny config's fields (label.py and its --config.x
    overrides read those), labels a benchmark, and holds a LLaVA-OneVision 768 x 768 image (3645 tokens)."""
    from configs.label import released, tiny

    config, base = released.get_config(), tiny.get_config()
    assert set(config.keys()) == set(base.keys())
    assert set(config.buckets.keys()) == set(base.buckets.keys())
    assert config.source == "benchmark" and config.adapter == "jsonl" and config.split == "train"
    assert config.buckets.visual >= 3645 and config.batch_size >= 1 and config.max_new_tokens >= 1
