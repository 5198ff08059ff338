"""Grounded VQA examples shared by the miniature's datasets: schema, vocabulary, TFDS builder base.

One example is an image, a question, a one-word answer and the evidence: the pixel boxes the
answer depends on, so every selection of visual tokens can be scored by how much evidence it
kept (ground-truth recall), beside the accuracy it leaves the model.

    image     PNG bytes (decoded with `decode_image` -> [H, W, 3] uint8)
    question  text, words of `VOCAB` separated by spaces
    answer    text, one word of `VOCAB`
    kind      text, the question template
    evidence  int32 [E, 4] boxes (top, left, bottom, right) in pixels, bottom/right exclusive
    sample_id text

Images are stored as PNG bytes rather than `tfds.features.Image`, which needs TensorFlow.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from tokcomp_jax.data.local import LocalBuilder

CELL = 28  # pixels per merged visual token of Qwen2-VL (patch 14 x merge 2): objects sit on this grid

COLOURS = {
    "red": (220, 50, 50),
    "green": (50, 190, 70),
    "blue": (60, 90, 230),
    "yellow": (235, 210, 40),
    "purple": (160, 70, 200),
}
SHAPES = ("square", "circle", "triangle", "cross")
NUMBERS = tuple(str(n) for n in range(19))
QUESTION_WORDS = (
    "what colour is the shape object how many objects are there a left of above which digit in box sum boxed "
    "digits of ? and boxes orange cyan white larger than largest"
).split()
ANSWER_WORDS = ("yes", "no", *COLOURS, *SHAPES, *NUMBERS)
PAD, EOS = "<pad>", "<eos>"
VOCAB = (PAD, EOS, *dict.fromkeys(QUESTION_WORDS + list(ANSWER_WORDS)))
WORD_IDS = {word: index for index, word in enumerate(VOCAB)}
PAD_ID, EOS_ID = WORD_IDS[PAD], WORD_IDS[EOS]


def encode(text: str) -> list[int]:
    """Space-separated words -> ids; raises naming the first word outside the vocabulary."""
    words = text.split()
    if not words:
        raise ValueError("empty text: a question needs at least one word")
    unknown = [word for word in words if word not in WORD_IDS]
    if unknown:
        raise ValueError(f"words {unknown} are not in the miniature vocabulary (tokcomp_jax.data.vqa.VOCAB)")
    return [WORD_IDS[word] for word in words]


def decode(ids) -> str:
    return " ".join(VOCAB[int(i)] for i in ids)


def encode_image(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_image(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(bytes(png))).convert("RGB"))


def vqa_features() -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Tensor(shape=(), dtype=np.object_),
            "question": tfds.features.Text(),
            "answer": tfds.features.Text(),
            "kind": tfds.features.Text(),
            "evidence": tfds.features.Tensor(shape=(None, 4), dtype=np.int32),
            "sample_id": tfds.features.Text(),
        }
    )


def evidence_tokens(evidence: np.ndarray, image_hw: tuple[int, int], cell: int = CELL) -> np.ndarray:
    """Boxes [E, 4] in pixels -> bool [rows * cols] over the image's merged-token grid (row-major)."""
    rows, cols = image_hw[0] // cell, image_hw[1] // cell
    hit = np.zeros((rows, cols), bool)
    for top, left, bottom, right in np.asarray(evidence).reshape(-1, 4):
        hit[top // cell : -(-bottom // cell), left // cell : -(-right // cell)] = True
    return hit.reshape(-1)


@dataclasses.dataclass
class GridConfig(tfds.core.BuilderConfig):
    """Sizes and counts of a generated grounded-VQA dataset.

    Grid sides are in cells (merged tokens), drawn from `sides`; a large image doubles both
    sides of such a draw. `train` mixes small and large images (fraction `train_large`) so the
    model answers at both sizes, `validation` and `test` are small, `validation_2x` and
    `test_2x` large: the same distribution with 2x the tokens per side.
    """

    counts: tuple[tuple[str, int], ...] = (
        ("train", 8000), ("validation", 300), ("validation_2x", 300), ("test", 400), ("test_2x", 400)
    )  # fmt: skip
    sides: tuple[int, int] = (3, 6)
    train_large: float = 0.2
    seed: int = 0


class GridVQABuilder(LocalBuilder):
    """Base of the generated datasets: subclasses implement `make_example(rng, rows, cols, split, index)`."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        GridConfig(name="full"),
        GridConfig(
            name="demo",
            counts=(("train", 3000), ("validation", 150), ("validation_2x", 150), ("test", 200), ("test_2x", 200)),
            sides=(2, 4),
        ),
        GridConfig(
            name="tiny",
            counts=(("train", 8), ("validation", 4), ("validation_2x", 4), ("test", 4), ("test_2x", 4)),
            sides=(2, 3),
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=vqa_features())

    def _split_generators(self, dl_manager):
        del dl_manager  # everything is generated here, nothing downloads
        return {split: self._generate_examples(split, count) for split, count in self.builder_config.counts}

    def _generate_examples(self, split: str, count: int) -> Iterator[tuple[str, dict]]:
        config = self.builder_config
        split_index = [name for name, _ in config.counts].index(split)
        for index in range(count):
            rng = np.random.default_rng([config.seed, split_index, index])
            large = split.endswith("_2x") or (split == "train" and rng.random() < config.train_large)
            rows, cols = (
                int(side) * (2 if large else 1) for side in rng.integers(*config.sides, endpoint=True, size=2)
            )
            example = self.make_example(rng, rows, cols, split, index)
            example["sample_id"] = f"{self.name}-{split}-{index:06d}"
            example["image"] = encode_image(example["image"])
            example["evidence"] = np.asarray(example["evidence"], np.int32).reshape(-1, 4)
            yield example["sample_id"], example

    def make_example(self, rng: np.random.Generator, rows: int, cols: int, split: str, index: int) -> dict:
        raise NotImplementedError


def cell_box(row: int, col: int, cell: int = CELL) -> list[int]:
    return [row * cell, col * cell, (row + 1) * cell, (col + 1) * cell]


def build(builder_class, data_dir, config: str | GridConfig = "full") -> tfds.core.DatasetBuilder:
    """Generate (or reuse, if already there) a dataset under data_dir for a named or given config."""
    tfds.disable_progress_bar()  # one line per dataset instead of a bar per split and shuffle
    builder = builder_class(config=config, data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(verify_ssl=False))
    return builder


def read_sorted(builder: tfds.core.DatasetBuilder, split: str, convert) -> list[dict]:
    """`convert(raw example)` of every example of a split, in sample_id order (TFDS stores them hashed)."""
    source = builder.as_data_source(split)
    return sorted((convert(source[i]) for i in range(len(source))), key=lambda example: example["sample_id"])


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def media(value) -> np.ndarray:
    """A stored image (PNG or any PIL format, bytes in a 0-d object array) -> [H, W, 3] uint8."""
    return decode_image(np.asarray(value).item())


def _grounded_example(raw) -> dict:
    return {
        "image": media(raw["image"]),
        "question": text(raw["question"]),
        "answer": text(raw["answer"]),
        "kind": text(raw["kind"]),
        "evidence": np.asarray(raw["evidence"], np.int32).reshape(-1, 4),
        "sample_id": text(raw["sample_id"]),
        "frames": int(raw.get("frames", 1)),
    }


def read_examples(builder: tfds.core.DatasetBuilder, split: str) -> list[dict]:
    """A split as python dicts (image decoded), in sample_id order."""
    return read_sorted(builder, split, _grounded_example)
