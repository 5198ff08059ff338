"""The one-call API: a directory in, pruned answers out, for every family; a batch answers as its
prompts answer one by one."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from flax import nnx
from PIL import Image

import tokcomp_jax
from conversion.tiny import save_tiny_checkpoint
from tokcomp_jax.mapper import Mapper, MapperConfig, save_mapper
from tokcomp_jax.models.families import FAMILIES

RNG = np.random.default_rng(0)
PICTURE, OTHER = RNG.integers(0, 256, (56, 84, 3), np.uint8), RNG.integers(0, 256, (84, 56, 3), np.uint8)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    directory = tmp_path_factory.mktemp("qwen2_vl")
    save_tiny_checkpoint("qwen2_vl", directory)
    return tokcomp_jax.Pipeline.from_pretrained(directory)


def test_one_prompt_keeps_its_share_of_the_visual_tokens(qwen, tmp_path):
    Image.fromarray(PICTURE).save(tmp_path / "picture.png")
    answer = qwen.generate("what colour is the square ?", images=[tmp_path / "picture.png"], keep=0.5)
    assert answer.visual_tokens > 0
    assert answer.visual_tokens_kept == math.ceil(0.5 * answer.visual_tokens)
    assert isinstance(answer.text, str) and 1 <= len(answer.tokens) <= 32
    unpruned = qwen.generate("what colour is the square ?", images=[PICTURE], keep=1.0)
    assert unpruned.visual_tokens_kept == unpruned.visual_tokens == answer.visual_tokens


def test_a_batch_answers_as_its_prompts_do_alone(qwen):
    prompts, images = ["what colour is the square ?", "is there a circle ?"], [[PICTURE], [OTHER]]
    batch = qwen.generate(prompts, images=images, keep=0.5, max_new_tokens=6)
    for prompt, media, answer in zip(prompts, images, batch, strict=True):
        alone = qwen.generate(prompt, images=media, keep=0.5, max_new_tokens=6)
        np.testing.assert_array_equal(answer.tokens, alone.tokens)
        assert (answer.text, answer.visual_tokens_kept) == (alone.text, alone.visual_tokens_kept)


def test_a_mapper_of_another_family_is_refused_before_the_model_loads(tmp_path):
    save_tiny_checkpoint("qwen2_vl", tmp_path / "model")
    (tmp_path / "model" / "model.safetensors").unlink()  # never read: the family check comes first
    save_mapper(tmp_path / "mapper", Mapper(MapperConfig(num_heads=2, channels=(8,), family="vila"), rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="was trained on vila attention, but .* is a qwen2_vl model"):
        tokcomp_jax.Pipeline.from_pretrained(tmp_path / "model", mapper=tmp_path / "mapper")


def test_mistakes_are_named(qwen):
    with pytest.raises(ValueError, match="needs a mapper"):
        qwen.generate("what ?", images=[PICTURE], scorer="mapper")
    with pytest.raises(ValueError, match="images must hold one entry per prompt"):
        qwen.generate(["a ?", "b ?"], images=[[PICTURE]])


@pytest.mark.parametrize("name", sorted(set(FAMILIES) - {"qwen2_vl"}))
def test_every_family_answers_pruned(name, tmp_path):
    save_tiny_checkpoint(name, tmp_path)
    answer = tokcomp_jax.Pipeline.from_pretrained(tmp_path).generate(
        "what colour is the square ?", images=[PICTURE], keep=0.25, max_new_tokens=4
    )
    assert 0 < answer.visual_tokens_kept == math.ceil(0.25 * answer.visual_tokens)


def test_head_weights_of_another_model_are_refused_before_it_loads_and_hawk_reads_them(tmp_path):
    save_tiny_checkpoint("qwen2_vl", tmp_path / "model")
    heads = tokcomp_jax.load(tmp_path / "model").config.text.num_attention_heads
    wrong, right = tmp_path / "wrong.json", tmp_path / "right.json"
    wrong.write_text(json.dumps({"family": "vila", "weights": [1.0] * heads}))
    right.write_text(json.dumps({"family": "qwen2_vl", "weights": [float(h == 0) for h in range(heads)]}))
    pipeline = tokcomp_jax.Pipeline.from_pretrained(tmp_path / "model", head_weights=right)
    assert pipeline._prune_config(0.5, "hawk", 2).head_weights == pipeline.head_weights == (1.0,) + (0.0,) * (heads - 1)
    assert pipeline._prune_config(0.5, "attention", 2).head_weights is None
    answer = pipeline.generate("what colour is the square ?", images=[PICTURE], keep=0.25, scorer="hawk",
                               max_new_tokens=2)  # fmt: skip
    assert 0 < answer.visual_tokens_kept == math.ceil(0.25 * answer.visual_tokens)
    (tmp_path / "model" / "model.safetensors").unlink()  # never read: the head weights are checked first
    with pytest.raises(ValueError, match="'vila' model; this model is 'qwen2_vl'"):
        tokcomp_jax.Pipeline.from_pretrained(tmp_path / "model", head_weights=wrong)
