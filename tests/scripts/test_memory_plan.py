"""scripts/memory_plan.py --keep: one sample's compiled prefill per keep ratio, and its refusals."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "memory_plan.py"


def _script():
    spec = importlib.util.spec_from_file_location("memory_plan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_keep_ratios_measure_a_shorter_prefill_and_a_smaller_cache(capsys):
    report = _script().main(["--preset", "vila:tiny", "--keep", "1,0.25", "--visual", "40", "--text", "8"])
    full, pruned = report["prefill_per_sample"]
    assert (full["tokens"], pruned["tokens"]) == (48, 18)
    assert full["kv_cache"] * (18 + 16) == pruned["kv_cache"] * (48 + 16)
    assert full["weights"] == pruned["weights"] == report["weights_bytes"]
    assert "| 0.25 | 18 |" in capsys.readouterr().out


@pytest.mark.parametrize("keep", ["0.5,x", "0,0.5", "1.5"])
def test_impossible_keep_ratios_are_refused_by_name(keep):
    with pytest.raises(SystemExit, match=f"--keep '{keep}'"):
        _script().main(["--preset", "vila:tiny", "--keep", keep])
