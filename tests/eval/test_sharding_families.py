"""Every family sharded over a (data, model) mesh equals one device (each family's model inputs name
their batch axes, BATCH_AXES, for place_batch): on 8 fake devices of one process, and on one global
mesh over 2 processes x 4 devices (gloo collectives, as hosts of a pod)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("sharded_families.py")
FAMILIES = ["llava_onevision", "qwen2_5_vl", "qwen2_vl", "qwen3_vl", "vila"]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def check(stdout: str, hosts: int) -> None:
    """Tolerance 1e-4 as for parity: a sharded contraction sums in a different order."""
    results = [json.loads(line) for line in stdout.strip().splitlines() if line.startswith("{")]
    assert [r["family"] for r in results] == FAMILIES
    for result in results:
        assert result["input_ids_spec"].startswith("P('data'") and result["hosts"] == hosts, result
        assert result["unpruned_logits_diff"] < 1e-4 and result["pruned_logits_diff"] < 1e-4, result
        assert result["tokens_equal"], result


@pytest.mark.slow  # ~3 min; Qwen2-VL's sharded run (test_sharding.py) is in the default suite
def test_every_family_sharded_equals_single_device_on_eight_fake_devices():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=ENV, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    check(done.stdout, hosts=1)


@pytest.mark.slow
def test_every_family_on_one_global_mesh_over_two_processes_equals_single_device():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    processes = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(index), str(port)],
            env=ENV,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for index in range(2)
    ]
    outputs = [process.communicate(timeout=900) for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    check(outputs[0][0], hosts=2)
