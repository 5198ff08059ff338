"""`make demo` runs scripts/demo.py (the miniature reproduction); this runs its tiny variant end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tokcomp_jax.mapper import load_mapper
from tokcomp_jax.miniature.evaluate import METHODS

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_every_stage_and_writes_tables_and_pictures(tmp_path, run_absl_script, capsys):
    run_absl_script("demo.py", "--config", "configs/miniature.py:test", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "retention.json").read_text())
    assert set(summary["results"]) == {"test", "test_2x", "test_clips"}
    for split in summary["results"].values():
        assert set(split["methods"]) == {*METHODS, "mapper_grid", "mapper_v2"}  # the mapper variants
        for rows in split["methods"].values():
            assert set(rows) == {"0.5", "0.25", "0.111"}
            assert all(0.0 <= row["ground_truth_recall"] <= 1.0 and 0 < row["flops"] < 100 for row in rows.values())
            assert all(0.0 <= row["paired_coverage"] <= 1.0 for row in rows.values())
    assert load_mapper(tmp_path / "mappers" / "mapper_v2" / "mapper").config.prior == "attention"  # its own scorer
    labels = {"mapper": "gradient", "mapper_grid": "gradient", "mapper_v2": "input_gradient"}  # the v2's own labels
    assert summary["mapper_labels"]["methods"] == labels
    (v2_labels,) = (tmp_path / "labels-input_gradient").iterdir()
    v2_data = json.loads((tmp_path / "mappers" / "mapper_v2" / "config.json").read_text())["data"]
    assert Path(v2_data["dir"]).is_relative_to(v2_labels) and v2_labels.name.startswith("train-")
    assert set(summary["seconds"]) == {"data", "mllm", "labels", "heads", "mapper", "evaluation"}
    weights = summary["hawk_head_weights"]["weights"]  # measured on the training samples, used by the hawk rows
    assert len(weights) == summary["config"]["mllm"]["model"]["heads"] and abs(sum(weights) - 1) < 1e-5
    records = [json.loads(line) for line in (tmp_path / "records-test_2x.jsonl").read_text().splitlines()]
    assert len(records) == summary["results"]["test_2x"]["samples"] == 4  # 2 images, 2 questions each
    assert all(len(r["kept"]["mapper@0.5"]) == -(-r["visual_tokens"] // 2) for r in records)
    table = (tmp_path / "retention.md").read_text()
    rows = [line.split(" | ")[0] for line in table.splitlines()]
    assert rows.count("| mapper (paper)") == rows.count("| mapper (heads + grid)") == 3 and "keep 0.111" in table
    assert "| mapper (paper) |" in capsys.readouterr().out
    pictures = sorted((tmp_path / "pictures").glob("*.png"))
    assert len(pictures) == 3  # one paired image (both questions) per split
    assert Image.open(pictures[0]).size[0] > 11 * 96
    assert Image.open(tmp_path / "mllm" / "learning_curve.png").size[0] > 0
    assert (tmp_path / "mllm" / "model" / "tokcomp_model.json").exists()

    # the run's tables again from its records, every kind kept: the same figures
    kinds = "boxed_digit,sum,relation,largest,clip_boxed_digit,clip_sum,clip_relation,clip_largest"
    run_absl_script("retable.py", "--run", str(tmp_path), "--kinds", kinds)
    again = json.loads((tmp_path / f"retention-{kinds.replace(',', '-')}.json").read_text())["results"]
    for split, results in summary["results"].items():
        assert again[split]["unpruned_accuracy"] == results["unpruned_accuracy"]
        same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731 (NaN == NaN)
        assert same(again[split]["methods"], results["methods"])

    # retention by slice, from the records: every question with evidence falls in exactly one slice
    command = [sys.executable, "scripts/retention_by.py", "--run", str(tmp_path), "--split", "test_2x",
               "--by", "position", "--methods", "mapper,attention", "--keep", "0.25"]  # fmt: skip
    table = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True, timeout=600).stdout
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ") and "third" in line]
    assert sum(int(row[1]) for row in rows) == sum(bool(r["evidence"]) for r in records)

    # the training labels again, with the evidence cells as relevance: the same samples and features
    command = [sys.executable, "scripts/evidence_labels.py", "--run", str(tmp_path),
               "--out", str(tmp_path / "evidence-labels")]  # fmt: skip
    subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True, timeout=600)
    (train_labels,) = (tmp_path / "labels").glob("train-*")
    read_both = (  # in a subprocess, as TFDS's data sources need the flags the demo's run removed
        "import json, sys, numpy as np; from tokcomp_jax.data.labels import read_split; "
        "pairs = zip(*(read_split(d, 'train') for d in sys.argv[1:]), strict=True); "
        "print(json.dumps([[a['sample_id'] == b['sample_id'], bool(np.array_equal(a['features'], b['features'])), "
        "b['relevance'].tolist()] for a, b in pairs]))"
    )
    command = [sys.executable, "-c", read_both, str(train_labels / "tfds"), str(tmp_path / "evidence-labels")]
    pairs = json.loads(subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout)
    assert pairs and all(same_sample and same_features for same_sample, same_features, _ in pairs)
    for *_, relevance in pairs:
        relevance = np.array(relevance)
        assert abs(relevance.sum() - 1) < 1e-6 and np.count_nonzero(relevance) >= 1
        assert np.ptp(relevance[relevance > 0]) == 0  # uniform over the evidence cells

    # which part of the attention scorer finds the evidence: its recall equals the run's own record of it
    # (a subprocess: the demo's run above removed the absl flags that TFDS's grain defined at import)
    command = [sys.executable, "scripts/scorer_parts.py", "--run", str(tmp_path), "--split", "test_2x"]
    table = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True, timeout=600).stdout
    recall = {line.split(" | ")[0][2:]: line for line in table.splitlines() if line.startswith("| ")}
    hawk = summary["results"]["test_2x"]["methods"]["hawk"]["0.25"]["ground_truth_recall"]
    row = recall["hawk (raw logits, no RoPE, per-head L2, HAWK's head weights)"]
    assert f"{100 * hawk:.1f}" == row.split(" | ")[2], (hawk, row)

    # per-sample budgets beside the fixed keeps: the fixed rows are the run's own, each budget keeps no more
    command = [sys.executable, "scripts/budgets.py", "--run", str(tmp_path), "--taus", "0.5",
               "--out", str(tmp_path / "budgets.md")]  # fmt: skip
    subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True, timeout=600)
    budgets = json.loads((tmp_path / "budgets.json").read_text())
    for scorer in ("mapper", "mapper_v2", "attention", "hawk"):
        ours, run = (r["test_2x"]["methods"][scorer]["0.25"] for r in (budgets["results"], summary["results"]))
        assert ours["retention"] == run["retention"] and ours["flops"] == run["flops"]
        budget = budgets["results"]["test_2x"]["methods"][f"{scorer}+mass:0.5"]["0.25"]
        assert budget["kept"] <= ours["kept"] and budget["flops"] <= ours["flops"]
    assert "### Chosen on validation" in (tmp_path / "budgets.md").read_text()


def test_demo_never_removes_a_directory_that_is_not_a_miniature_run(tmp_path, run_absl_script, capsys):
    (tmp_path / "notes.txt").write_text("a user's files")
    run_absl_script("demo.py", "--config", "configs/miniature.py:test", "--out", str(tmp_path), code=1)
    assert (tmp_path / "notes.txt").exists() and "not a miniature run's" in capsys.readouterr().err
