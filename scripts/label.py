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

HAWK's head weights for the hawk scorer come from the same samples (one forward per layer-0 head per
batch, no labels written): `--head_importance FILE` (pass FILE to generate.py / evaluate.py --head_weights).

Flags use underscores and the labelling config's fields are --config.<field>; a mistake is one
`error:` line and exit status 2 (--debug: the traceback).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import jax
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

import tokcomp_jax
from tokcomp_jax import cli
from tokcomp_jax.data.scenes import scene_samples
from tokcomp_jax.eval.check import read_suite
from tokcomp_jax.eval.codecs import ChatCodec
from tokcomp_jax.eval.metrics import score_reply
from tokcomp_jax.explain.head_importance import measure_head_importance
from tokcomp_jax.explain.label_writer import LabelSettings, write_labels
from tokcomp_jax.files import CheckpointError, write_text_atomically
from tokcomp_jax.hosts import barrier, join
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig
from tokcomp_jax.models.checkpoint import read_model_config
from tokcomp_jax.models.families import family_of
from tokcomp_jax.models.layout import Buckets
from tokcomp_jax.runs import RunConflict, check_run_directory, exclusive

_CONFIG = config_flags.DEFINE_config_file("config", "configs/label/tiny.py", "labelling config")
_OUT = flags.DEFINE_string("out", "outputs/labels", "output directory (shards and the TFDS dataset)")
_STOP_AFTER = flags.DEFINE_integer("stop_after_shards", None, "stop after this many new shards (rerun to continue)")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "start over labels in --out that another model/config/data made")
_HEAD_IMPORTANCE = flags.DEFINE_string(
    "head_importance", None,
    "instead of labels, write the layer-0 heads' importance (HAWK's head weights; explain.head_importance) "
    "measured on the same samples to this JSON file",
)  # fmt: skip


def labelling_tokenizer(config):
    """The model's tokenizer and chat template as evaluate.py and generate.py read them (Family.load_tokenizer),
    from its config alone: a missing model or tokenizer is named before any weight loads."""
    family, _, _ = read_model_config(config.model)
    try:
        return family.load_tokenizer(config.model, config.tokenizer or None)
    except CheckpointError as err:  # a directory without tokenizer files, named
        raise app.UsageError(f"--config.tokenizer: {err}" if config.tokenizer else str(err)) from None


def benchmark_samples(model, config, benchmark, tokenizer):
    """(label samples, their judge, EOS id) of a benchmark's samples through the model's family's chat codec."""
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
    if config.source == "benchmark" and config.adapter == "jsonl" and Path(config.data_dir).is_dir():
        files = sorted(path.name for path in Path(config.data_dir).glob("*.jsonl"))
        example = f"{config.split}.jsonl" if f"{config.split}.jsonl" in files or not files else files[0]
        raise app.UsageError(
            f"--config.data_dir {config.data_dir} is a directory; give the jsonl file to label as the {config.split!r} "
            f"split, e.g. --config.data_dir={Path(config.data_dir) / example}"
            + (f" (it holds {', '.join(files)})" if files else "")
        )
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
        tokenizer = labelling_tokenizer(config) if config.source == "benchmark" else None
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
        samples, correct, eos = benchmark_samples(model, config, benchmark, tokenizer)
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
    if _HEAD_IMPORTANCE.value:
        record = measure_head_importance(model, samples, settings)
        write_text_atomically(_HEAD_IMPORTANCE.value, json.dumps(record, indent=2) + "\n")
        print(f"head importance: {_HEAD_IMPORTANCE.value} ({record['samples']} samples, {record['heads']} heads)")
        return
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
    cli.run_absl(main)
