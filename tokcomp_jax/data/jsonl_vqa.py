"""A generic VQA dataset from your own benchmark: one jsonl file per split plus media files.

Each line of a split's jsonl file is one sample; paths are relative to that file's directory:

    {"id": "q1", "question": "what colour is the square ?", "answers": ["red"],
     "images": ["img/1.png"],            # or "image": "img/1.png"; any format PIL reads
     "frames": ["vid/1/000.jpg", ...],   # optional: a video as frames, in order
     "options": ["red", "blue"],         # optional: multiple choice
     "evidence": [[0, 28, 28, 56]]}      # optional: boxes (top, left, bottom, right) in pixels

`answers` may be a single string `answer`. Media files are stored as their own bytes (decode
with `decode_image`), checked to open at build time; bad lines fail with the line number.

    builder = build_jsonl({"test": "bench/test.jsonl"}, data_dir, name="my_bench")
    examples = read_jsonl_examples(builder, "test")
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from tokcomp_jax.data.local import LocalBuilder
from tokcomp_jax.data.vqa import encode_image, media, read_sorted, text


@dataclasses.dataclass
class JsonlConfig(tfds.core.BuilderConfig):
    splits: tuple[tuple[str, str], ...] = ()  # (split name, jsonl path)


def jsonl_features() -> tfds.features.FeaturesDict:
    media = tfds.features.Sequence(tfds.features.Tensor(shape=(), dtype=np.object_))
    return tfds.features.FeaturesDict(
        {
            "sample_id": tfds.features.Text(),
            "question": tfds.features.Text(),
            "answers": tfds.features.Sequence(tfds.features.Text()),
            "options": tfds.features.Sequence(tfds.features.Text()),
            "images": media,
            "frames": media,
            "evidence": tfds.features.Tensor(shape=(None, 4), dtype=np.int32),
        }
    )


def _media(root: Path, paths, where: str) -> list[bytes]:
    if isinstance(paths, str) or not isinstance(paths, list):
        raise ValueError(f"{where}: expected a list of paths, got {paths!r}")
    files = []
    for relative in paths:
        path = root / relative
        if not path.is_file():
            raise ValueError(f"{where}: media file {path} does not exist")
        data = path.read_bytes()
        try:
            Image.open(io.BytesIO(data)).verify()
        except Exception as err:  # PIL raises many types for unreadable files
            raise ValueError(f"{where}: {path} is not an image PIL can read ({err})") from None
        files.append(data)
    return files


def parse_line(line: str, root: Path, where: str) -> dict:
    """One jsonl line -> a feature dict; ValueError naming `where` (file:line) and the field."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err})") from None
    for field in ("id", "question"):
        if not isinstance(record.get(field), str) or not record[field].strip():
            raise ValueError(f"{where}: '{field}' must be a non-empty string")
    answers = record.get("answers", [record["answer"]] if "answer" in record else None)
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise ValueError(f"{where}: needs 'answers' (a non-empty list of strings) or 'answer'")
    images = record.get("images", [record["image"]] if "image" in record else [])
    evidence = np.asarray(record.get("evidence", []), np.int32).reshape(-1, 4)
    return {
        "sample_id": record["id"],
        "question": record["question"],
        "answers": answers,
        "options": [str(option) for option in record.get("options", [])],
        "images": _media(root, images, where),
        "frames": _media(root, record.get("frames", []), where),
        "evidence": evidence,
    }


class JsonlVqa(LocalBuilder):
    """Builds the splits a JsonlConfig names; nothing downloads."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = []

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=jsonl_features())

    def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(Path(path)) for split, path in self.builder_config.splits}

    def _generate_examples(self, path: Path) -> Iterator[tuple[str, dict]]:
        if not path.is_file():
            raise FileNotFoundError(f"no jsonl file at {path}")
        seen = set()
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            example = parse_line(line, path.parent, f"{path}:{number}")
            if example["sample_id"] in seen:
                raise ValueError(f"{path}:{number}: duplicate id {example['sample_id']!r}")
            seen.add(example["sample_id"])
            yield example["sample_id"], example


def build_jsonl(
    splits: Mapping[str, str | Path], data_dir: str | Path, name: str = "jsonl"
) -> tfds.core.DatasetBuilder:
    """Build (or reuse) the dataset `name` from split -> jsonl path under data_dir."""
    tfds.disable_progress_bar()
    config = JsonlConfig(name=name, splits=tuple((split, str(Path(path).absolute())) for split, path in splits.items()))
    builder = JsonlVqa(config=config, data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(verify_ssl=False))
    return builder


def _jsonl_example(raw) -> dict:
    return {
        "sample_id": text(raw["sample_id"]),
        "question": text(raw["question"]),
        "answers": [text(answer) for answer in raw["answers"]],
        "options": [text(option) for option in raw["options"]],
        "images": [media(image) for image in raw["images"]],
        "frames": [media(frame) for frame in raw["frames"]],
        "evidence": np.asarray(raw["evidence"], np.int32).reshape(-1, 4),
    }


def read_jsonl_examples(builder: tfds.core.DatasetBuilder, split: str) -> list[dict]:
    """A split as dicts with decoded images [H, W, 3] and frames, in id order."""
    return read_sorted(builder, split, _jsonl_example)


def export_jsonl(examples, directory: str | Path, split: str) -> Path:
    """Write grounded-VQA examples (tokcomp_jax.data.vqa) as `directory/split.jsonl` + PNGs."""
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for example in examples:
        image_path = Path("images") / f"{example['sample_id']}.png"
        (directory / image_path).write_bytes(encode_image(example["image"]))
        record = {
            "id": example["sample_id"], "question": example["question"], "answers": [example["answer"]],
            "images": [str(image_path)], "evidence": np.asarray(example["evidence"]).tolist(),
        }  # fmt: skip
        lines.append(json.dumps(record))
    path = directory / f"{split}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path
