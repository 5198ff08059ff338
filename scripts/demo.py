"""The paper's experiment in miniature, end to end: `make demo` (compact) or the full run:

    python scripts/demo.py --config configs/miniature.py:full --out outputs/miniature-full

1. generate the grounded-VQA dataset (cluttered digits: images, 2x images, clips) as TFDS;
2. train a tiny Qwen2-VL from scratch on it (learning curve and manifest in OUT/mllm), or start
   from a trained one (`config.mllm.pretrained`; `make demo` starts from the shipped
   assets/miniature-mllm);
3. relevance labels on small training images, and on the held-out splits (the explanation oracle);
   HAWK's layer-0 head weights on the same training images (explain.head_importance);
4. train each mapper variant (the paper's; heads + grid; the v2) on the training labels of its
   method (config.labels.method unless the variant names its own `labels`: the v2's are the
   input-gradient labels, the best measured here);
5. evaluate the mappers and every baseline at each keep ratio, at training image size (test), at
   2x and 4x the tokens per side (test_2x, test_4x) and on clips (test_clips): OUT/retention.json,
   OUT/retention.md, OUT/pictures/ (both questions of paired images), and the image test splits
   as jsonl benchmarks in OUT/jsonl/ (scripts/evaluate.py reads them).

Nothing from an earlier run is reused unless --resume is given (every stage then continues
where it stopped: checkpoints, label shards and generated data are kept). Without it an earlier
run's --out (marked by OUT/.miniature_run) is removed first; any other non-empty --out is refused.
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
from tokcomp_jax.explain.head_importance import head_drops, head_weights
from tokcomp_jax.explain.label_writer import LabelSettings, write_labels
from tokcomp_jax.files import write_text_atomically
from tokcomp_jax.mapper.checkpoint import load_mapper
from tokcomp_jax.mapper.train import train as train_mapper
from tokcomp_jax.miniature import report
from tokcomp_jax.miniature.datasets import load_splits
from tokcomp_jax.miniature.evaluate import (
    EvalSettings,
    evaluate_split,
    image_of,
    merge_records,
    records_by_image,
    summarise,
)
from tokcomp_jax.miniature.samples import Group, Samples, group_indices, token_grid
from tokcomp_jax.miniature.shipped import read_manifest, write_manifest
from tokcomp_jax.miniature.train import METRICS_FILE, MODEL_DIR, load_pretrained, train_mllm
from tokcomp_jax.prune.methods import MAPPER_PRIORS

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parents[1] / "configs" / "miniature.py"), "miniature config (variant after ':')"
)
_OUT = flags.DEFINE_string("out", "outputs/miniature-demo", "run directory")
RUN_MARKER = ".miniature_run"  # what lets a fresh run remove an earlier one's --out
_RESUME = flags.DEFINE_bool("resume", False, "continue the run in --out instead of starting afresh")

EVAL_SPLITS = ("test", "test_2x", "test_4x", "test_clips")  # test_4x: 4x the test tokens per side, never trained on
HELD_OUT_SPLITS = ("validation", "validation_2x", "validation_clips")  # the learning curve's
log = logging.getLogger(__name__)


def label_settings(config, group: Group, split: str, method: str | None = None) -> LabelSettings:
    return LabelSettings(
        buckets=group.buckets(config.mllm.text_bucket), batch_size=config.labels.batch_size, shard_size=config.labels.shard_size,
        method=method or config.labels.method, max_new_tokens=2, eos_token_id=vqa.EOS_ID, split=split,
    )  # fmt: skip


def variant_labels(config) -> dict[str, str]:
    """Each mapper variant's training-label method: its own `labels` entry, else config.labels.method."""
    return {name: overrides.get("labels", config.labels.method) for name, overrides in config.mapper_variants.items()}


def write_split_labels(
    model, config, examples: list[dict], out: Path, split: str, method: str | None = None
) -> list[Path]:
    """Relevance labels for examples, one label dataset per group (labels are bucket-padded)."""
    directories = []
    for group, indices in group_indices(examples, config.mllm.visual_buckets).items():
        chosen = [examples[i] for i in indices]
        settings = label_settings(config, group, split, method)
        name = f"{split}-{group.visual}" + (f"x{group.frames}f" if group.frames > 1 else "")
        directories.append(write_labels(model, Samples(model.config, chosen), out / name, settings))
    return directories


def _picture_pairs(records: list[dict], count: int) -> list[list[dict]]:
    """About `count` groups of records, each the questions asked of one image, dataset by dataset."""
    by_dataset: dict[str, list[list[dict]]] = {}
    for group in records_by_image(records).values():
        by_dataset.setdefault(group[0]["kind"].split("/")[0], []).append(group)
    per_dataset = -(-count // len(by_dataset))
    return [group for chosen in by_dataset.values() for group in chosen[:per_dataset]]


def mapper_variant(config, name: str, overrides, labels: Path, family: str, workdir: Path):
    """Train one mapper variant on the training labels (configs/mapper/paper.py + overrides); load it."""
    settings = mapper_config("")
    settings.data.dir = str(labels)
    settings.data.family = family
    settings.data.eval_splits = ()
    settings.update(config.mapper)
    settings.update({key: value for key, value in overrides.items() if key != "labels"})
    log.info("mapper %s: layout %s, input channels %s", name, settings.model.layout, settings.model.input_channels)
    train_mapper(settings, workdir / name)
    return load_mapper(workdir / name / "mapper")


def renamed(records: list[dict], old: str, new: str) -> list[dict]:
    """Records with method `old`'s answers and kept tokens filed under `new`."""
    rename = lambda key: new + key[len(old) :] if key.startswith(f"{old}@") else key  # noqa: E731
    return [
        {
            **r,
            "correct": {rename(k): v for k, v in r["correct"].items()},
            "kept": {rename(k): v for k, v in r["kept"].items()},
        }
        for r in records
    ]


def main(argv) -> None:
    del argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    config, out = _CONFIG.value, Path(_OUT.value).absolute()
    if out.exists() and not _RESUME.value:
        earlier_run = (out / RUN_MARKER).exists() or (out / "data" / "cluttered_digits_vqa").is_dir()  # or unmarked
        if any(out.iterdir()) and not earlier_run:
            raise app.UsageError(f"--out {out} holds files that are not a miniature run's; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_MARKER).touch()
    seconds = {}

    start = time.perf_counter()
    splits = load_splits(config.data.builders, config.data.config, out / "data", seed=config.seed)
    eval_splits = [split for split in EVAL_SPLITS if split in splits]
    seconds["data"] = time.perf_counter() - start

    start = time.perf_counter()
    if config.mllm.pretrained:
        model = load_pretrained(config.mllm.pretrained, config.mllm.model)
        manifest = read_manifest(config.mllm.pretrained)
        log.info("the miniature MLLM from %s: %s", config.mllm.pretrained, manifest["command"])
    else:
        held_out = {split: splits[split] for split in HELD_OUT_SPLITS if split in splits}
        model = train_mllm(config.mllm, splits["train"], held_out, out / "mllm")
        curve = [json.loads(line) for line in (out / "mllm" / METRICS_FILE).read_text().splitlines()]
        manifest = write_manifest(out / "mllm" / MODEL_DIR, model, config, curve)
    seconds["mllm"] = time.perf_counter() - start

    start = time.perf_counter()
    low, high = config.labels.tokens
    small = [e for e in splits["train"] if token_grid(e)[0] == 1 and low <= np.prod(token_grid(e)) <= high]
    order = np.random.default_rng(config.seed).permutation(len(small))  # every dataset and question kind
    small = [small[i] for i in np.sort(order[: config.labels.train_count])]
    labels_of = variant_labels(config)
    train_labels = {config.labels.method: write_split_labels(model, config, small, out / "labels", "train")[0]}
    for method in sorted(set(labels_of.values()) - {config.labels.method}):  # e.g. the v2's
        (train_labels[method],) = write_split_labels(model, config, small, out / f"labels-{method}", "train", method)
    oracle = {}
    for split in eval_splits:
        for directory in write_split_labels(model, config, splits[split], out / "labels", split):
            oracle.update({e["sample_id"]: e["relevance"] for e in read_split(directory, split)})
    seconds["labels"] = time.perf_counter() - start

    start = time.perf_counter()  # HAWK's head weights, on the samples the mapper trains on
    drops = np.concatenate([
        head_drops(model, Samples(model.config, [small[i] for i in indices]), label_settings(config, group, "train"))
        for group, indices in group_indices(small, config.mllm.visual_buckets).items()
    ])  # fmt: skip
    weights = tuple(float(w) for w in head_weights(drops))
    log.info("HAWK head weights (layer 0): %s", [round(w, 3) for w in weights])
    seconds["heads"] = time.perf_counter() - start

    start = time.perf_counter()
    mappers = {
        name: mapper_variant(
            config, name, overrides, train_labels[labels_of[name]], model.config.family, out / "mappers"
        )
        for name, overrides in config.mapper_variants.items()
    }
    seconds["mapper"] = time.perf_counter() - start

    start = time.perf_counter()
    settings = EvalSettings(
        text_bucket=config.mllm.text_bucket, visual_buckets=tuple(config.mllm.visual_buckets),
        batch_size=config.eval.batch_size, prune_layer=config.eval.prune_layer, seed=config.seed,
        head_weights=weights,
    )  # fmt: skip
    results, records = {}, {}
    (first, mapper), *others = mappers.items()
    for split in eval_splits:
        records[split] = renamed(
            evaluate_split(model, mapper, splits[split], oracle, settings, desc=split), "mapper", first
        )
        for name, variant in others:  # the other variants: their own row only, by their mapper scorer
            scorer = next(s for s, prior in MAPPER_PRIORS.items() if prior == variant.config.prior)
            variant_settings = dataclasses.replace(settings, methods=(scorer,))
            extra = evaluate_split(model, variant, splits[split], oracle, variant_settings, desc=f"{split} {name}")
            merge_records(records[split], renamed(extra, scorer, name))
        results[split] = summarise(records[split], model.config, settings)
    seconds["evaluation"] = time.perf_counter() - start

    for split in eval_splits:  # every sample's answers and kept tokens, for later analysis
        lines = [json.dumps(report.record_to_json(record)) for record in records[split]]
        (out / f"records-{split}.jsonl").write_text("\n".join(lines) + "\n")
        if all(token_grid(e)[0] == 1 for e in splits[split]):  # image splits, for scripts/evaluate.py
            export_jsonl(splits[split], out / "jsonl", split)  # (configs/eval/miniature.py)
    pictures = out / "pictures"
    pictures.mkdir(exist_ok=True)
    methods = list(results[eval_splits[0]]["methods"])
    for split in eval_splits:
        examples = {e["sample_id"]: e for e in splits[split]}
        for group in _picture_pairs(records[split], config.eval.pictures):
            path = pictures / f"{image_of(group[0]['sample_id'])}.png"
            report.kept_pictures(group, [examples[r["sample_id"]] for r in group], 0.25, methods, path)

    summary = {
        "config": config.to_dict(),
        "results": results,
        "mllm": manifest,
        "mapper_labels": {"train_samples_labelled": len(small), "methods": labels_of},
        "hawk_head_weights": {"weights": list(weights), "mean_drop": drops.mean(0).tolist()},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "settings": dataclasses.asdict(settings),
    }
    write_text_atomically(out / "retention.json", json.dumps(summary, indent=2) + "\n")
    table = report.retention_markdown(results, settings.keep_ratios, f"Miniature retention ({config.data.config})")
    write_text_atomically(out / "retention.md", table)
    print(table)
    print(f"tables: {out / 'retention.md'}, {out / 'retention.json'}")
    print(f"pictures: {pictures} (kept tokens at keep 0.25), learning curve: {out / 'mllm' / 'learning_curve.png'}")
    print("seconds per stage:", json.dumps(summary["seconds"]))


if __name__ == "__main__":
    app.run(main)
