"""scripts/evaluate.py end to end: a saved tiny miniature model and mapper on a jsonl benchmark,
unpruned and pruned, then the same command again (it resumes: nothing is run twice)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from flax import nnx
from PIL import Image

from tokcomp_jax.mapper import Mapper, MapperConfig, save_mapper
from tokcomp_jax.miniature.samples import miniature_config
from tokcomp_jax.models import Qwen2VL
from tokcomp_jax.models.checkpoint import save
from tokcomp_jax.models.families import FAMILIES


def test_evaluate_script_writes_scores_retention_and_flops(tmp_path, run_absl_script, capsys):
    config = miniature_config(width=32, layers=1, heads=2, kv_heads=1, mlp=64, vision_width=16, vision_depth=1,
                              vision_heads=2)  # fmt: skip
    model = Qwen2VL(config, rngs=nnx.Rngs(0))
    save(tmp_path / "model", FAMILIES["qwen2_vl"], config, "float32", nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    mapper = Mapper(MapperConfig(num_heads=2, channels=(8,), family="qwen2_vl"), rngs=nnx.Rngs(1))
    save_mapper(tmp_path / "mapper", mapper)
    bench = tmp_path / "data"
    (bench / "img").mkdir(parents=True)
    lines = []
    for index in range(4):
        Image.fromarray(np.full((56, 84, 3), 40 * index, np.uint8)).save(bench / "img" / f"{index}.png")
        lines.append(json.dumps({"id": f"q{index}", "question": "what colour is the square ?", "answer": "red",
                                 "image": f"img/{index}.png"}))  # fmt: skip
    for split in ("test", "test_2x"):  # the two benchmarks of configs/eval/miniature.py
        (bench / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    args = ["--config", "configs/eval/miniature.py", "--config.batch_size=2", "--data_dir", str(bench),
            "--model", str(tmp_path / "model"), "--mapper", str(tmp_path / "mapper"), "--keep", "0.5,0.25",
            "--out", str(tmp_path / "out")]  # fmt: skip
    run_absl_script("evaluate.py", *args)
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert [(r["benchmark"], r["run"]) for r in rows] == [
        (split, run) for split in ("test", "test_2x") for run in ("unpruned", "mapper@0.5", "mapper@0.25")
    ]
    by_run = {r["run"]: r for r in rows if r["benchmark"] == "test"}
    unpruned = by_run["unpruned"]
    assert unpruned["flops_pct"] == 100.0
    # Retention is pruned / unpruned score: 100 for the unpruned run, undefined (null, "n/a") if it scored 0;
    # results.json is strict JSON (no NaN)
    assert unpruned["retention"] == 100.0 if unpruned["score"] > 0 else unpruned["retention"] is None
    json.loads((tmp_path / "out" / "results.json").read_text(), parse_constant=lambda name: pytest.fail(name))
    assert 100.0 > by_run["mapper@0.5"]["flops_pct"] > by_run["mapper@0.25"]["flops_pct"] > 0
    assert all(r["samples"] == 4 for r in rows)
    assert "| test | mapper@0.5 |" in capsys.readouterr().out
    results = tmp_path / "out" / "test" / "mapper@0.5.host0.jsonl"
    before = results.read_text()
    run_absl_script("evaluate.py", *args, "--attention", "reference")  # resumes (the kernel is no part of a
    # run's fingerprint): every sample is done, nothing is appended
    assert results.read_text() == before
    assert "| reused |" in capsys.readouterr().out  # no wall time for a run made earlier

    # another mapper into the same --out: its runs are refused, naming what differs; --overwrite starts them over
    other = Mapper(MapperConfig(num_heads=2, channels=(8,), family="qwen2_vl"), rngs=nnx.Rngs(2))
    save_mapper(tmp_path / "mapper2", other)
    moved = [*args[:-4], "--mapper", str(tmp_path / "mapper2"), *args[-2:]]
    capsys.readouterr()
    run_absl_script("evaluate.py", *moved, code=2)  # a UsageError: one error line, exit status 2
    assert re.search(r"out/test holds outputs made with another mapper \(mapper@0\.5", capsys.readouterr().err)
    unpruned_before = (tmp_path / "out" / "test" / "unpruned.host0.jsonl").read_text()
    run_absl_script("evaluate.py", *moved, "--overwrite")
    assert (tmp_path / "out" / "test" / "unpruned.host0.jsonl").read_text() == unpruned_before  # made alike: kept
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"][1]["samples"] == 4

    # a per-sample budget: its own run name, each sample's kept count, the mean share kept and its FLOPs
    budget = [*args[:-4], "--keep", "0.5", "--budget", "mass:0.3", "--out", str(tmp_path / "budget")]
    run_absl_script("evaluate.py", *budget)
    rows = {r["run"]: r for r in json.loads((tmp_path / "budget" / "results.json").read_text())["rows"]}
    assert set(rows) == {"unpruned", "mapper@0.5+mass:0.3"}
    records = [json.loads(line) for line in (tmp_path / "budget/test/mapper@0.5+mass:0.3.host0.jsonl").open()]
    assert all(1 <= r["visual_kept"] <= -(-r["visual_tokens"] // 2) for r in records)
    fixed = by_run["mapper@0.5"]
    assert 0 < rows["mapper@0.5+mass:0.3"]["keep_pct"] <= 50.0 + 100.0 / records[0]["visual_tokens"]
    assert rows["mapper@0.5+mass:0.3"]["flops_pct"] <= fixed["flops_pct"]
    run_absl_script("evaluate.py", *budget[:-2], "--budget", "mass:2", "--out", str(tmp_path / "bad"), code=2)
    assert "--budget: budget 'mass:2': expected 'fixed', 'mass:TAU' or 'mass:TAU:MIN'" in capsys.readouterr().err


def test_evaluate_refuses_a_model_that_does_not_fit_before_loading_it(tmp_path, run_absl_script, capsys):
    config = miniature_config(width=32, layers=1, heads=2, kv_heads=1, mlp=64, vision_width=16, vision_depth=1,
                              vision_heads=2)  # fmt: skip
    model = Qwen2VL(config, rngs=nnx.Rngs(0))
    save(tmp_path / "model", FAMILIES["qwen2_vl"], config, "float32", nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    (tmp_path / "model" / "params").rename(tmp_path / "model" / "weights-gone")  # a load would fail
    bench = tmp_path / "data"
    (bench / "img").mkdir(parents=True)
    Image.fromarray(np.zeros((56, 56, 3), np.uint8)).save(bench / "img" / "0.png")
    line = {"id": "q0", "question": "what colour is the square ?", "answer": "red", "image": "img/0.png"}
    for split in ("test", "test_2x"):
        (bench / f"{split}.jsonl").write_text(json.dumps(line) + "\n")
    run_absl_script(
        "evaluate.py", "--config", "configs/eval/miniature.py", "--data_dir", str(bench), "--model",
        str(tmp_path / "model"), "--scorer", "attention", "--out", str(tmp_path / "out"),
        "--device_memory_gib", "0.0001", code=2,
    )  # fmt: skip
    assert "does NOT fit" in capsys.readouterr().err
