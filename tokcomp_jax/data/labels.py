"""The relevance-label dataset: what the label writer produces and the mapper trains on.

One example per (image or video, instruction) sample, N visual tokens, Hd first-layer heads:

    features        float32 [Hd, N]  layer-1 attention from the instruction tokens to each visual
                                     token, averaged over instruction tokens, one row per head
    relevance       float32 [N]      the explanation's relevance of each visual token (>= 0)
    token_grid_thw  int32   [M, 3]   (frames, rows, cols) of the visual tokens of each of the M
                                     images/videos, in merged tokens, in sequence order
    answer_correct  bool             the model's greedy answer matched the reference
    sample_id       text

Written as a TFDS dataset in array_record files, so it reads back with
`tfds.builder_from_directory(path).as_data_source(split)` and no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from tokcomp_jax.data.local import LocalBuilder

NAME = "relevance_labels"
VERSION = "1.0.0"


def label_features() -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict(
        {
            "features": tfds.features.Tensor(shape=(None, None), dtype=np.float32, encoding="bytes"),
            "relevance": tfds.features.Tensor(shape=(None,), dtype=np.float32),
            "token_grid_thw": tfds.features.Tensor(shape=(None, 3), dtype=np.int32, encoding="bytes"),
            "answer_correct": tfds.features.Tensor(shape=(), dtype=np.bool_),
            "sample_id": tfds.features.Text(),
        }
    )


def check_example(example: Mapping) -> None:
    """Raise ValueError naming the sample and what is wrong with it."""
    sample = example.get("sample_id", "?")
    features, relevance = np.asarray(example["features"]), np.asarray(example["relevance"])
    grids = np.asarray(example["token_grid_thw"])
    if features.ndim != 2 or relevance.ndim != 1:
        raise ValueError(f"sample {sample}: features must be [heads, N] and relevance [N]")
    if relevance.size == 0:
        raise ValueError(f"sample {sample}: no visual tokens")
    if features.shape[1] != relevance.size:
        raise ValueError(f"sample {sample}: features cover {features.shape[1]} tokens, relevance {relevance.size}")
    if grids.ndim != 2 or grids.shape[1] != 3 or int(grids.prod(-1).sum()) != relevance.size:
        raise ValueError(f"sample {sample}: token_grid_thw {grids.tolist()} does not hold {relevance.size} tokens")
    for name, values in (("features", features), ("relevance", relevance)):
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(f"sample {sample}: {name} must be finite and non-negative")


class _LabelBuilder(LocalBuilder):
    """Writes given examples; the splits are handed over at construction."""

    VERSION = tfds.core.Version(VERSION)

    def __init__(self, splits: Mapping[str, Iterable[Mapping]] | None = None, **kwargs):
        self._splits = splits
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=label_features())

    def _split_generators(self, dl_manager):
        return {name: self._generate_examples(examples) for name, examples in self._splits.items()}

    def _generate_examples(self, examples):
        for example in examples:
            check_example(example)
            yield example["sample_id"], dict(example)


_LabelBuilder.name = NAME


def write_label_dataset(data_dir: str | Path, splits: Mapping[str, Iterable[Mapping]]) -> Path:
    """Write split name -> examples as a TFDS dataset under data_dir; returns the dataset directory."""
    builder = _LabelBuilder(splits, data_dir=str(Path(data_dir).absolute()), file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(verify_ssl=False))
    return Path(builder.data_dir)


def dataset_dir(data_dir: str | Path) -> Path:
    """The versioned directory write_label_dataset created under data_dir."""
    return Path(data_dir).absolute() / NAME / VERSION


def read_split(directory: str | Path, split: str) -> list[dict]:
    """All examples of a split as numpy dicts, in sample_id order (TFDS stores them hashed)."""
    directory = Path(directory).absolute()
    if not (directory / "dataset_info.json").exists():
        directory = dataset_dir(directory)
    if not (directory / "dataset_info.json").exists():
        raise FileNotFoundError(f"no label dataset at {directory} (expected dataset_info.json)")
    source = tfds.builder_from_directory(str(directory)).as_data_source(split)
    examples = [dict(source[i]) for i in range(len(source))]
    for example in examples:
        example["sample_id"] = example["sample_id"].decode()
    return sorted(examples, key=lambda example: example["sample_id"])
