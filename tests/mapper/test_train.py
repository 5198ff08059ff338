"""Mapper training: learns a known local rule, resumes to identical parameters, script end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from configs.mapper.paper import get_config
from tokcomp_jax.data.labels import write_label_dataset
from tokcomp_jax.data.synthetic_labels import synthetic_split
from tokcomp_jax.mapper.checkpoint import load_mapper
from tokcomp_jax.mapper.train import METRICS_FILE, train

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def label_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("labels")
    return write_label_dataset(
        directory,
        {"train": synthetic_split(0, 256, (3, 8), prefix="train"), "validation": synthetic_split(1, 48, (3, 8))},
    )


def small_config(label_dir, variant: str = "") -> object:
    config = get_config(variant)
    config.data.dir = str(label_dir)
    config.data.buckets = (16, 64)
    config.model.channels = (16, 32, 32)
    config.batch_size = 32
    config.learning_rate = 3e-3
    config.warmup_steps = 10
    config.log_every = config.eval_every = 2
    config.checkpoint_every = 4
    config.num_steps = 12
    return config


def test_learns_a_known_local_rule(label_dir, tmp_path):
    """The labels are the squared 3x3 box mean of head 0: a grid mapper over heads can represent it."""
    config = small_config(label_dir, "grid,heads")
    config.num_steps, config.eval_every, config.log_every = 240, 240, 240
    results = train(config, tmp_path)
    assert results["validation"]["overlap@0.5"] > 0.85, results
    assert results["validation"]["spearman"] > 0.8, results


def test_the_v2_variant_trains_a_v2_mapper(label_dir, tmp_path):
    """configs/mapper/paper.py:v2 saves a mapper the mapper_v2 scorer reads: per-head input, the
    attention prior, a head mix moved from uniform by training."""
    config = small_config(label_dir, "v2")
    config.data.eval_splits = ()
    train(config, tmp_path)
    mapper = load_mapper(tmp_path / "mapper")
    assert (mapper.config.prior, mapper.config.input_channels) == ("attention", "heads")
    assert np.abs(np.asarray(mapper.head_mix[...])).max() > 0


def test_resumed_run_ends_with_the_parameters_of_an_uninterrupted_run(label_dir, tmp_path):
    config = small_config(label_dir)
    train(config, tmp_path / "straight")
    train(config, tmp_path / "resumed", stop_at_step=7)  # checkpoints at 4 and 7
    checkpoints = tmp_path / "resumed" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir() if p.name.isdigit()) == ["4", "7"]
    # A kill loses what was not checkpointed: drop step 7, so the rerun redoes steps 5-7 from 4.
    for path in (checkpoints / "7").parent.glob("7*"):
        subprocess.run(["rm", "-rf", str(path)], check=True)
    train(config, tmp_path / "resumed")

    straight, resumed = (
        nnx.state(load_mapper(tmp_path / run / "mapper"), nnx.Param) for run in ("straight", "resumed")
    )
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / METRICS_FILE).read_text().splitlines()]
    assert steps == list(range(2, 13, 2))  # no line lost, none duplicated by the redone steps


def test_resume_refuses_another_config_or_data(label_dir, tmp_path):
    config = small_config(label_dir)
    train(config, tmp_path, stop_at_step=4)
    config.learning_rate = 1.0
    with pytest.raises(ValueError, match="another config"):
        train(config, tmp_path)
    config.learning_rate, config.seed = small_config(label_dir).learning_rate, 1
    (tmp_path / "config.json").unlink()  # even without the record, the data position is checked
    with pytest.raises(ValueError, match="data position"):
        train(config, tmp_path)


def test_a_run_recorded_before_a_field_was_added_resumes_at_its_old_value(label_dir, tmp_path):
    """A workdir from before `model.prior` existed resumes as the paper's mapper, and only as that."""
    config = small_config(label_dir)
    train(config, tmp_path, stop_at_step=4)
    recorded = json.loads((tmp_path / "config.json").read_text())
    del recorded["model"]["prior"]
    (tmp_path / "config.json").write_text(json.dumps(recorded))
    train(config, tmp_path)  # resumes to the end
    assert load_mapper(tmp_path / "mapper").config.prior == "none"
    (tmp_path / "config.json").write_text(json.dumps(recorded))
    config.model.prior = "attention"
    with pytest.raises(ValueError, match="another config"):
        train(config, tmp_path)


def test_script_trains_on_synthetic_labels(tmp_path):
    command = [
        sys.executable,
        "scripts/train_mapper.py",
        "--config=configs/mapper/paper.py:synthetic,runlocal",
        f"--workdir={tmp_path}",
        "--config.num_steps=20",
        "--config.data.synthetic.train=(64,3,6)",
        "--config.data.synthetic.validation=(16,3,6)",
        "--config.data.synthetic.validation_2x=(8,12,12)",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"train", "validation", "validation_2x"}
    assert results["validation_2x"]["samples"] == 8
    assert (results["train"]["first_step"], results["train"]["last_step"]) == (1, 20)
    assert (tmp_path / "mapper" / "mapper.json").exists()
    assert "validation_2x: " in result.stdout
    first, last = results["train"]["first_kl"], results["train"]["last_kl"]
    assert f"training KL: {first:.4f} at step 1 -> {last:.4f} at step 20" in result.stdout  # the loss as it fell
