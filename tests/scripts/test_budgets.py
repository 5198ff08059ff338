"""scripts/budgets.py's gain over the fixed keeps at equal FLOPs, and its re-rendering from summaries."""

from __future__ import annotations

import json
import math

import pytest

from tests.scripts_module import load_script


def _split(budgets: dict[str, tuple[float, float]], samples: int = 100) -> dict:
    """A split summary: attention's fixed keeps at FLOPs 40 / 50 / 70 (retention 90 / 98 / 100) and
    `budgets` {"attention+mass:TAU@keep": (retention, flops)}."""
    fixed = {"0.111": (90.0, 40.0), "0.25": (98.0, 50.0), "0.5": (100.0, 70.0)}
    row = lambda retention, flops: {"retention": retention, "flops": flops, "retention_error": 0.5, "kept": 0.1}  # noqa: E731
    methods = {"attention": {keep: row(*values) for keep, values in fixed.items()}}
    for key, values in budgets.items():
        method, keep = key.split("@")
        methods.setdefault(method, {})[keep] = row(*values)
    return {"samples": samples, "methods": methods}


def test_a_budget_gains_what_it_holds_above_the_fixed_line_at_its_flops_and_nothing_outside_it():
    budgets = load_script("budgets")
    split = _split({"attention+mass:0.7@0.25": (97.0, 45.0), "attention+mass:0.3@0.111": (80.0, 35.0)})
    assert budgets.frontier_gain(split, "attention+mass:0.7@0.25") == pytest.approx(97.0 - 94.0)
    assert budgets.frontier_gain(split, "attention@0.25") == 0.0  # a fixed keep lies on its own line
    assert math.isnan(budgets.frontier_gain(split, "attention+mass:0.3@0.111"))  # below the fixed keeps' FLOPs


def test_the_budget_chosen_by_gain_is_the_best_on_validation_weighed_by_samples():
    budgets = load_script("budgets")
    small = _split({"attention+mass:0.7@0.25": (99.0, 45.0), "attention+mass:0.8@0.5": (99.0, 60.0)}, samples=10)
    large = _split({"attention+mass:0.7@0.25": (94.0, 45.0), "attention+mass:0.8@0.5": (100.0, 60.0)}, samples=90)
    # gains: mass:0.7 +5 and 0 (mean +0.5), mass:0.8 0 and +1 (mean +0.9)
    assert budgets.choose_by_gain([small, large], ("attention",)) == {"attention": "attention+mass:0.8@0.5"}


def test_the_tables_come_again_from_an_earlier_runs_summaries(tmp_path, capsys):
    budgets = load_script("budgets")
    split = _split({"attention+mass:0.7@0.25": (97.0, 45.0)})
    results = {"validation": split, "test": split}
    (tmp_path / "earlier.json").write_text(json.dumps({"results": results}))
    table = budgets.main(["--summaries", str(tmp_path / "earlier.json"), "--out", str(tmp_path / "again.md")])
    assert "| attention | +mass:0.7@0.25 | +3.0 (97.0 at 45) |" in table
    assert json.loads((tmp_path / "again.json").read_text())["chosen_by_gain"] == {
        "attention": "attention+mass:0.7@0.25"
    }
    with pytest.raises(SystemExit, match="not the .json an earlier"):
        budgets.main(["--summaries", str(tmp_path / "again.md")])


@pytest.mark.parametrize("taus", ["0.5,x", "0,0.5", "1.5", ""])
def test_impossible_taus_are_refused_by_name(taus):
    with pytest.raises(SystemExit, match=f"--taus '{taus}'"):
        load_script("budgets").main(["--summaries", "unread.json", "--taus", taus])
