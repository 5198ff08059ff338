"""`scripts/label.py --distributed` for real: 2 and 3 JAX processes on this machine with the same
command, one --out, against one process: the same labels for every sample, none lost or doubled,
and a run stopped part way (each host after one shard) resumed by rerunning every host."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.scripts.test_distributed_evaluate import REPO, run_processes
from tokcomp_jax.data.labels import read_split

COMMAND = [
    sys.executable,
    "scripts/label.py",
    "--config=configs/label/tiny.py",
    "--config.count=24",
    "--config.shard_size=8",
]  # fmt: skip  (3 shards: 2 + 1 over two hosts, 1 each over three)


def labels(out) -> dict[str, dict]:
    return {str(e["sample_id"]): e for e in read_split(out / "tfds" / "relevance_labels" / "1.0.0", "train")}


@pytest.mark.slow
def test_distributed_labels_equal_one_process_and_resume(tmp_path):
    subprocess.run([*COMMAND, f"--out={tmp_path / 'one'}"], cwd=REPO, check=True, capture_output=True, timeout=600)
    one = labels(tmp_path / "one")
    assert len(one) == 24

    run_processes([*COMMAND, "--stop_after_shards=1"], tmp_path / "two", 2)
    shards = sorted(p.name for p in (tmp_path / "two" / "shards").glob("*.npz"))
    assert shards == ["shard-00000.npz", "shard-00001.npz"] and not (tmp_path / "two" / "tfds").exists()
    written = {name: (tmp_path / "two" / "shards" / name).stat().st_mtime_ns for name in shards}
    run_processes(COMMAND, tmp_path / "two", 2)  # the rerun labels only shard 2 (host 0's second)
    assert written == {name: (tmp_path / "two" / "shards" / name).stat().st_mtime_ns for name in shards}
    run_processes(COMMAND, tmp_path / "three", 3)
    for out in ("two", "three"):
        many = labels(tmp_path / out)
        assert sorted(many) == sorted(one)
        for sample_id, example in one.items():
            for key in ("features", "relevance", "token_grid_thw"):
                np.testing.assert_allclose(many[sample_id][key], example[key], rtol=1e-6, atol=1e-7)
            assert many[sample_id]["answer_correct"] == example["answer_correct"]
