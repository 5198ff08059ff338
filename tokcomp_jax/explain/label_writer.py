"""Relevance labels for a list of samples, written shard by shard, then as a TFDS dataset.

    write_labels(model, samples, out_dir, settings)   # resumable: finished shards are kept and skipped

Per batch (padded to static buckets, so one compile per bucket): the first-layer features the
mapper reads at inference (prune.features, the function pruning uses), the model's greedy
answer, whether it matches the reference, and the relevance of the visual tokens for that
answer (teacher-forced). Each finished shard is one npz file, written atomically; when all are
there they become the TFDS dataset `out_dir/tfds` (tokcomp_jax.data.labels).

Several hosts (`host` of `hosts`, `barrier` from tokcomp_jax.hosts) share one out_dir: host h
writes shards h, h + hosts, ...; host 0 records the fingerprint first and writes the dataset
once every host is done. Shards do not depend on the number of hosts, so a run resumes on any.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from tokcomp_jax.data.labels import dataset_dir, write_label_dataset
from tokcomp_jax.explain.relevance import append_answers, relevance
from tokcomp_jax.generate import StopIds, greedy_decode, stop_ids
from tokcomp_jax.models.families import family_of
from tokcomp_jax.models.layout import Buckets
from tokcomp_jax.prune.features import first_layer_features
from tokcomp_jax.prune.pruner import prepare_pruning
from tokcomp_jax.runs import claim, digest, model_digest

SHARDS_DIR = "shards"
TFDS_DIR = "tfds"
FINGERPRINT_FILE = "fingerprint.json"  # what the shards were made from (tokcomp_jax.runs.claim)


@dataclasses.dataclass(frozen=True)
class LabelSettings:
    buckets: Buckets
    batch_size: int = 4
    shard_size: int = 16
    method: str = "gradient"
    max_new_tokens: int = 4
    eos_token_id: StopIds = 0
    split: str = "train"


def collate(config, samples: Sequence[dict]) -> dict:
    """Samples (input_ids [T] or [1, T] and the family's media arrays; other keys are ignored) -> a
    right-padded batch."""
    rows = []
    for sample in samples:
        ids = np.atleast_2d(sample["input_ids"])
        rows.append({**sample, "input_ids": ids, "attention_mask": np.ones_like(ids)})
    return family_of(config).collate(rows)


def reference_match(sample: dict, answer: list[int]) -> bool:
    """The paper's rule, by token ids: the greedy answer equals the sample's `reference_ids`."""
    return answer == list(sample["reference_ids"])


@nnx.jit(static_argnames=("max_new_tokens", "eos_token_id"))
def _prompt_pass(model, inputs, layout, max_new_tokens: int, eos_token_id: StopIds):
    """One embedding of the prompt for both the mapper's features [B, Hd, N] and the greedy answer."""
    embeds = model.embed(inputs)
    features = first_layer_features(model, embeds, inputs.position_ids, inputs.attention_mask, layout)
    generated = greedy_decode(
        model, embeds, inputs.position_ids, inputs.attention_mask,
        max_new_tokens=max_new_tokens, eos_token_id=eos_token_id,
    )  # fmt: skip
    return features, generated.tokens


_relevance = nnx.jit(relevance, static_argnames="method")


def _answer(tokens: np.ndarray, eos: StopIds) -> list[int]:
    """Generated tokens up to (not including) the first EOS id; that EOS itself if the answer is empty."""
    answer, stops = [], stop_ids(eos)
    for token in tokens.tolist():
        if token in stops:
            return answer or [token]
        answer.append(token)
    return answer or [stops[0]]


@dataclasses.dataclass(frozen=True)
class AnsweredBatch:
    """A batch of samples with the model's greedy answers, and the same batch with the answers appended."""

    batch: dict  # the samples' collated batch (padded to batch_size rows)
    layout: object  # its VisualLayout (the prompt's buckets)
    features: np.ndarray  # [B, Hd, N] the mapper's first-layer features
    answers: list[list[int]]  # each row's greedy answer ids
    taught_inputs: object  # model inputs with the answers appended (buckets: text + max_new_tokens)
    taught_layout: object
    answer_positions: np.ndarray  # [B, max_new_tokens] positions of the answer tokens (-1 = none)


def answer_batch(model, samples: Sequence[dict], settings: LabelSettings) -> AnsweredBatch:
    """Up to batch_size samples, padded to batch_size rows: their greedy answers, teacher-forced."""
    config = model.config
    padded = list(samples) + [samples[-1]] * (settings.batch_size - len(samples))  # static batch shape
    batch = collate(config, padded)
    inputs, scoring = prepare_pruning(config, batch, settings.buckets)
    features, tokens = _prompt_pass(model, inputs, scoring.layout, settings.max_new_tokens, settings.eos_token_id)
    answers = [_answer(row, settings.eos_token_id) for row in np.asarray(tokens)]
    taught, answer_positions = append_answers(batch, answers)
    answer_positions = np.pad(
        answer_positions, ((0, 0), (0, settings.max_new_tokens - answer_positions.shape[1])), constant_values=-1
    )
    long_buckets = dataclasses.replace(settings.buckets, text=settings.buckets.text + settings.max_new_tokens)
    taught_inputs, taught_scoring = prepare_pruning(config, taught, long_buckets)
    return AnsweredBatch(batch, scoring.layout, np.asarray(features), answers, taught_inputs, taught_scoring.layout,
                         answer_positions)  # fmt: skip


def label_batch(model, samples: Sequence[dict], settings: LabelSettings, correct=reference_match) -> list[dict]:
    """Label examples (tokcomp_jax.data.labels) for up to batch_size samples, computed at batch_size rows.
    `correct(sample, answer ids)` says whether the greedy answer is right (stored as answer_correct)."""
    config = model.config
    answered = answer_batch(model, samples, settings)
    labels = np.asarray(
        _relevance(model, answered.taught_inputs, jnp.asarray(answered.answer_positions), answered.taught_layout,
                   method=settings.method)
    )  # fmt: skip
    counts = np.asarray(answered.layout.visual_count)
    grids = family_of(config).token_grids(config, answered.batch, counts, "sequence")  # the family's own grids
    return [
        {
            "features": answered.features[row, :, : counts[row]],
            "relevance": labels[row, : counts[row]],
            "token_grid_thw": grids[row],
            "answer_correct": bool(correct(sample, answered.answers[row])),
            "sample_id": sample["sample_id"],
        }
        for row, sample in enumerate(samples)
    ]


def _shard_path(out_dir: Path, index: int) -> Path:
    return out_dir / SHARDS_DIR / f"shard-{index:05d}.npz"


def _save_shard(path: Path, examples: list[dict]) -> None:
    arrays = {}
    for i, example in enumerate(examples):
        for key, value in example.items():
            arrays[f"{i:05d}.{key}"] = np.asarray(value)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, **arrays)
    os.replace(temporary, path)  # a killed run never leaves a half-written shard under the final name


def _load_shard(path: Path) -> Iterator[dict]:
    with np.load(path, allow_pickle=False) as arrays:
        count = len({key.split(".")[0] for key in arrays.files})
        for i in range(count):
            example = {key: arrays[f"{i:05d}.{key}"] for key in ("features", "relevance", "token_grid_thw")}
            example["answer_correct"] = bool(arrays[f"{i:05d}.answer_correct"])
            example["sample_id"] = str(arrays[f"{i:05d}.sample_id"])
            yield example


def _check_unique_ids(samples: Sequence[dict]) -> None:
    ids = samples.sample_ids() if hasattr(samples, "sample_ids") else [s["sample_id"] for s in samples]
    repeated = sorted(i for i, count in Counter(ids).items() if count > 1)
    if repeated:
        raise ValueError(
            f"{len(repeated)} sample ids appear more than once (each would be labelled once): {repeated[:10]}"
        )


def _samples_digest(samples: Sequence[dict]) -> str:
    """What the samples hold, cheaply: a sequence that processes lazily offers `content_digest()`."""
    if hasattr(samples, "content_digest"):
        return samples.content_digest()
    return digest([(s["sample_id"], np.asarray(s["input_ids"]).tolist()) for s in samples])


def write_labels(
    model,
    samples: Sequence[dict],
    out_dir: str | Path,
    settings: LabelSettings,
    stop_after_shards: int | None = None,
    correct=reference_match,
    overwrite: bool = False,
    host: int = 0,
    hosts: int = 1,
    barrier=lambda name: None,
) -> Path | None:
    """Label every sample; returns the TFDS dataset directory (None if stopped early by
    stop_after_shards, and on every host but 0). `correct(sample, answer ids)` judges each greedy
    answer (default: equal to its reference_ids).

    Resumes the shards in out_dir only if they were made from the same model, settings and samples
    (FINGERPRINT_FILE); otherwise raises RunConflict, or with `overwrite` starts over."""
    out_dir = Path(out_dir).absolute()
    if len(samples) == 0:
        raise ValueError("no samples to label")
    _check_unique_ids(samples)
    made_from = {
        "settings": dataclasses.asdict(settings),
        "model": model_digest(model),
        "samples": _samples_digest(samples),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    if host == 0:
        _claim(out_dir, made_from, overwrite)
    barrier("labels claimed")
    if host != 0:
        claim(out_dir / FINGERPRINT_FILE, made_from)  # host 0's record: raises if this host's inputs differ
    shards = [samples[i : i + settings.shard_size] for i in range(0, len(samples), settings.shard_size)]
    todo = [i for i in range(host, len(shards), hosts) if not _shard_path(out_dir, i).exists()]
    if stop_after_shards is not None:
        todo = todo[:stop_after_shards]
    mine = range(host, len(shards), hosts)
    with tqdm(total=sum(len(shards[i]) for i in mine), desc=f"labels (host {host})", unit="sample") as progress:
        progress.update(sum(len(shards[i]) for i in mine if i not in todo))
        for index in todo:
            examples = []
            for start in range(0, len(shards[index]), settings.batch_size):
                chunk = shards[index][start : start + settings.batch_size]
                examples += label_batch(model, chunk, settings, correct)
                progress.update(len(chunk))
            _save_shard(_shard_path(out_dir, index), examples)
    barrier("labels written")
    if host != 0 or any(not _shard_path(out_dir, i).exists() for i in range(len(shards))):
        return None
    examples = (example for i in range(len(shards)) for example in _load_shard(_shard_path(out_dir, i)))
    if (dataset_dir(out_dir / TFDS_DIR) / "dataset_info.json").exists():
        return dataset_dir(out_dir / TFDS_DIR)
    return write_label_dataset(out_dir / TFDS_DIR, {settings.split: examples})


def _claim(out_dir: Path, made_from: dict, overwrite: bool) -> None:
    """Record what the shards are made from; start them over when overwrite replaces another record."""
    if claim(out_dir / FINGERPRINT_FILE, made_from, overwrite, has_outputs=any((out_dir / SHARDS_DIR).glob("*.npz"))):
        shutil.rmtree(out_dir / SHARDS_DIR, ignore_errors=True)
        shutil.rmtree(out_dir / TFDS_DIR, ignore_errors=True)
    (out_dir / SHARDS_DIR).mkdir(exist_ok=True)
