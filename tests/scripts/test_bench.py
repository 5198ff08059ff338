"""`make bench` runs scripts/bench.py; this runs its one-case test variant with transformers beside it."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow  # the benchmark script end to end (~15 s); make test-slow runs it
def test_bench_measures_every_step_on_the_same_weights_as_transformers(tmp_path, run_absl_script, capsys):
    run_absl_script("bench.py", "--config", "configs/bench/qwen2_vl.py:test", "--out", str(tmp_path))
    report = json.loads((tmp_path / "bench.json").read_text())
    (result,) = report["results"]
    rows = {row["step"]: row for row in result["rows"]}
    assert {"prefill unpruned", "prefill keep 0.5", "prefill keep 0.25", "prefill keep 0.111"} <= set(rows)
    assert all(row["median_ms"] > 0 and row["xla_gflops"] > 0 for row in rows.values())
    # Pruning shortens the prefilled sequence, its analytic FLOPs and its KV cache, in order.
    lengths = [rows[f"prefill keep {k}"]["tokens"] for k in (0.5, 0.25, 0.111)]
    assert rows["prefill unpruned"]["tokens"] > lengths[0] > lengths[1] > lengths[2]
    # The analytic FLOPs (matmuls only) agree with XLA's count of each graph (everything) within 10%.
    for row in rows.values():
        if row["analytic_gflops"] is not None:
            assert 0.9 < row["analytic_gflops"] / row["xla_gflops"] <= 1.0, row
    kv = [d["kv_mib"] for d in result["decode"]]
    assert kv == sorted(kv, reverse=True) and kv[0] > kv[-1]
    assert all(d["tokens_per_s"] > 0 for d in result["decode"])
    # The off-size image in the same bucket compiled nothing new; decode compiles once per cache length.
    targets = report["targets"]
    assert targets["compiles_ok"], targets
    assert targets["compiles"]["prefill"] == 1 and targets["compiles"]["decode"] == 4
    # transformers ran on the very weights the Flax model holds.
    assert result["torch"]["last_logit_max_abs_diff"] < 1e-4
    assert [part["part"] for part in result["torch"]["parts"]][:2] == ["vision tower + embed", "prefill unpruned"]
    assert "| prefill keep 0.5 |" in (tmp_path / "bench.md").read_text()
    assert "### Targets" in capsys.readouterr().out
