"""scripts/attention_bench.py times every implementation beside the reference and says how far each is from it."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize(
    ("length", "layout", "label"),
    [("128", ["--window", "32"], "windows of 32"), ("640", ["--causal"], "causal")],
)  # 640 causal queries: "tiled" splits the prefill once (the first 256 queries against 256 keys)
def test_attention_bench_reports_every_implementation_near_the_reference(
    run_absl_script, capsys, length, layout, label
):
    run_absl_script("attention_bench.py", "--length", length, "--heads", "4", "--kv_heads", "2", "--head_dim", "8",
                    *layout, "--repeats", "1")  # fmt: skip
    out = capsys.readouterr().out
    assert label in out
    rows = dict(re.findall(r"^\| (\w[\w ,]*) \| [\d.]+ \| [\d.]+ \| ([\d.e+-]+) \|$", out, flags=re.M))
    assert {"reference", "tiled", "fused"} | ({"tiled, mask only"} if label == "causal" else set()) <= set(rows), out
    assert all(float(diff) < 1e-5 for diff in rows.values()), rows


def test_a_window_that_does_not_divide_the_length_is_refused(run_absl_script, capsys):
    run_absl_script("attention_bench.py", "--length", "100", "--window", "30", code=1)
    assert "--window 30 must divide --length 100" in capsys.readouterr().err
