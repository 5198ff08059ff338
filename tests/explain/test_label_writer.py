"""The label writer: TFDS-readable output, resumable to the same dataset, and the CLIs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from tests.scripts_module import load_script
from tokcomp_jax.data.labels import read_split
from tokcomp_jax.data.scenes import scene_samples
from tokcomp_jax.explain.label_writer import SHARDS_DIR, LabelSettings, write_labels
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig
from tokcomp_jax.models.layout import Buckets

REPO = Path(__file__).resolve().parents[2]
SETTINGS = LabelSettings(Buckets(text=16, visual=64, queries=8), batch_size=3, shard_size=3, max_new_tokens=3)


@pytest.fixture(scope="module")
def model_and_samples():
    model = Qwen2VL(Qwen2VLConfig.tiny(), rngs=nnx.Rngs(0))
    return model, scene_samples(model.config, 8, [(56, 84), (112, 112), (84, 56)], seed=1)


def test_labels_read_back_and_a_resumed_run_writes_the_same_dataset(model_and_samples, tmp_path):
    model, samples = model_and_samples
    straight = read_split(write_labels(model, samples, tmp_path / "straight", SETTINGS), "train")

    assert write_labels(model, samples, tmp_path / "resumed", SETTINGS, stop_after_shards=1) is None
    shards = tmp_path / "resumed" / SHARDS_DIR
    assert sorted(p.name for p in shards.iterdir()) == ["shard-00000.npz"]
    (shards / "shard-00001.tmp.npz").write_bytes(b"half a shard from a killed run")
    resumed = read_split(write_labels(model, samples, tmp_path / "resumed", SETTINGS), "train")

    assert [e["sample_id"] for e in straight] == sorted(s["sample_id"] for s in samples)
    for a, b in zip(straight, resumed, strict=True):
        for key in ("features", "relevance", "token_grid_thw", "answer_correct", "sample_id"):
            np.testing.assert_array_equal(a[key], b[key])
    heads = model.config.text.num_attention_heads
    for example, sample in zip(straight, sorted(samples, key=lambda s: s["sample_id"]), strict=True):
        count = int(sample["image_grid_thw"].prod()) // 4
        assert example["features"].shape == (heads, count)
        assert example["relevance"].shape == (count,) and (example["relevance"] >= 0).all()
        assert example["relevance"].sum() > 0
        np.testing.assert_array_equal(example["token_grid_thw"], sample["image_grid_thw"] // [1, 2, 2])


def test_label_and_visualize_scripts(tmp_path):
    command = [sys.executable, "scripts/label.py", f"--out={tmp_path / 'labels'}", "--config.count=4"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(read_split(tmp_path / "labels" / "tfds", "train")) == 4

    module = load_script("visualize")
    report = module.main(["--config", str(REPO / "configs/label/tiny.py"), "--out", str(tmp_path / "r.png")])
    assert report["kept"] == int(np.ceil(0.25 * report["tokens"]))
    assert (tmp_path / "r.png").stat().st_size > 0


@pytest.mark.slow
def test_label_script_killed_mid_run_resumes_to_the_same_dataset(tmp_path):
    """SIGKILL once the first shard is on disk, rerun, compare with an uninterrupted run."""
    flags = ["--config.count=10", "--config.shard_size=2", "--config.batch_size=2"]
    command = [sys.executable, "scripts/label.py", *flags]
    subprocess.run([*command, f"--out={tmp_path / 'straight'}"], cwd=REPO, check=True, capture_output=True, timeout=600)

    killed = subprocess.Popen([*command, f"--out={tmp_path / 'killed'}"], cwd=REPO, stderr=subprocess.DEVNULL)
    shards = tmp_path / "killed" / SHARDS_DIR
    deadline = time.monotonic() + 300
    while not list(shards.glob("shard-*[0-9].npz")) and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    finished = list(shards.glob("shard-*[0-9].npz"))
    assert 1 <= len(finished) < 5, "the kill should land mid-run"
    subprocess.run([*command, f"--out={tmp_path / 'killed'}"], cwd=REPO, check=True, capture_output=True, timeout=600)

    straight, resumed = (read_split(tmp_path / run / "tfds", "train") for run in ("straight", "killed"))
    assert len(straight) == 10
    for a, b in zip(straight, resumed, strict=True):
        for key in ("features", "relevance", "token_grid_thw", "answer_correct", "sample_id"):
            np.testing.assert_array_equal(a[key], b[key])
