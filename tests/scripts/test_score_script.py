"""Benchmark data checked before any model loads, and scoring without a model: scripts/score.py
and scripts/evaluate.py --check_data / --rescore."""

from __future__ import annotations

import json
import runpy
import sys

import numpy as np
import pytest
from absl import flags
from PIL import Image

from scripts.score import main as score
from tokcomp_jax.eval.check import read_suite
from tokcomp_jax.eval.results import data_fingerprint
from tokcomp_jax.runs import RUN_MARK


def write_jsonl_bench(directory, name: str, ids: list[str], broken: set[str] = frozenset()) -> None:
    (directory / "img").mkdir(parents=True, exist_ok=True)
    lines = []
    for index, sample_id in enumerate(ids):
        path = directory / "img" / f"{name}-{index}.png"
        if sample_id in broken:
            path.write_bytes(b"not a png")
        else:
            Image.fromarray(np.full((28, 28, 3), 10 * index, np.uint8)).save(path)
        lines.append(json.dumps({"id": sample_id, "question": "which colour ?", "answer": "red",
                                 "image": f"img/{path.name}"}))  # fmt: skip
    (directory / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


def evaluate_failure(args: list[str], monkeypatch, capsys) -> str:
    """scripts/evaluate.py expected to stop with a usage error: its message."""
    before = set(flags.FLAGS)
    monkeypatch.setattr(sys, "argv", ["evaluate.py", *args])
    try:
        with pytest.raises(SystemExit) as finished:  # a UsageError: one error line, exit status 2
            runpy.run_path("scripts/evaluate.py", run_name="__main__")
    finally:
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)
    assert finished.value.code == 2
    return capsys.readouterr().err


def test_check_data_reports_every_problem_before_any_model(tmp_path, run_absl_script, monkeypatch, capsys):
    """configs/eval/miniature.py reads test.jsonl and test_2x.jsonl; --model names no directory, so
    any attempt to load it would fail differently."""
    args = ["--config", "configs/eval/miniature.py", "--data_dir", str(tmp_path), "--model", str(tmp_path / "none"),
            "--scorer", "attention"]  # fmt: skip
    write_jsonl_bench(tmp_path, "test", ["a", "b", "b"])
    message = evaluate_failure(args, monkeypatch, capsys)
    assert "2 problems in the benchmark data" in message and "test: sample id 'b' appears 2 times" in message
    assert "test_2x: missing benchmark file" in message
    write_jsonl_bench(tmp_path, "test", ["a", "b", "c"])
    write_jsonl_bench(tmp_path, "test_2x", ["d", "e"], broken={"e"})
    message = evaluate_failure(args, monkeypatch, capsys)
    assert "1 problem in" in message and "test_2x.jsonl:2" in message and "is not an image" in message
    write_jsonl_bench(tmp_path, "test_2x", ["d", "e"])
    run_absl_script("evaluate.py", *args, "--check_data")  # exits 0 without loading the (absent) model


def test_score_lists_samples_and_scores_replies(tmp_path, capsys):
    write_jsonl_bench(tmp_path, "bench", ["a", "b", "c", "d"])
    data = ["--benchmark", "jsonl", "--data_dir", str(tmp_path / "bench.jsonl")]
    assert score([*data, "--list_samples", str(tmp_path / "samples.jsonl")]) == 0
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [s["sample_id"] for s in samples] == ["a", "b", "c", "d"] and samples[0]["answers"] == ["red"]
    assert samples[0]["images"] == ["<embedded in the benchmark file>"]  # the jsonl adapter keeps the bytes
    replies = {"a": "Red.", "b": "red", "c": "blue", "d": "a red one"}  # exact match after normalising: 2 of 4
    (tmp_path / "replies.jsonl").write_text(
        "".join(json.dumps({"sample_id": k, "reply": v}) + "\n" for k, v in replies.items())
    )
    assert score([*data, "--replies", str(tmp_path / "replies.jsonl"), "--out", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["score"] == 50.0 and result["samples"] == 4
    (tmp_path / "replies.jsonl").write_text(json.dumps({"sample_id": "z", "reply": "red"}) + "\n")
    assert score([*data, "--replies", str(tmp_path / "replies.jsonl")]) == 2
    error = capsys.readouterr().err
    assert "4 samples have no reply: ['a', 'b', 'c', 'd']" in error and "1 replies name no sample: ['z']" in error


def test_rescore_recomputes_a_run_from_its_replies(tmp_path, run_absl_script):
    """An earlier run's stored replies, rescored without a model, give the rows it reported."""
    write_jsonl_bench(tmp_path / "data", "test", ["a", "b", "c"])
    write_jsonl_bench(tmp_path / "data", "test_2x", ["d", "e"])
    out = tmp_path / "out"
    stored = {"test": {"a": "red", "b": "blue", "c": "red"}, "test_2x": {"d": "green", "e": "red"}}
    for name, replies in stored.items():
        for run, flops in (("unpruned", 100.0), ("attention@0.5", 60.0)):
            (out / name).mkdir(parents=True, exist_ok=True)
            lines = [json.dumps({"sample_id": k, "reply": v if run == "unpruned" else "red", "flops_pct": flops})
                     for k, v in replies.items()]  # fmt: skip
            (out / name / f"{run}.host0.jsonl").write_text("\n".join(lines) + "\n")
            samples = read_suite([(name, "jsonl", tmp_path / "data" / f"{name}.jsonl")])[0][name]
            made_from = {"hosts": 1, "data": data_fingerprint("jsonl", tmp_path / "data", samples)}
            (out / name / f"{run}.host0.fingerprint.json").write_text(json.dumps(made_from))  # what evaluate.py records
    (out / RUN_MARK).touch()  # as evaluate.py marks the directories it writes
    run_absl_script("evaluate.py", "--config", "configs/eval/miniature.py", "--data_dir", str(tmp_path / "data"),
                    "--out", str(out), "--rescore")  # fmt: skip
    rows = {(r["benchmark"], r["run"]): r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert (
        rows["test", "unpruned"]["score"] == pytest.approx(200 / 3) and rows["test", "attention@0.5"]["score"] == 100.0
    )
    assert rows["test", "attention@0.5"]["retention"] == pytest.approx(150.0)
    assert rows["test_2x", "unpruned"]["score"] == 50.0 and rows["test_2x", "attention@0.5"]["flops_pct"] == 60.0
