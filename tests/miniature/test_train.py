"""Training the miniature: a stopped and resumed run ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json

import jax
import numpy as np
from flax import nnx

import tokcomp_jax
from tokcomp_jax.miniature.samples import Group, Samples
from tokcomp_jax.miniature.train import StepBatches, train_mllm


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
