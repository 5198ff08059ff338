"""scripts/memory_plan.py --keep: one sample's compiled prefill per keep ratio, and its refusals."""

from __future__ import annotations

import pytest

from tests.scripts_module import load_script


def test_keep_ratios_measure_a_shorter_prefill_and_a_smaller_cache(capsys):
    report = load_script("memory_plan").main(
        ["--preset", "vila:tiny", "--keep", "1,0.25", "--visual", "40", "--text", "8"]
    )
    full, pruned = report["prefill_per_sample"]
    assert (full["tokens"], pruned["tokens"]) == (48, 18)
    assert full["kv_cache"] * (18 + 16) == pruned["kv_cache"] * (48 + 16)
    assert full["weights"] == pruned["weights"] == report["weights_bytes"]
    assert "| 0.25 | 18 |" in capsys.readouterr().out


@pytest.mark.parametrize("keep", ["0.5,x", "0,0.5", "1.5"])
def test_impossible_keep_ratios_are_refused_by_name(keep):
    with pytest.raises(SystemExit, match=f"--keep '{keep}'"):
        load_script("memory_plan").main(["--preset", "vila:tiny", "--keep", keep])


def test_a_plan_refuses_xla_attention_where_its_scores_do_not_fit_and_names_the_kernels_that_do(capsys):
    args = ["--preset", "qwen2_vl:7b", "--mesh", "1x2", "--batch", "1", "--sequence", "4176", "--patches", "16384",
            "--device-gib", "16"]  # fmt: skip
    with pytest.raises(SystemExit) as refused:
        load_script("memory_plan").main(args)
    assert refused.value.code == 1
    out = capsys.readouterr().out
    assert "does NOT fit; it would with reference or tiled or splash or cudnn attention" in out
    assert "| xla | 7.77 | 0.11 | 12.25 | 20.13 | no |" in out and "| splash | 7.77 | 0.11 | 0.64 | 8.52 | yes |" in out
    report = load_script("memory_plan").main([*args, "--attention", "splash"])
    assert report["attention_kernel"] == "splash" and report["total_bytes"] < 16 * 2**30
