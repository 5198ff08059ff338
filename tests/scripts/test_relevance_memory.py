"""scripts/relevance_memory.py compiles both implementations; the hooked one needs less memory."""

from __future__ import annotations

from tests.scripts_module import load_script


def test_hooked_relevance_needs_less_memory_than_naive():
    module = load_script("relevance_memory")
    results = module.main(["--lengths", "128", "--layers", "8", "--heads", "8", "--answers", "2"])
    hooked, naive = results["rows"]
    assert (hooked["method"], naive["method"]) == ("gradient", "gradient_naive")
    assert naive["temp_bytes"] > 2 * hooked["temp_bytes"]
