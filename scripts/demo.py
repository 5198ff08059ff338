"""The paper's experiment in miniature, end to end: `make demo` (compact) or the full run:

    python scripts/demo.py --config configs/miniature.py:full --out outputs/miniature-full

1. generate the grounded-VQA datasets (synthetic scenes, digits grid) as TFDS;
2. train a tiny Qwen2-VL from scratch on them (learning curve in OUT/mllm);
3. relevance labels on the small training images the model answers correctly, and on the
   held-out splits (the explanation oracle);
4. train the paper's mapper on the training labels;
5. evaluate the mapper and every baseline at each keep ratio, at training image size (test) and
   at 2x the tokens per side (test_2x): OUT/retention.json, OUT/retention.md, OUT/pictures/,
   and the test splits as jsonl benchmarks in OUT/jsonl/ (scripts/evaluate.py reads them).

Nothing from an earlier run is reused unless --resume is given (every stage then continues
where it stopped: checkpoints, label shards and generated data are kept).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from configs.mapper.paper import get_config as mapper_config
from tokcomp_jax.data import vqa
from tokcomp_jax.data.jsonl_vqa import export_jsonl
from tokcomp_jax.data.labels import read_split
from tokcomp_jax.explain.label_writer import LabelSettings, write_labels
from tokcomp_jax.mapper.checkpoint import load_mapper
from tokcomp_jax.mapper.train import train as train_mapper
from tokcomp_jax.miniature import report
from tokcomp_jax.miniature.datasets import load_splits
from tokcomp_jax.miniature.evaluate import METHODS, EvalSettings, evaluate_split, summarise
from tokcomp_jax.miniature.samples import Samples, token_grid
from tokcomp_jax.miniature.train import bucket_indices, train_mllm
from tokcomp_jax.prune.layout import Buckets

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parents[1] / "configs" / "miniature.py"), "miniature config (variant after ':')"
)
_OUT = flags.DEFINE_string("out", "outputs/miniature-demo", "run directory")
_RESUME = flags.DEFINE_bool("resume", False, "continue the run in --out instead of starting afresh")

EVAL_SPLITS = ("test", "test_2x")


def label_settings(config, bucket: int, split: str) -> LabelSettings:
    buckets = Buckets(
        text=config.mllm.text_bucket, visual=bucket, queries=config.mllm.text_bucket, frame_patches=4 * bucket
    )
    return LabelSettings(
        buckets=buckets, batch_size=config.labels.batch_size, shard_size=config.labels.shard_size,
        method=config.labels.method, max_new_tokens=2, eos_token_id=vqa.EOS_ID, split=split,
    )  # fmt: skip


def write_split_labels(model, config, examples: list[dict], out: Path, split: str) -> list[Path]:
    """Relevance labels for examples, one label dataset per visual bucket (labels are bucket-padded)."""
    directories = []
    for bucket, indices in bucket_indices(examples, config.mllm.visual_buckets).items():
        chosen = [examples[i] for i in indices]
        settings = label_settings(config, bucket, split)
        directories.append(write_labels(model, Samples(model.config, chosen), out / f"{split}-{bucket}", settings))
    return directories


def _jsonable(record: dict) -> dict:
    kept = {key: np.flatnonzero(mask).tolist() for key, mask in record["kept"].items()}
    return {**record, "evidence": np.flatnonzero(record["evidence"]).tolist(), "kept": kept}


def _picture_records(records: list[dict], count: int) -> list[dict]:
    """About `count` records, the first ones of each dataset in turn."""
    by_dataset: dict[str, list[dict]] = {}
    for record in records:
        by_dataset.setdefault(record["kind"].split("/")[0], []).append(record)
    per_dataset = -(-count // len(by_dataset))
    return [record for chosen in by_dataset.values() for record in chosen[:per_dataset]]


def main(argv) -> None:
    del argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    config, out = _CONFIG.value, Path(_OUT.value).absolute()
    if out.exists() and not _RESUME.value:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds = {}

    start = time.perf_counter()
    splits = load_splits(config.data.builders, config.data.config, out / "data")
    seconds["data"] = time.perf_counter() - start

    start = time.perf_counter()
    held_out = {split: splits[split] for split in ("validation", "validation_2x")}
    model = train_mllm(config.mllm, splits["train"], held_out, out / "mllm")
    seconds["mllm"] = time.perf_counter() - start

    start = time.perf_counter()
    small = [e for e in splits["train"] if np.prod(token_grid(e)) <= config.mllm.visual_buckets[0]]
    order = np.random.default_rng(config.seed).permutation(len(small))  # both datasets, every question kind
    small = [small[i] for i in np.sort(order[: config.labels.train_count])]
    (train_labels,) = write_split_labels(model, config, small, out / "labels", "train")
    oracle = {}
    for split in EVAL_SPLITS:
        for directory in write_split_labels(model, config, splits[split], out / "labels", split):
            oracle.update({e["sample_id"]: e["relevance"] for e in read_split(directory, split)})
    seconds["labels"] = time.perf_counter() - start

    start = time.perf_counter()
    mapper_settings = mapper_config("")
    mapper_settings.data.dir = str(train_labels)
    mapper_settings.data.family = model.config.family
    mapper_settings.data.eval_splits = ()
    mapper_settings.update(config.mapper)
    train_mapper(mapper_settings, out / "mapper")
    mapper = load_mapper(out / "mapper" / "mapper")
    seconds["mapper"] = time.perf_counter() - start

    start = time.perf_counter()
    settings = EvalSettings(
        text_bucket=config.mllm.text_bucket, visual_buckets=tuple(config.mllm.visual_buckets),
        batch_size=config.eval.batch_size, fastv_layer=config.eval.fastv_layer, seed=config.seed,
    )  # fmt: skip
    results, records = {}, {}
    for split in EVAL_SPLITS:
        records[split] = evaluate_split(model, mapper, splits[split], oracle, settings, desc=split)
        results[split] = summarise(records[split], model.config, settings)
    seconds["evaluation"] = time.perf_counter() - start

    for split in EVAL_SPLITS:  # every sample's answers and kept tokens, for later analysis
        lines = [json.dumps(_jsonable(record)) for record in records[split]]
        (out / f"records-{split}.jsonl").write_text("\n".join(lines) + "\n")
        export_jsonl(splits[split], out / "jsonl", split)  # for scripts/evaluate.py (configs/eval/miniature.py)
    pictures = out / "pictures"
    pictures.mkdir(exist_ok=True)
    for split in EVAL_SPLITS:
        examples = {e["sample_id"]: e for e in splits[split]}
        for record in _picture_records(records[split], config.eval.pictures):
            path = pictures / f"{record['sample_id']}.png"
            report.kept_pictures(record, examples[record["sample_id"]], 0.25, METHODS, path)

    summary = {
        "config": config.to_dict(),
        "results": results,
        "mapper_labels": {"train_samples_labelled": len(small)},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "settings": dataclasses.asdict(settings),
    }
    (out / "retention.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = report.retention_markdown(results, settings.keep_ratios, f"Miniature retention ({config.data.config})")
    (out / "retention.md").write_text(table)
    print(table)
    print(f"tables: {out / 'retention.md'}, {out / 'retention.json'}")
    print(f"pictures: {pictures} (kept tokens at keep 0.25), learning curve: {out / 'mllm' / 'learning_curve.png'}")
    print("seconds per stage:", json.dumps(summary["seconds"]))


if __name__ == "__main__":
    app.run(main)
