"""Training the miniature: a stopped and resumed run ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import nnx

import tokcomp_jax
from tokcomp_jax.miniature.samples import Group, Samples, token_grid
from tokcomp_jax.miniature.train import StepBatches, train_mllm


@pytest.mark.slow  # ~85 s; the mapper's resumed run (tests/mapper/test_train.py) stays in the default suite
def test_resumed_training_equals_uninterrupted(mini_config, mini_splits, tmp_path):
    config = mini_config.mllm
    held_out = {"validation": mini_splits["validation"]}
    whole = train_mllm(config, mini_splits["train"], held_out, tmp_path / "whole")
    train_mllm(config, mini_splits["train"], held_out, tmp_path / "split", stop_at_step=2)
    assert not (tmp_path / "split" / "model").exists()
    resumed = train_mllm(config, mini_splits["train"], held_out, tmp_path / "split")
    for a, b in zip(
        jax.tree.leaves(nnx.state(whole, nnx.Param)), jax.tree.leaves(nnx.state(resumed, nnx.Param)), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    records = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4] and "validation/accuracy" in records[-1]
    assert (tmp_path / "split" / "learning_curve.png").stat().st_size > 0
    loaded = tokcomp_jax.load(tmp_path / "whole" / "model")
    for a, b in zip(
        jax.tree.leaves(nnx.state(whole, nnx.Param)), jax.tree.leaves(nnx.state(loaded, nnx.Param)), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_larger_buckets_get_fewer_rows_and_clips_their_own_group(mini_config, mini_model, mini_splits):
    config = mini_config.mllm.copy_and_resolve_references()
    config.batch_size, config.min_batch_size, config.visual_buckets = 16, 2, (9, 36)
    examples = mini_splits["train"] + mini_splits["test_clips"]
    batches = StepBatches(Samples(mini_model.config, examples), config)
    assert batches.groups == [Group(9), Group(36), Group(36, frames=4)]
    assert [batches.batch_size(group) for group in batches.groups] == [16, 4, 4]
    assert batches.groups[2].buckets(20).frame_patches == 9 * 4  # one vision block per clip frame
    for step in range(6):
        inputs, targets = batches(step)
        assert inputs.input_ids.shape[0] in (16, 4) and targets.shape == inputs.input_ids.shape


def test_the_curriculum_admits_larger_images_step_by_step(mini_config, mini_model, mini_splits):
    config = mini_config.mllm.copy_and_resolve_references()
    config.visual_buckets, config.curriculum = (9, 36), ((0, 4), (10, 9), (20, 36))
    examples = mini_splits["train"] + mini_splits["test_2x"]
    batches = StepBatches(Samples(mini_model.config, examples), config)
    tokens = lambda step: [np.prod(token_grid(examples[i])) for pool in batches.admitted(step) for i in pool]  # noqa: E731
    assert max(tokens(0)) == 4 and max(tokens(10)) == 9 and max(tokens(25)) == 36
    assert len(tokens(25)) == len(examples)
    for step in (0, 5):
        inputs, _ = batches(step)
        assert np.asarray(inputs.visual_token_mask).sum(-1).max() <= 4
    config.curriculum = ((0, 1),)
    with pytest.raises(ValueError, match="admits no training example"):
        StepBatches(Samples(mini_model.config, examples), config)(0)
