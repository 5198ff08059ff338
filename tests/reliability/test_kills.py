"""SIGKILL at moments drawn at random during conversion, mapper training and evaluation: the
destination holds the previous artefact or the complete new one, and a rerun of the same command
ends where an uninterrupted run ends. (Label writing: tests/explain/test_label_writer.py.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image

import tokcomp_jax
from conversion.convert import convert
from conversion.tiny import save_tiny_model
from tokcomp_jax.eval.results import ResultsFile
from tokcomp_jax.mapper import load_mapper
from tokcomp_jax.miniature.samples import miniature_config
from tokcomp_jax.models import Qwen2VL
from tokcomp_jax.models.checkpoint import save
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.runs import model_digest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def killed_after(command: list[str], started, delay: float) -> bool:
    """Run `command`, SIGKILL it `delay` seconds after `started()` first holds; True when it was
    still running at that moment (the kill landed mid-run)."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not started() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    running = process.poll() is None
    process.kill()
    process.wait()
    return running


def test_a_killed_conversion_leaves_the_previous_model_or_the_new_one(tmp_path):
    sources = {name: tmp_path / f"{name}_hf" for name in ("old", "new")}
    for seed, (name, source) in enumerate(sources.items()):
        save_tiny_model(source, seed=seed)
        convert(source, tmp_path / name, "float32")
    digests = {model_digest(tokcomp_jax.load(tmp_path / name)): name for name in sources}
    dst, partial, replaced = tmp_path / "dst", tmp_path / ".dst.partial", tmp_path / ".dst.replaced"
    command = [sys.executable, "-m", "conversion.convert", "--src", str(sources["new"]), "--dst", str(dst)]
    landed, found = 0, []
    for delay in np.random.default_rng(0).uniform(0.0, 1.5, 6):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(tmp_path / "old", dst)
        landed += killed_after([*command, "--overwrite"], partial.exists, delay)
        if not dst.exists():  # killed between the two renames: the previous model is whole aside
            assert digests[model_digest(tokcomp_jax.load(replaced))] == "old"
            found.append("old, aside")
            continue
        found.append(digests[model_digest(tokcomp_jax.load(dst))])  # a mixture would match neither
    assert landed >= 3, f"only {landed} of 6 kills landed mid-conversion ({found})"
    assert set(found) <= {"old", "new", "old, aside"}

    shutil.rmtree(dst)  # into a new directory: nothing, or the complete new model
    killed_after(command, partial.exists, 0.2)
    assert not dst.exists() or digests[model_digest(tokcomp_jax.load(dst))] == "new"
    subprocess.run([*command, "--overwrite"], cwd=REPO, check=True, capture_output=True, timeout=600)
    assert digests[model_digest(tokcomp_jax.load(dst))] == "new"
    assert not partial.exists() and not replaced.exists()


def test_killed_mapper_training_resumes_to_the_parameters_of_an_uninterrupted_run(tmp_path):
    command = [
        sys.executable, "scripts/train_mapper.py", "--config=configs/mapper/paper.py:synthetic,runlocal",
        "--config.num_steps=40", "--config.checkpoint_every=10", "--config.log_every=5", "--config.eval_every=40",
        "--config.data.synthetic.train=(96,3,6)", "--config.data.synthetic.validation=(16,3,6)",
        "--config.data.synthetic.validation_2x=(8,12,12)",
    ]  # fmt: skip
    subprocess.run([*command, f"--workdir={tmp_path / 'straight'}"], cwd=REPO, check=True, capture_output=True)
    checkpoints = tmp_path / "killed" / "checkpoints"
    first_checkpoint = lambda: checkpoints.exists() and any(p.name.isdigit() for p in checkpoints.iterdir())  # noqa: E731
    assert killed_after([*command, f"--workdir={tmp_path / 'killed'}"], first_checkpoint, 0.5)
    assert not (tmp_path / "killed" / "mapper").exists()
    subprocess.run([*command, f"--workdir={tmp_path / 'killed'}"], cwd=REPO, check=True, capture_output=True)

    straight, resumed = (nnx.state(load_mapper(tmp_path / run / "mapper"), nnx.Param) for run in ("straight", "killed"))
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 40  # no line lost or doubled by the redone steps


def test_a_killed_evaluation_resumes_to_the_records_of_an_uninterrupted_run(tmp_path):
    config = miniature_config(width=32, layers=1, heads=2, kv_heads=1, mlp=64, vision_width=16, vision_depth=1,
                              vision_heads=2)  # fmt: skip
    model = Qwen2VL(config, rngs=nnx.Rngs(0))
    save(tmp_path / "model", FAMILIES["qwen2_vl"], config, "float32", nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    bench = tmp_path / "data"
    (bench / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for index in range(48):
        Image.fromarray(rng.integers(0, 256, (56, 84, 3), dtype=np.uint8)).save(bench / "img" / f"{index}.png")
        lines.append(json.dumps({"id": f"q{index}", "question": "what colour is the square ?", "answer": "red",
                                 "image": f"img/{index}.png"}))  # fmt: skip
    for split in ("test", "test_2x"):
        (bench / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    command = [sys.executable, "scripts/evaluate.py", "--config=configs/eval/miniature.py", "--config.batch_size=2",
               f"--data_dir={bench}", f"--model={tmp_path / 'model'}", "--scorer=attention", "--keep=0.25"]  # fmt: skip
    subprocess.run([*command, f"--out={tmp_path / 'straight'}"], cwd=REPO, check=True, capture_output=True)

    first_run = tmp_path / "killed" / "test" / "unpruned.host0.jsonl"
    written = lambda: first_run.exists() and first_run.stat().st_size > 0  # noqa: E731
    assert killed_after([*command, f"--out={tmp_path / 'killed'}"], written, 1.0)
    subprocess.run([*command, f"--out={tmp_path / 'killed'}"], cwd=REPO, check=True, capture_output=True)

    for split in ("test", "test_2x"):
        for run in ("unpruned", "attention@0.25"):
            straight, resumed = (
                ResultsFile(tmp_path / out / split / f"{run}.host0.jsonl").read() for out in ("straight", "killed")
            )
            assert [(r["sample_id"], r["reply"]) for r in resumed] == [(r["sample_id"], r["reply"]) for r in straight]
    rows = {out: json.loads((tmp_path / out / "results.json").read_text())["rows"] for out in ("straight", "killed")}
    assert [(r["run"], r["samples"], r["score"]) for r in rows["killed"]] == [
        (r["run"], r["samples"], r["score"]) for r in rows["straight"]
    ]
