"""Cluttered digits VQA: every token busy, two questions per image with disjoint evidence, and clips.

    builder = vqa.build(ClutteredDigitsVqa, data_dir, "demo")   # or "full", "tiny", a ClutterConfig

An image is a grid of 28-pixel cells (one merged visual token each) over crops of the two
photographs scikit-learn bundles (china.jpg, flower.jpg) blended, so no token is plain background.
Most cells hold a real handwritten digit (`load_digits`; the test splits draw from scans the
others never use), and a large share of those digits are framed in one of eight colours:
four colours frame one digit each (the ones questions point at), one colour frames a group of
one to four digits, and three colours frame distractors. Salient tokens are therefore everywhere
and only the question says which ones matter:

    boxed_digit  which digit is boxed in red                                    1 cell
    sum          what is the sum of the digits boxed in red and blue            2 cells
    relation     is the digit in red larger than the digit in blue              2 cells
    largest      what is the largest digit boxed in green                       1..4 cells

`relation` compares contents and `largest` takes a maximum over a group: the spatial relation
("is the box in red left of the box in blue") and counting ("how many boxes are green") that an
earlier miniature asked stayed near their priors, because no layer of the tiny model writes a
token's column into it and softmax attention averages a group rather than counting it
(docs/results.md).

Questions end with a colour word, so the token that predicts the answer is the one that names
the frame to look at: a tiny MLLM trained from scratch learns that one-step lookup, where with a
trailing "?" (look up the colour at its word, then carry it to the "?") it stayed at the answer
prior for 1000 steps (docs/results.md).

Every image is asked two questions whose evidence cells are disjoint; they are stored side by
side as `{dataset}-{split}-{index}-a` and `-b`, so a method that keeps the same tokens whatever
the question shows it (`paired` coverage). Splits ending in `_clips` hold videos: `clip_frames`
frames (each one temporal patch of Qwen2-VL, i.e. two identical raw frames) of a slowly panning
scene whose digits change a little from frame to frame; the question's frame appears in one or
two frames only. A clip is stored as its frames stacked vertically in one PNG (`frames` > 1), so
evidence boxes and token indices follow Qwen2-VL's (frame, row, column) order.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from tokcomp_jax.data import vqa
from tokcomp_jax.data.digits_grid import HELD_OUT_SPLITS, _digit_pools
from tokcomp_jax.data.local import LocalBuilder

PALETTE = {
    "red": (235, 30, 30),
    "green": (30, 210, 50),
    "blue": (40, 80, 255),
    "yellow": (250, 230, 20),
    "purple": (170, 50, 230),
    "orange": (255, 140, 0),
    "cyan": (0, 230, 230),
    "white": (255, 255, 255),
}
KINDS = ("boxed_digit", "sum", "relation", "largest")  # images and clips alike
POINTED = 4  # colours framing exactly one digit each
POINTED_NEEDED = {"boxed_digit": 1, "sum": 2, "relation": 2, "largest": 0}
GROUP = (1, 4)  # how many digits the group's colour frames
MOST_FRAMED = POINTED + GROUP[1]
FRAME = 2  # frame width in pixels
MIN_TEXTURE = 12.0  # least pixel standard deviation of a background cell


@dataclasses.dataclass
class ClutterConfig(vqa.GridConfig):
    """GridConfig (counts are images or clips; each gives two examples) plus the clip settings."""

    counts: tuple[tuple[str, int], ...] = (
        ("train", 10000), ("validation", 150), ("validation_2x", 150), ("validation_clips", 150),
        ("test", 500), ("test_2x", 500), ("test_clips", 400), ("test_4x", 200),
    )  # fmt: skip
    sides: tuple[int, int] = (4, 6)
    train_clips: float = 0.15  # share of training samples that are clips
    clip_frames: int = 4
    clip_side: int = 3
    filled: tuple[float, float] = (0.55, 0.85)  # share of cells holding a digit
    framed: float = 0.45  # share of cells framed (pointed, group and distractor frames)
    # Share of training images that keep only the frames their two questions rest on: "read the
    # framed digits" before "find the one framed in red among many", without which the miniature
    # MLLM stays at the answer prior (docs/results.md).
    train_sparse: float = 0.5
    # Share of training images with small sides (a curriculum in the number of visual tokens: on
    # 4..9 tokens even an unfocused attention carries the evidence, so reading is learned first).
    train_small: float = 0.4
    small_sides: tuple[int, int] = (2, 3)


@functools.cache
def _photos(scale: int = 1) -> tuple[np.ndarray, ...]:
    """scikit-learn's two sample photographs (427 x 640), each pixel repeated `scale` times per side (the
    4x images are larger than the photographs)."""
    from sklearn.datasets import load_sample_images

    return tuple(np.asarray(image, np.uint8).repeat(scale, 0).repeat(scale, 1) for image in load_sample_images().images)


def _crops(rng: np.random.Generator, photo: np.ndarray, height: int, width: int, frames: int) -> np.ndarray:
    """[frames, height, width, 3] crops of a photograph (flipped at random), panning a few pixels per frame."""
    if rng.random() < 0.5:
        photo = photo[:, ::-1]
    pan = rng.integers(-6, 7, size=2)
    span = np.abs(pan) * (frames - 1)
    room = np.array(photo.shape[:2]) - (height, width) - span
    if (room < 0).any():
        raise ValueError(f"a {height}x{width} clip of {frames} frames does not fit the {photo.shape[:2]} photograph")
    start = rng.integers(0, room + 1) + np.where(pan < 0, span, 0)
    return np.stack([photo[start[0] + f * pan[0] :, start[1] + f * pan[1] :][:height, :width] for f in range(frames)])


def _background_crops(rng: np.random.Generator, height: int, width: int, frames: int, scale: int = 1) -> np.ndarray:
    """Crops of both photographs blended half and half, drawn again (up to 50 times, then the busiest
    draw) until no cell of the first frame is flat: every token shows texture."""
    best, best_flatness = None, -1.0
    for _ in range(50):
        first, second = (_crops(rng, photo, height, width, frames).astype(np.float32) for photo in _photos(scale))
        crops = (first + second) / 2
        cells = crops[0].reshape(height // vqa.CELL, vqa.CELL, width // vqa.CELL, vqa.CELL, 3)
        flatness = float(cells.std(axis=(1, 3, 4)).min())
        if flatness > best_flatness:
            best, best_flatness = crops, flatness
        if flatness >= MIN_TEXTURE:
            break
    return best.astype(np.uint8)


def _digit_cells(rng: np.random.Generator, frames: int, cells: int, num_scans: int, filled: tuple[float, float]):
    """Scan index per cell [frames, cells] (-1 empty); each frame re-draws about a quarter of the previous;
    at least enough filled cells for every frame colour's digits."""
    share = rng.uniform(*filled)
    layout = np.where(rng.random(cells) < share, rng.integers(num_scans, size=cells), -1)
    per_frame = [layout]
    for _ in range(frames - 1):
        change = rng.random(cells) < 0.25
        redrawn = np.where(rng.random(cells) < share, rng.integers(num_scans, size=cells), -1)
        per_frame.append(np.where(change, redrawn, per_frame[-1]))
    scans = np.stack(per_frame).reshape(-1)
    empty = rng.permutation(np.flatnonzero(scans < 0))[: max(0, MOST_FRAMED - int((scans >= 0).sum()))]
    scans[empty] = rng.integers(num_scans, size=len(empty))
    return scans.reshape(frames, cells)


def _frames_of(rng: np.random.Generator, scans: np.ndarray, framed: float) -> tuple[dict[int, str], list[str], str]:
    """(flat cell index -> frame colour, pointed colours, group colour), over filled cells only:
    POINTED colours once each, the group's 1..4 times, distractors up to `framed` of all cells."""
    colours = [str(c) for c in rng.permutation(list(PALETTE))]
    filled = [int(i) for i in rng.permutation(np.flatnonzero(scans.reshape(-1) >= 0))]
    if len(filled) < 2:
        raise ValueError(f"{len(filled)} filled cells cannot hold two questions' framed digits")
    pointed = min(POINTED, len(filled) - 1)  # fewer on the smallest training images
    grouped = int(rng.integers(GROUP[0], min(GROUP[1], len(filled) - pointed), endpoint=True))
    chosen = filled[: max(pointed + grouped, int(round(framed * scans.size)))]
    frames = {cell: colours[i] for i, cell in enumerate(chosen[:pointed])}
    frames.update({cell: colours[POINTED] for cell in chosen[pointed : pointed + grouped]})
    distractors = colours[POINTED + 1 :]
    frames.update({cell: distractors[rng.integers(len(distractors))] for cell in chosen[pointed + grouped :]})
    return frames, colours[:pointed], colours[POINTED]


def render_frame(background: np.ndarray, scans: np.ndarray, images: np.ndarray, frames: dict[int, str]) -> np.ndarray:
    """One frame [rows * CELL, cols * CELL, 3]: the photograph, digits on darkened cells, coloured frames.

    `scans` [rows, cols] indexes `images` (-1 empty); `frames` maps a flat cell index to a colour.
    """
    cell = vqa.CELL
    image = (background.astype(np.float32) * 0.8).astype(np.uint8)
    cols = scans.shape[1]
    for index in np.flatnonzero(scans.reshape(-1) >= 0):
        top, left = (index // cols) * cell + FRAME, (index % cols) * cell + FRAME
        ink = np.kron(images[scans.reshape(-1)[index]], np.ones((3, 3))) * 15.0
        patch = image[top : top + 24, left : left + 24].astype(np.float32) * 0.35
        image[top : top + 24, left : left + 24] = np.clip(patch + ink[..., None], 0, 255).astype(np.uint8)
    for index, colour in frames.items():
        top, left = (index // cols) * cell, (index % cols) * cell
        box = image[top : top + cell, left : left + cell]
        box[:FRAME], box[-FRAME:], box[:, :FRAME], box[:, -FRAME:] = (PALETTE[colour],) * 4
    return image


def _cells_of(frames: dict[int, str], colour: str) -> list[int]:
    return [cell for cell, c in frames.items() if c == colour]


def _ask(kind: str, pointed: list[str], group: str, frames: dict, digits: dict):
    """(question, answer, evidence cells) of a kind; pops the pointed colours it uses."""
    if kind == "boxed_digit":
        colour = pointed.pop()
        (cell,) = _cells_of(frames, colour)
        return f"which digit is boxed in {colour}", str(digits[cell]), [cell]
    if kind == "sum":
        first, second = pointed.pop(), pointed.pop()
        cells = [_cells_of(frames, first)[0], _cells_of(frames, second)[0]]
        return f"what is the sum of the digits boxed in {first} and {second}", str(sum(digits[c] for c in cells)), cells
    if kind == "relation":
        first, second = pointed.pop(), pointed.pop()
        cells = [_cells_of(frames, first)[0], _cells_of(frames, second)[0]]
        larger = digits[cells[0]] > digits[cells[1]]
        return f"is the digit in {first} larger than the digit in {second}", "yes" if larger else "no", cells
    if kind == "largest":
        cells = _cells_of(frames, group)
        return f"what is the largest digit boxed in {group}", str(max(digits[c] for c in cells)), cells
    raise ValueError(f"unknown question kind {kind!r}")


def _question_pair(rng, frames: dict, pointed: list[str], group: str, digits: dict):
    """Two (kind, question, answer, evidence cells) with disjoint evidence; at most one `largest`, and
    only kinds the pointed colours left can still ask."""
    pointed = [str(c) for c in rng.permutation(pointed)]
    asked = []
    for _ in range(2):
        left = len(pointed) - sum(POINTED_NEEDED[k] for k in asked)
        feasible = [k for k in KINDS if POINTED_NEEDED[k] <= left and not (k == "largest" and "largest" in asked)]
        kind = str(feasible[rng.integers(len(feasible))])
        asked.append(kind)
    return [(kind, *_ask(kind, pointed, group, frames, digits)) for kind in asked]


def _sparse(frames: dict[int, str], needed: set[int]) -> dict[int, str]:
    """Only the frames of the `needed` cells (the answers stay the same)."""
    return {cell: colour for cell, colour in frames.items() if cell in needed}


class ClutteredDigitsVqa(LocalBuilder):
    """Digits on photographs, framed in eight colours; two questions per image or clip."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        ClutterConfig(name="full"),
        ClutterConfig(
            name="demo",
            counts=(
                ("train", 2000),
                ("validation", 60),
                ("validation_2x", 60),
                ("validation_clips", 60),
                ("test", 250),
                ("test_2x", 100),
                ("test_clips", 100),
                ("test_4x", 50),
            ),
        ),  # fmt: skip
        ClutterConfig(
            name="tiny",
            counts=(
                ("train", 6),
                ("validation", 2),
                ("validation_2x", 2),
                ("validation_clips", 2),
                ("test", 3),
                ("test_2x", 2),
                ("test_clips", 2),
            ),
            sides=(3, 3),  # 9 tokens, 36 at 2x and in a clip: one bucket
        ),  # fmt: skip
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        features = dict(vqa.vqa_features())
        features["frames"] = tfds.features.Tensor(shape=(), dtype=np.int32)
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        del dl_manager  # everything is generated here, nothing downloads
        return {split: self._generate_examples(split, count) for split, count in self.builder_config.counts}

    def _generate_examples(self, split: str, count: int) -> Iterator[tuple[str, dict]]:
        for example in generate(self.builder_config, split, range(count), self.name):
            yield example["sample_id"], dict(example, image=vqa.encode_image(example["image"]))


def generate(config: ClutterConfig, split: str, indices, dataset: str = "cluttered_digits_vqa") -> Iterator[dict]:
    """The examples of images `indices` of a split, exactly as the builder stores them (images as arrays):
    any slice of a split without preparing the dataset."""
    split_index = [name for name, _ in config.counts].index(split)
    for index in indices:
        rng = np.random.default_rng([config.seed, split_index, index])
        for suffix, example in zip("ab", make_examples(config, rng, split), strict=True):
            example["sample_id"] = f"{dataset}-{split}-{index:06d}-{suffix}"
            yield example


def named_config(name: str) -> ClutterConfig:
    """One of the builder's configs by name (full, demo, tiny)."""
    configs = {config.name: config for config in ClutteredDigitsVqa.BUILDER_CONFIGS}
    if name not in configs:
        raise ValueError(f"unknown cluttered_digits_vqa config {name!r}; known: {sorted(configs)}")
    return configs[name]


def make_examples(config: ClutterConfig, rng: np.random.Generator, split: str) -> list[dict]:
    """Two examples (one image or clip [frames * H, W, 3] uint8, two questions) of a split."""
    clip = split.endswith("_clips") or (split == "train" and rng.random() < config.train_clips)
    if clip:
        frames, rows, cols = config.clip_frames, config.clip_side, config.clip_side
    else:
        size = rng.random()
        large = split.endswith("_2x") or (split == "train" and size < config.train_large)
        small = split == "train" and config.train_large <= size < config.train_large + config.train_small
        sides = config.small_sides if small else config.sides
        frames = 1
        scale = 4 if split.endswith("_4x") else 2 if large else 1  # tokens per side, times the test size's
        rows, cols = (int(s) * scale for s in rng.integers(*sides, endpoint=True, size=2))
    images, labels = _digit_pools()[split in HELD_OUT_SPLITS or split == "test_clips"]
    scans = _digit_cells(rng, frames, rows * cols, len(labels), config.filled)
    framed, pointed, group = _frames_of(rng, scans, config.framed)
    digits = {cell: int(labels[s]) for cell, s in enumerate(scans.reshape(-1)) if s >= 0}
    questions = _question_pair(rng, framed, pointed, group, digits)
    if split == "train" and rng.random() < config.train_sparse:
        framed = _sparse(framed, {cell for *_, cells in questions for cell in cells})
    photo_scale = 2 if split.endswith("_4x") else 1  # 24 x 28 pixels a side exceeds the photographs
    backgrounds = _background_crops(rng, rows * vqa.CELL, cols * vqa.CELL, frames, photo_scale)
    per_frame = rows * cols
    strip = np.concatenate(
        [
            render_frame(
                backgrounds[f],
                scans[f].reshape(rows, cols),
                images,
                {c - f * per_frame: k for c, k in framed.items() if c // per_frame == f},
            )
            for f in range(frames)
        ]
    )
    examples = []
    for kind, question, answer, cells in questions:
        examples.append(
            {
                "image": strip,
                "frames": np.int32(frames),
                "question": question,
                "answer": answer,
                "kind": f"clip_{kind}" if clip else kind,
                "evidence": np.array([vqa.cell_box(*divmod(c, cols)) for c in cells], np.int32).reshape(-1, 4),
            }
        )
    return examples
