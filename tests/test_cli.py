"""What the commands print besides their output: no third-party noise unless --debug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conversion.convert import main as convert
from conversion.tiny import save_tiny_checkpoint, write_jsonl_sample

REPO = Path(__file__).resolve().parents[1]


def test_a_run_prints_no_tpu_probe_and_no_orbax_info(tmp_path):
    """On a CPU machine JAX logs its failed TPU probe and orbax an INFO line per file; neither says
    anything to a user of the scripts, so both are silenced (--debug keeps them, where a logging
    handler shows INFO)."""
    save_tiny_checkpoint("qwen2_vl", tmp_path / "hf")
    assert convert(["--src", str(tmp_path / "hf"), "--dst", str(tmp_path / "model")]) == 0
    write_jsonl_sample(tmp_path / "data", count=2)
    command = [sys.executable, "scripts/evaluate.py", "--config", "configs/eval/jsonl.py:test.jsonl", "--data_dir",
               str(tmp_path / "data"), "--model", str(tmp_path / "model"), "--scorer", "attention", "--keep", "0.5",
               "--out", str(tmp_path / "eval")]  # fmt: skip
    quiet = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "Unable to initialize backend" not in quiet.stderr
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("I1")], quiet.stderr  # absl INFO
