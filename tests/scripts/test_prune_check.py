"""scripts/prune_check.py runs and reports gather == mask, keep 1 == unpruned, one compile."""

from __future__ import annotations

import pytest

from tests.scripts_module import load_script


@pytest.mark.slow  # the script end to end; gather == mask and keep 1 == unpruned: tests/prune/test_pruning.py
def test_prune_check_reports_equivalence(tmp_path):
    module = load_script("prune_check")
    results = module.main(["--scorers", "dart_input", "--keep", "1.0", "0.25", "--json", str(tmp_path / "r.json")])
    assert [row["keep_ratio"] for row in results["rows"]] == [1.0, 0.25]
    assert all(row["gather_vs_mask"] < 1e-4 for row in results["rows"])
    assert results["rows"][0]["keep1_vs_unpruned"] < 1e-4
    assert results["compiles_for_4_image_sizes_in_one_bucket"] == 1
    assert (tmp_path / "r.json").exists()
