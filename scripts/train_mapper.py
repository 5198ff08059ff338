"""Train the relevance mapper: `python scripts/train_mapper.py --config configs/mapper/paper.py --workdir W`.

Reads the label dataset in config.data.dir (or writes synthetic labels into W/labels with the
`synthetic` variant), trains with a progress bar, logs W/metrics.jsonl, keeps resumable
checkpoints in W/checkpoints (rerun the same command to continue a killed run), and writes the
trained mapper to W/mapper and the held-out metrics to W/results.json.
"""

from __future__ import annotations

import json
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
    print(json.dumps(results, indent=2))
    if not results:
        return  # no held-out splits (--config.data.eval_splits="()"): W/metrics.jsonl has the training loss
    print("split | " + " | ".join(next(iter(results.values()))))
    for split, metrics in results.items():
        print(f"{split} | " + " | ".join(f"{value:.4g}" for value in metrics.values()))


if __name__ == "__main__":
    app.run(main)
