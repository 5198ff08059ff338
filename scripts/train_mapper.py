"""Train the relevance mapper: `python scripts/train_mapper.py --config configs/mapper/paper.py --workdir W`.

Reads the label dataset in config.data.dir (or writes synthetic labels into W/labels with the
`synthetic` variant), trains with a progress bar, logs W/metrics.jsonl, keeps resumable
checkpoints in W/checkpoints (rerun the same command to continue a killed run), and writes the
trained mapper to W/mapper and the held-out metrics to W/results.json.

--config.data.family names the family of the model that labelled the data (qwen2_vl, qwen2_5_vl,
qwen3_vl, llava_onevision, vila); it is required, as the scripts refuse a mapper without one (it
would prune another family's model without a word). Synthetic labels come from no model: their
family may stay empty.

Flags use underscores and the config's fields are --config.<field>; a mistake is one `error:` line
and exit status 2 (--debug: the traceback).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from tokcomp_jax import cli
from tokcomp_jax.data.labels import dataset_dir
from tokcomp_jax.data.synthetic_labels import write_synthetic_labels
from tokcomp_jax.mapper.train import train
from tokcomp_jax.models.families import FAMILIES, family_named

_CONFIG = config_flags.DEFINE_config_file("config", "configs/mapper/paper.py", "mapper training config")
_WORKDIR = flags.DEFINE_string("workdir", "outputs/mapper", "run directory (checkpoints, logs, trained mapper)")


def check_data(config) -> None:
    """The labels and their family, before anything is written: a label dataset (not the folder of the
    data it was made from) with the splits the config reads, and the family of the model that made it."""
    if config.data.synthetic.enabled:
        return
    if not config.data.dir:
        raise app.UsageError("set --config.data.dir to a label dataset (scripts/label.py) or use the synthetic variant")
    if not config.data.family:
        raise app.UsageError(
            "--config.data.family is not set: name the family of the model that labelled --config.data.dir "
            f"(one of {', '.join(FAMILIES)}); the scripts refuse a mapper that records none"
        )
    try:
        family = family_named(config.data.family).name
    except ValueError as err:
        raise app.UsageError(f"--config.data.family: {err}") from None
    with config.unlocked():
        config.data.family = family  # a model_type (llava_llama) as the family's name (vila)
    directory = Path(config.data.dir)
    info = next(
        (d / "dataset_info.json" for d in (directory, dataset_dir(directory)) if (d / "dataset_info.json").is_file()),
        None,
    )
    if info is None:
        hint = f"; label.py wrote it to {directory / 'tfds'}" if (directory / "tfds").is_dir() else ""
        raise app.UsageError(f"--config.data.dir {directory} holds no label dataset (dataset_info.json){hint}")
    splits = {split["name"] for split in json.loads(info.read_text()).get("splits", [])}
    missing = [s for s in (config.data.train_split, *config.data.eval_splits) if s not in splits]
    if missing:
        raise app.UsageError(
            f"{directory} has no split {', '.join(map(repr, missing))} (it holds {', '.join(map(repr, sorted(splits)))}); "
            "label data for it (label.py --config.split=...) or train without held-out splits: "
            '--config.data.eval_splits="()"'
        )


def main(argv) -> None:
    del argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
    config = _CONFIG.value
    check_data(config)
    if config.data.synthetic.enabled:
        synthetic = config.data.synthetic
        splits = {name: tuple(synthetic[name]) for name in (config.data.train_split, *config.data.eval_splits)}
        with config.unlocked():
            config.data.dir = str(write_synthetic_labels(f"{_WORKDIR.value}/labels", splits, synthetic.num_heads, 0))
    results = train(config, _WORKDIR.value)
    if not results:
        print(f"stopped before the last step; run again to resume from {_WORKDIR.value}")
        return
    if "train" in results:
        train_loss = results.pop("train")
        print(f"training KL: {train_loss['first_kl']:.4f} at step {train_loss['first_step']} -> "
              f"{train_loss['last_kl']:.4f} at step {train_loss['last_step']} (every logged step: metrics.jsonl)")  # fmt: skip
    for split, metrics in results.items():  # held-out splits
        print(f"{split}: " + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))


if __name__ == "__main__":
    cli.run_absl(main)
