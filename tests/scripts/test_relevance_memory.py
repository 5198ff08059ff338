"""scripts/relevance_memory.py compiles both implementations; the hooked one needs less memory."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "relevance_memory.py"


def test_hooked_relevance_needs_less_memory_than_naive():
    spec = importlib.util.spec_from_file_location("relevance_memory", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["--lengths", "128", "--layers", "8", "--heads", "8", "--answers", "2"])
    hooked, naive = results["rows"]
    assert (hooked["method"], naive["method"]) == ("gradient", "gradient_naive")
    assert naive["temp_bytes"] > 2 * hooked["temp_bytes"]
