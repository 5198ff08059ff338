"""Write relevance labels as a TFDS dataset: `python scripts/label.py --config configs/label/tiny.py --out DIR`.

Resumable: finished shards stay in DIR/shards; rerunning the same command continues after the
last finished one. The dataset lands in DIR/tfds (read it with tokcomp_jax.data.labels.read_split).
"""

from __future__ import annotations

import logging

from absl import app, flags
from flax import nnx
from ml_collections import config_flags

import tokcomp_jax
from tokcomp_jax.data.scenes import scene_samples
from tokcomp_jax.explain.label_writer import LabelSettings, write_labels
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig
from tokcomp_jax.prune.layout import Buckets

_CONFIG = config_flags.DEFINE_config_file("config", "configs/label/tiny.py", "labelling config")
_OUT = flags.DEFINE_string("out", "outputs/labels", "output directory (shards and the TFDS dataset)")
_STOP_AFTER = flags.DEFINE_integer("stop_after_shards", None, "stop after this many new shards (rerun to continue)")


def main(argv) -> None:
    del argv
    logging.getLogger("absl").setLevel(logging.WARNING)
    config = _CONFIG.value
    model = (
        tokcomp_jax.load(config.model)
        if config.model
        else Qwen2VL(Qwen2VLConfig.tiny(), rngs=nnx.Rngs(config.model_seed))
    )
    if config.source != "scenes":
        raise app.UsageError(f"unknown label source {config.source!r} (available: scenes)")
    samples = scene_samples(model.config, config.count, [tuple(s) for s in config.sizes], seed=config.seed)
    settings = LabelSettings(
        buckets=Buckets(**config.buckets),
        batch_size=config.batch_size,
        shard_size=config.shard_size,
        method=config.method,
        max_new_tokens=config.max_new_tokens,
        eos_token_id=config.eos_token_id,
        split=config.split,
    )
    directory = write_labels(model, samples, _OUT.value, settings, stop_after_shards=_STOP_AFTER.value)
    print(f"labels: {directory}" if directory else "stopped early; rerun to continue")


if __name__ == "__main__":
    app.run(main)
