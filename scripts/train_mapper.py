"""Train the relevance mapper: `python scripts/train_mapper.py --config configs/mapper/paper.py --workdir W`.

Reads the label dataset in config.data.dir (or writes synthetic labels into W/labels with the
`synthetic` variant), trains with a progress bar, logs W/metrics.jsonl, keeps resumable
checkpoints in W/checkpoints (rerun the same command to continue a killed run), and writes the
trained mapper to W/mapper and the held-out metrics to W/results.json.
"""

from __future__ import annotations

import logging

from absl import app, flags
from ml_collections import config_flags

from tokcomp_jax.data.synthetic_labels import write_synthetic_labels
from tokcomp_jax.mapper.train import train

_CONFIG = config_flags.DEFINE_config_file("config", "configs/mapper/paper.py", "mapper training config")
_WORKDIR = flags.DEFINE_string("workdir", "outputs/mapper", "run directory (checkpoints, logs, trained mapper)")


def main(argv) -> None:
    del argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
    config = _CONFIG.value
    if config.data.synthetic.enabled:
        synthetic = config.data.synthetic
        splits = {name: tuple(synthetic[name]) for name in (config.data.train_split, *config.data.eval_splits)}
        with config.unlocked():
            config.data.dir = str(write_synthetic_labels(f"{_WORKDIR.value}/labels", splits, synthetic.num_heads, 0))
    if not config.data.dir:
        raise app.UsageError("set --config.data.dir to a label dataset (scripts/label.py) or use the synthetic variant")
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
    app.run(main)
