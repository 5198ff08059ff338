"""Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision and VILA1.5 sharded over a (data, model) mesh equal one device (each family's
model inputs name their batch axes, BATCH_AXES, for place_batch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow  # ~3 min; Qwen2-VL's sharded run (test_sharding.py) is in the default suite
def test_other_families_sharded_equal_single_device_on_eight_fake_devices():
    """Tolerance 1e-4 as for parity: a sharded contraction sums in a different order."""
    script = Path(__file__).with_name("sharded_families.py")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # fmt: skip
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.strip().splitlines() if line.startswith("{")]
    assert [r["family"] for r in results] == ["llava_onevision", "qwen2_5_vl", "qwen3_vl", "vila"]
    for result in results:
        assert result["input_ids_spec"].startswith("P('data'"), result
        assert result["unpruned_logits_diff"] < 1e-4 and result["pruned_logits_diff"] < 1e-4, result
