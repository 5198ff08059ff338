"""Write relevance labels as a TFDS dataset: `python scripts/label.py --config configs/label/tiny.py --out DIR`.

On your own data with a released model of any family (the generic jsonl + media format):

    python scripts/label.py --config configs/label/tiny.py --out DIR --config.source=benchmark \\
        --config.model=MODEL_DIR --config.data_dir=my_data/train.jsonl \\
        --config.buckets.text=64 --config.buckets.visual=256

Resumable: finished shards stay in DIR/shards; rerunning the same command continues after the
last finished one. The dataset lands in DIR/tfds (read it with tokcomp_jax.data.labels.read_split).

On several hosts, run the same command on each with `--distributed` (one machine or a cluster:
`--coordinator HOST:PORT --num_processes N --process_id I`) and one DIR they all see: each host
labels every n-th shard, host 0 writes the dataset when all are done.
"""

from __future__ import annotations

import logging

import jax
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

import tokcomp_jax
from tokcomp_jax.data.scenes import scene_samples
from tokcomp_jax.eval.check import read_suite
from tokcomp_jax.eval.codecs import ChatCodec
from tokcomp_jax.eval.metrics import score_reply
from tokcomp_jax.explain.label_writer import LabelSettings, write_labels
from tokcomp_jax.hosts import barrier, join
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig
from tokcomp_jax.models.families import family_of
from tokcomp_jax.models.safetensors_io import CheckpointError
from tokcomp_jax.prune.layout import Buckets
from tokcomp_jax.runs import RunConflict, check_run_directory, exclusive

_CONFIG = config_flags.DEFINE_config_file("config", "configs/label/tiny.py", "labelling config")
_OUT = flags.DEFINE_string("out", "outputs/labels", "output directory (shards and the TFDS dataset)")
_STOP_AFTER = flags.DEFINE_integer("stop_after_shards", None, "stop after this many new shards (rerun to continue)")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "start over labels in --out that another model/config/data made")


def benchmark_samples(model, config, benchmark):
    """(label samples, their judge, EOS id) of a benchmark's samples through the model's family's chat codec."""
    from transformers import AutoTokenizer

    family = family_of(model.config)
    tokenizer = AutoTokenizer.from_pretrained(config.tokenizer or family.tokenizer_directory(config.model),
                                              local_files_only=True)  # fmt: skip
    codec = ChatCodec(model.config, tokenizer, config.model)
    samples = [{**codec.encode(s), "sample_id": s.sample_id, "sample": s} for s in benchmark]

    def correct(sample: dict, answer: list[int]) -> bool:
        reference = sample["sample"]
        score = score_reply(reference.metric, codec.decode(answer), reference.answers, dict(reference.options))
        return score == reference.answers[0] if score is None or isinstance(score, str) else score > 0

    return samples, correct, codec.eos_token_id


def check_config(config) -> None:
    """The settings, checked before any data or model is read: a count of 0 would write nothing or loop forever."""
    if config.source not in ("scenes", "benchmark"):
        raise app.UsageError(f"unknown label source {config.source!r} (available: scenes, benchmark)")
    if config.source == "benchmark" and not (config.model and config.data_dir):
        raise app.UsageError("source benchmark needs --config.model and --config.data_dir")
    counts = ["batch_size", "shard_size", "max_new_tokens"] + (["count"] if config.source == "scenes" else [])
    for name in counts:
        value = config[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise app.UsageError(f"--config.{name} must be a whole number of at least 1, got {value!r}")
    try:
        check_run_directory(_OUT.value)
    except RunConflict as err:
        raise app.UsageError(str(err)) from None


def main(argv) -> None:
    del argv
    logging.getLogger("absl").setLevel(logging.WARNING)
    join()  # --distributed: join the other hosts
    config = _CONFIG.value
    check_config(config)
    benchmark = []
    if config.source == "benchmark":  # the data before the model
        samples, problems = read_suite([(config.adapter, config.adapter, config.data_dir)])
        if problems:
            raise app.UsageError(f"--config.data_dir {config.data_dir}: " + "; ".join(problems))
        benchmark = samples[config.adapter]
    try:
        model = (
            tokcomp_jax.load(config.model)
            if config.model
            else Qwen2VL(Qwen2VLConfig.tiny(), rngs=nnx.Rngs(config.model_seed))
        )
    except CheckpointError as err:
        raise app.UsageError(str(err)) from None
    buckets = Buckets(**config.buckets)
    if config.source == "scenes":
        samples = scene_samples(model.config, config.count, [tuple(s) for s in config.sizes], seed=config.seed)
        extra, eos = {}, config.eos_token_id
    else:
        samples, correct, eos = benchmark_samples(model, config, benchmark)
        extra = {"correct": correct}
        largest = max(samples, key=lambda s: s["input_ids"].shape[-1])  # vision blocks / tiles sized by the family
        sized = family_of(model.config).buckets(model.config, largest, buckets.text, buckets.visual, config.batch_size)
        buckets = Buckets(**{**config.buckets, "frame_patches": sized.frame_patches, "tiles": sized.tiles})
    settings = LabelSettings(
        buckets=buckets,
        batch_size=config.batch_size,
        shard_size=config.shard_size,
        method=config.method,
        max_new_tokens=config.max_new_tokens,
        eos_token_id=eos,
        split=config.split,
    )
    try:
        host = jax.process_index()
        with exclusive(_OUT.value, f".lock.host{host}"):
            directory = write_labels(
                model,
                samples,
                _OUT.value,
                settings,
                stop_after_shards=_STOP_AFTER.value,
                overwrite=_OVERWRITE.value,
                host=host,
                hosts=jax.process_count(),
                barrier=barrier,
                **extra,
            )
    except RunConflict as err:
        raise app.UsageError(str(err)) from None
    if directory:
        print(f"labels: {directory}")
    else:
        print(
            "stopped early; rerun to continue"
            if host == 0
            else f"host {host}: shards written; host 0 writes the dataset"
        )


if __name__ == "__main__":
    app.run(main)
