"""`make bench` runs scripts/bench.py; this runs its one-case test variant with transformers beside it."""

from __future__ import annotations

import json

import pytest

from tests.scripts_module import load_script
from tokcomp_jax.models.common import attention


@pytest.mark.slow  # the benchmark script end to end (~80 s); make test-slow runs it
def test_bench_measures_every_step_on_the_same_weights_as_transformers(tmp_path, run_absl_script, capsys):
    run_absl_script("bench.py", "--config", "configs/bench/qwen2_vl.py:test", "--out", str(tmp_path))
    report = json.loads((tmp_path / "bench.json").read_text())
    (result,) = report["results"]
    rows = {row["step"]: row for row in result["rows"]}
    assert {"prefill unpruned", "prefill keep 0.5", "prefill keep 0.25", "prefill keep 0.111"} <= set(rows)
    assert rows["scoring (divprune)"]["pct_of_unpruned"] > 0  # a cost_scorers row: its share of the prefill
    assert "tower_extra_ms" in rows["scoring (visionzip)"]  # with what reading the tower's attention adds
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
    for part in result["torch"]["parts"]:  # the ratio of medians lies within the per-round ratios
        low, high = part["torch_over_jax_rounds"]
        assert 0 < low <= high and low * (1 - 1e-9) <= part["torch_over_jax"] <= high * (1 + 1e-9), part
    assert set(targets["pct_of_ideal"]) == {"0.5", "0.25", "0.111"} and "whole_forward_ok" in targets
    # The eval runner's throughput at each batch size, every setting, beside transformers' generate,
    # whose greedy replies on the same weights are the unpruned runner's, token for token.
    throughput = report["throughput"]
    assert [row["batch"] for row in throughput] == [1, 4]
    for row in throughput:
        assert set(row["samples_per_s"]) == {"unpruned", "keep 0.5", "keep 0.25", "keep 0.111", "transformers generate"}
        assert all(rate > 0 for rate in row["samples_per_s"].values()) and row["samples"] == 2 * row["batch"]
        assert row["replies_equal_pct"] == 100.0
    # Which kernel attends where no probabilities are read (here 80 tokens: the reference), and checks of them.
    assert result["attention_kernels"] == {"vision blocks": "reference", "LLM prefill": "reference",
                                           "decode step": "reference"}  # fmt: skip
    checks = report["attention_checks"]
    assert {site: check["tokens"] for site, check in checks.items()} == {"LLM prefill": 80, "vision blocks": 64}
    assert all(check["kernel"] == "reference" and check["max_abs_diff"] < 1e-6 for check in checks.values()), checks
    assert "| prefill keep 0.5 |" in (tmp_path / "bench.md").read_text()
    assert "### Eval-runner throughput" in (tmp_path / "bench.md").read_text()
    assert "### Targets" in capsys.readouterr().out


@pytest.mark.slow  # the device variant's code path on the tiny preset (~30 s); make test-slow runs it
def test_the_device_bench_runs_in_bfloat16_and_reports_mfu(tmp_path, run_absl_script, monkeypatch):
    """Also: an attention kernel that fails its check (as cuDNN could on a lent GPU) does not end the
    run; it goes on with XLA's kernel and the report says what failed."""
    real = attention.attend

    def refusing(query, key, value, mask, implementation="auto", causal=False):
        if implementation != "xla":
            raise NotImplementedError("this kernel refuses these operands")
        return real(query, key, value, mask, implementation, causal)

    monkeypatch.setattr(attention, "attend", refusing)
    run_absl_script("bench.py", "--config", "configs/bench/qwen2_vl.py:device_test", "--out", str(tmp_path))
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["environment"]["dtype"] == "bfloat16" and report["environment"]["peak_tflops"] == 1.0
    (result,) = report["results"]
    rows = {row["step"]: row for row in result["rows"]}
    unpruned = rows["prefill unpruned"]
    expected_mfu = 100 * unpruned["analytic_gflops"] * 1e9 / (unpruned["median_ms"] / 1e3) / 1e12
    assert unpruned["mfu_pct"] == pytest.approx(expected_mfu)
    assert "mfu_pct" not in rows["vision tower + embed"]  # no analytic count for the tower
    # transformers ran with its own random weights: times are compared, logits are not.
    assert "last_logit_max_abs_diff" not in result["torch"] and len(result["torch"]["parts"]) == 3
    checks = report["attention_checks"]
    assert all(check["error"] == "NotImplementedError: this kernel refuses these operands" for check in checks.values())
    assert report["environment"]["attention"] == "xla" and result["attention_kernels"]["LLM prefill"] == "xla"
    markdown = (tmp_path / "bench.md").read_text()
    assert "bfloat16" in markdown and "failed: NotImplementedError" in markdown


def test_the_device_bench_times_jax_alone_where_torch_has_no_cuda_device(monkeypatch, capsys):
    """On a TPU VM (`make bench-device`: config.torch_device = "cuda") transformers has no device:
    the bench builds the JAX model alone and says so, instead of failing on the missing GPU."""

    import torch

    from configs.bench.qwen2_vl import get_config
    from tokcomp_jax.models import Qwen2VLConfig

    bench = load_script("bench")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = get_config("test")
    config.torch_device = "cuda"
    model, torch_model = bench.build_models(config, Qwen2VLConfig.tiny())
    assert torch_model is None and model.config == Qwen2VLConfig.tiny()  # the JAX model, built
    assert "JAX alone" in capsys.readouterr().out
