"""The batched runner: resumes after a kill without redoing or losing samples, is independent of the
batch size, prunes, and scores through the generic jsonl adapter."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from flax import nnx
from PIL import Image

from tokcomp_jax.eval.adapters import read_benchmark
from tokcomp_jax.eval.codecs import MiniatureCodec
from tokcomp_jax.eval.metrics import benchmark_score
from tokcomp_jax.eval.results import ResultsFile
from tokcomp_jax.eval.runner import RunSettings, evaluate, prepared_batches
from tokcomp_jax.mapper import Mapper, MapperConfig
from tokcomp_jax.miniature.samples import miniature_config
from tokcomp_jax.models import Qwen2VL
from tokcomp_jax.prune import PruneConfig

SIZES = [(56, 56), (56, 84), (84, 84), (56, 112), (84, 56), (56, 56), (112, 84)]  # 4, 6, 9, 8, 6, 4, 12 tokens


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    (root / "img").mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for index, (height, width) in enumerate(SIZES):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / "img" / f"{index}.png")
        lines.append({"id": f"s{index}", "question": "what colour is the square ?", "answers": ["red"],
                      "images": [f"img/{index}.png"], "category": "colour" if index % 2 else "other"})  # fmt: skip
    (root / "test.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return read_benchmark("jsonl", root)


@pytest.fixture(scope="module")
def model():
    config = miniature_config(
        width=32, layers=2, heads=2, kv_heads=1, mlp=64, vision_width=16, vision_depth=1, vision_heads=2
    )
    return Qwen2VL(config, rngs=nnx.Rngs(0))


SETTINGS = RunSettings(batch_size=2, text_buckets=(16,), visual_buckets=(4, 16), max_new_tokens=3)


def _replies(records):
    return [(r["sample_id"], r["reply"], r["score"]) for r in records]


def test_a_killed_run_resumes_without_redoing_or_losing_samples(tmp_path, samples, model):
    codec = MiniatureCodec(model.config)
    whole = evaluate(model, samples, codec, SETTINGS, ResultsFile(tmp_path / "whole.jsonl"))
    assert [r["sample_id"] for r in whole] == [s.sample_id for s in samples]

    results = ResultsFile(tmp_path / "killed.jsonl")
    evaluate(model, samples, codec, SETTINGS, results, stop_after_batches=2)
    assert len(results.read()) == 4
    with results.path.open("a") as handle:
        handle.write('{"sample_id": "s6", "repl')  # the kill hit mid-line
    resumed = evaluate(model, samples, codec, SETTINGS, results)
    assert _replies(resumed) == _replies(whole)
    assert len(results.read()) == len(samples)  # nothing done twice, the cut line dropped
    assert all(r["flops_pct"] == 100.0 and r["prefill_tokens"] == r["unpruned_tokens"] for r in whole)


def test_replies_do_not_depend_on_batch_size(tmp_path, samples, model):
    codec = MiniatureCodec(model.config)
    one = evaluate(model, samples, codec, dataclasses.replace(SETTINGS, batch_size=1), ResultsFile(tmp_path / "1"))
    three = evaluate(model, samples, codec, dataclasses.replace(SETTINGS, batch_size=3), ResultsFile(tmp_path / "3"))
    assert _replies(one) == _replies(three)


def test_pruned_run_prefills_fewer_tokens_and_scores_per_category(tmp_path, samples, model):
    config = MapperConfig(num_heads=model.config.text.num_attention_heads, channels=(8,), family="qwen2_vl")
    mapper = Mapper(config, rngs=nnx.Rngs(1))
    settings = dataclasses.replace(SETTINGS, prune=PruneConfig("mapper", 0.5))
    records = evaluate(
        model, samples, MiniatureCodec(model.config), settings, ResultsFile(tmp_path / "p"), mapper=mapper
    )
    for record, (height, width) in zip(records, SIZES, strict=True):
        visual = (height // 28) * (width // 28)
        assert record["unpruned_tokens"] - record["prefill_tokens"] == visual - -(-visual // 2)
        assert 0 < record["flops_pct"] < 100
    summary = benchmark_score("exact", records)
    assert set(summary) == {"score", "category/colour", "category/other"}
    assert summary["score"] == pytest.approx(100 * np.mean([r["score"] for r in records]))


def test_in_llm_pruned_run_generates_from_staged_caches_and_counts_every_stage(tmp_path, samples, model):
    """FastV after layer 1 of 2: the last layer prefills text + ceil(n / 2) tokens; the FLOPs count
    layer 0 at full length, so they lie between input pruning at 0.5 and none."""
    settings = dataclasses.replace(SETTINGS, prune=PruneConfig("fastv", 0.5, layer=1))
    records = evaluate(model, samples, MiniatureCodec(model.config), settings, ResultsFile(tmp_path / "f"))
    input_level = dataclasses.replace(SETTINGS, prune=PruneConfig("attention", 0.5))
    at_input = evaluate(model, samples, MiniatureCodec(model.config), input_level, ResultsFile(tmp_path / "a"))
    for record, other, (height, width) in zip(records, at_input, SIZES, strict=True):
        visual = (height // 28) * (width // 28)
        assert record["unpruned_tokens"] - record["prefill_tokens"] == visual - -(-visual // 2)
        assert other["flops_pct"] < record["flops_pct"] < 100


def test_video_benchmark_runs_through_the_chat_codec_pruned_and_not(tmp_path, tiny_qwen2vl, tokenizer):
    """MVBench-format videos (an mp4 and a frame directory), the real chat template and processor, one
    block of patches per frame group; pruning by layer-1 attention keeps ceil(n / 2) visual tokens."""
    from tests.eval.test_adapters import write_mvbench
    from tokcomp_jax.eval.codecs import ChatCodec

    write_mvbench(tmp_path)
    samples = read_benchmark("mvbench", tmp_path)
    model = tiny_qwen2vl[2]
    codec = ChatCodec(model.config, tokenizer, min_pixels=56 * 56, max_pixels=56 * 56)  # images and video frames
    settings = RunSettings(batch_size=2, text_buckets=(64, 128), visual_buckets=(64, 256), max_new_tokens=2)
    unpruned = evaluate(model, samples, codec, settings, ResultsFile(tmp_path / "u.jsonl"))
    pruned_settings = dataclasses.replace(settings, prune=PruneConfig("attention", 0.5))
    pruned = evaluate(model, samples, codec, pruned_settings, ResultsFile(tmp_path / "p.jsonl"))
    for full, cut in zip(unpruned, pruned, strict=True):
        visual = full["visual_tokens"]
        assert visual > 16 and full["prefill_tokens"] == full["unpruned_tokens"]
        assert full["prefill_tokens"] - cut["prefill_tokens"] == visual - -(-visual // 2)
    assert {r["category"] for r in unpruned} == {"object_shuffle", "episodic_reasoning"}


def test_samples_past_the_model_positions_are_named(samples, model):
    """A tiny model of 16 positions: every sample (>= 4 visual + text tokens) plus 8 new tokens passes it."""
    config = model.config
    short = dataclasses.replace(config, text=dataclasses.replace(config.text, max_position_embeddings=16))
    settings = dataclasses.replace(SETTINGS, max_new_tokens=8)
    with pytest.raises(ValueError, match=r"\['s0', 's5'\] reach position \d+; with 8 new tokens that passes "
                                         r"the model's max_position_embeddings 16"):  # fmt: skip
        next(prepared_batches(short, samples, MiniatureCodec(config), settings))
    assert next(prepared_batches(config, samples, MiniatureCodec(config), settings))
