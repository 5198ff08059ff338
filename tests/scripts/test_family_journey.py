"""Every family through every entry point, as the README's journey runs them: a tiny released-layout
checkpoint (conversion.tiny) -> convert --verify (which carries the tokenizer and preprocessor
files over) -> label.py on the user's own jsonl data -> train_mapper.py -> evaluate.py pruned by
that mapper -> generate.py (unpruned, and pruned by VisionZip, which reads the vision tower and merges
tokens), all from the converted directory alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from array_record.python import array_record_data_source  # noqa: F401  (defines absl flags on import;

# imported here, before run_absl_script's snapshot of the flags, so that it never removes them)
from conversion.convert import main as convert
from conversion.tiny import save_tiny_checkpoint, write_jsonl_sample
from tests.scripts_module import load_script
from tokcomp_jax.data.labels import read_split

REPO = Path(__file__).resolve().parents[2]
PROMPT = "what colour is the square ?"


def read_records(path: Path) -> list[dict]:
    """A results file's records by sample id (the file holds them in batch order)."""
    return sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda r: r["sample_id"])


def run_generate(*args: str) -> dict:
    module = load_script("generate")
    return module.main(list(args))


@pytest.mark.parametrize(
    "family",
    [
        "qwen2_vl",
        "llava_onevision",
        *(pytest.param(f, marks=pytest.mark.slow) for f in ("qwen2_5_vl", "qwen3_vl", "vila")),
    ],
)  # ~35 s each: one Qwen and one tiled family in the default suite, the other three in make test-slow
def test_journey(family, tmp_path, run_absl_script, capsys):
    hf, model = tmp_path / "hf", tmp_path / "model"
    save_tiny_checkpoint(family, hf)
    data = write_jsonl_sample(tmp_path / "data")
    assert convert(["--src", str(hf), "--dst", str(model), "--verify"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["passed"]

    run_absl_script(
        "label.py", "--config", "configs/label/tiny.py", "--out", str(tmp_path / "labels"),
        "--config.source=benchmark", f"--config.model={model}", f"--config.data_dir={data / 'train.jsonl'}",
        "--config.buckets.text=64", "--config.buckets.visual=256", "--config.batch_size=2", "--config.shard_size=2",
    )  # fmt: skip
    labels = read_split(tmp_path / "labels" / "tfds" / "relevance_labels" / "1.0.0", "train")
    assert sorted(example["sample_id"] for example in labels) == ["q0", "q1", "q2", "q3"]
    for example in labels:
        relevance = np.asarray(example["relevance"])
        assert relevance.size == np.asarray(example["features"]).shape[-1] > 0 and np.isfinite(relevance).all()

    run_absl_script(
        "train_mapper.py", "--config", "configs/mapper/paper.py:runlocal", "--workdir", str(tmp_path / "mapper"),
        f"--config.data.dir={tmp_path / 'labels/tfds'}", "--config.data.eval_splits=()",
        "--config.data.correct_only=False", f"--config.data.family={family}", "--config.num_steps=40",
        "--config.batch_size=4", "--config.log_every=10", "--config.model.channels=(8,8)",
    )  # fmt: skip
    losses = [json.loads(line)["train_kl"] for line in (tmp_path / "mapper/metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0], losses

    run_absl_script(
        "evaluate.py", "--config", "configs/eval/jsonl.py:test.jsonl", "--data_dir", str(data),
        "--model", str(model), "--mapper", str(tmp_path / "mapper/mapper"),
        "--scorer", "mapper", "--keep", "0.25", "--out", str(tmp_path / "eval"),
    )  # fmt: skip
    unpruned, pruned = (read_records(tmp_path / f"eval/test/{run}.host0.jsonl") for run in ("unpruned", "mapper@0.25"))
    assert [r["sample_id"] for r in pruned] == ["q4", "q5", "q6", "q7"]
    for full, cut in zip(unpruned, pruned, strict=True):
        visual = cut["visual_tokens"]
        assert visual > 0 and full["prefill_tokens"] == full["unpruned_tokens"]
        assert full["prefill_tokens"] - cut["prefill_tokens"] == visual - -(-visual // 4)

    report = run_generate("--model", str(model), "--image", str(data / "img/4.png"), "--prompt", PROMPT,
                          "--scorer", "attention", "--keep", "1.0", "--max-new-tokens", "4")  # as configs/eval/jsonl.py  # fmt: skip
    assert report["visual_tokens_kept"] == report["visual_tokens_total"] == unpruned[0]["visual_tokens"]
    assert report["answer"] == unpruned[0]["reply"]
    merged = run_generate("--model", str(model), "--image", str(data / "img/4.png"), "--prompt", PROMPT,
                          "--scorer", "visionzip", "--keep", "0.5", "--max-new-tokens", "4")  # fmt: skip
    assert merged["visual_tokens_kept"] == -(-report["visual_tokens_total"] // 2)
