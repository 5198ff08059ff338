"""Cluttered digits VQA: busy everywhere, paired questions with disjoint evidence, clips, answers
that follow from the evidence cells."""

from __future__ import annotations

import numpy as np
import pytest

from tokcomp_jax.data import vqa
from tokcomp_jax.data.cluttered import FRAME, PALETTE, ClutterConfig, ClutteredDigitsVqa, _ask, generate, named_config
from tokcomp_jax.miniature.evaluate import image_of
from tokcomp_jax.miniature.samples import token_grid

SMALL = ClutterConfig(
    name="unit",
    counts=(
        ("train", 24), ("validation", 2), ("validation_2x", 2), ("validation_clips", 2),
        ("test", 8), ("test_2x", 4), ("test_clips", 6),
    ),
)  # fmt: skip


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    return vqa.build(ClutteredDigitsVqa, tmp_path_factory.mktemp("cluttered"), SMALL)


@pytest.fixture(scope="module")
def splits(builder):
    return {split: vqa.read_examples(builder, split) for split, _ in SMALL.counts}


def _cells(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] -> [rows * cols, CELL, CELL, 3]."""
    rows, cols = image.shape[0] // vqa.CELL, image.shape[1] // vqa.CELL
    return image.reshape(rows, vqa.CELL, cols, vqa.CELL, 3).transpose(0, 2, 1, 3, 4).reshape(-1, vqa.CELL, vqa.CELL, 3)


def _frame_colour(cell: np.ndarray) -> str | None:
    ring = np.concatenate([cell[:FRAME].reshape(-1, 3), cell[-FRAME:].reshape(-1, 3)])
    for name, colour in PALETTE.items():
        if (ring == colour).all():
            return name
    return None


def test_two_questions_per_image_with_disjoint_evidence(splits):
    for split, count in SMALL.counts:
        examples = splits[split]
        assert len(examples) == 2 * count
        by_image: dict[str, list[dict]] = {}
        for example in examples:
            by_image.setdefault(image_of(example["sample_id"]), []).append(example)
        assert len(by_image) == count
        for first, second in by_image.values():
            np.testing.assert_array_equal(first["image"], second["image"])
            shape = first["image"].shape[:2]
            a, b = (vqa.evidence_tokens(e["evidence"], shape) for e in (first, second))
            assert a.any() and b.any() and not (a & b).any(), first["sample_id"]


def test_every_cell_is_busy_and_most_hold_a_digit(splits):
    """No cell is flat background (the photograph shows through everywhere)."""
    for example in splits["test"] + splits["test_2x"]:
        cells = _cells(example["image"]).astype(np.float32)
        assert (cells.std(axis=(1, 2, 3)) > 8).all(), example["sample_id"]
        framed = np.array([_frame_colour(cell) is not None for cell in cells])
        assert framed.mean() >= 0.3  # salient frames everywhere, not only on the evidence


def test_answers_follow_from_the_evidence_cells(splits):
    for example in [e for split in ("train", "test", "test_clips") for e in splits[split]]:
        cells = _cells(example["image"])
        evidence = np.flatnonzero(vqa.evidence_tokens(example["evidence"], example["image"].shape[:2]))
        colours = [_frame_colour(cells[i]) for i in evidence]
        words = example["question"].split()
        kind = example["kind"].removeprefix("clip_")
        if kind == "boxed_digit":
            assert colours == [words[-1]]
        elif kind in ("sum", "relation"):
            assert len(evidence) == 2 and set(colours) == {words[4 if kind == "relation" else -3], words[-1]}
        elif kind == "largest":  # every digit of the group is evidence
            assert colours == [words[-1]] * len(evidence) and 1 <= len(evidence) <= 4
            assert sum(_frame_colour(cell) == words[-1] for cell in cells) == len(evidence)
        if kind in ("boxed_digit", "sum", "relation"):  # the pointed colours frame exactly one digit each
            for colour in set(colours):
                assert sum(_frame_colour(cell) == colour for cell in cells) == 1


def test_clips_are_frames_stacked_in_token_order(splits):
    for example in splits["test_clips"]:
        frames, rows, cols = token_grid(example)
        assert (frames, rows, cols) == (SMALL.clip_frames, SMALL.clip_side, SMALL.clip_side)
        assert example["kind"].startswith("clip_") and example["image"].shape[0] == frames * rows * vqa.CELL
    assert all(token_grid(e)[0] == 1 for e in splits["test"] + splits["test_2x"])
    assert any(token_grid(e)[0] > 1 for e in splits["train"]) or SMALL.train_clips * 24 < 2


def test_only_training_images_are_sparse(splits):
    """Held-out images are framed densely; training mixes in images that keep only some frames."""

    def framed_share(example):
        return np.mean([_frame_colour(cell) is not None for cell in _cells(example["image"])])

    assert min(framed_share(e) for e in splits["test"]) >= 0.3
    assert min(framed_share(e) for e in splits["train"]) < 0.3


def test_generation_is_deterministic_by_seed(builder, tmp_path):
    again = vqa.read_examples(vqa.build(ClutteredDigitsVqa, tmp_path, SMALL), "test_clips")
    for a, b in zip(vqa.read_examples(builder, "test_clips"), again, strict=True):
        assert (a["sample_id"], a["question"], a["answer"]) == (b["sample_id"], b["question"], b["answer"])
        np.testing.assert_array_equal(a["image"], b["image"])


def test_any_slice_generates_without_the_dataset(splits):
    stored = {e["sample_id"]: e for e in splits["test"]}
    for example in generate(SMALL, "test", [3, 5]):
        twin = stored[example["sample_id"]]
        assert (example["question"], example["answer"], example["kind"]) == (
            twin["question"],
            twin["answer"],
            twin["kind"],
        )
        np.testing.assert_array_equal(example["image"], twin["image"])
        np.testing.assert_array_equal(example["evidence"], twin["evidence"])


def test_answers_follow_from_the_framed_digits():
    """relation compares the two pointed digits (content, not position: no layer of the miniature
    writes a token's column into it, docs/results.md); sum adds them; largest takes the group's maximum."""
    frames = {3: "red", 7: "blue", 8: "green"}
    digits = {3: 6, 7: 2, 8: 9}
    for first, second, larger in (("red", "blue", "yes"), ("blue", "red", "no")):
        question, answer, cells = _ask("relation", [second, first], "green", frames, digits)
        assert question == f"is the digit in {first} larger than the digit in {second}"
        assert answer == larger and cells == [{"red": 3, "blue": 7}[c] for c in (first, second)]
    assert _ask("sum", ["red", "blue"], "green", frames, digits)[1] == "8"
    assert _ask("relation", ["red", "red2"], "green", {3: "red", 4: "red2"}, {3: 5, 4: 5})[1] == "no"  # ties
    frames |= {1: "green"}
    digits |= {1: 4}
    assert _ask("largest", [], "green", frames, digits) == ("what is the largest digit boxed in green", "9", [8, 1])


def test_4x_images_have_four_times_the_test_sides_and_come_last():
    """test_4x (evaluated only): 16..24 tokens a side. It comes last among the counts, so every other split
    keeps its index there, the seed of its examples (checked once against the code before test_4x: the
    first 6 images of train, test, test_2x, test_clips and validation_2x were byte-equal)."""
    config = named_config("demo")
    names = [name for name, _ in config.counts]
    assert names[-1] == "test_4x" and names.index("test") < names.index("test_2x") < names.index("test_4x")
    for example in generate(config, "test_4x", range(4)):
        rows, cols = (side // vqa.CELL for side in example["image"].shape[:2])
        assert all(4 * low <= side <= 4 * high for side in (rows, cols) for low, high in [config.sides])
        assert example["image"].std() > 0
