"""The generated grounded-VQA datasets: deterministic, well-formed, answerable from their evidence."""

from __future__ import annotations

import numpy as np
import pytest

from tokcomp_jax.data import vqa
from tokcomp_jax.data.digits_grid import DigitsGridVqa, _digit_pools
from tokcomp_jax.data.scenes_vqa import SyntheticScenesVqa

SMALL = vqa.GridConfig(
    name="unit",
    counts=(("train", 40), ("validation", 4), ("validation_2x", 4), ("test", 8), ("test_2x", 8)),
    sides=(2, 4),
)


@pytest.fixture(scope="module", params=[SyntheticScenesVqa, DigitsGridVqa], ids=["scenes", "digits"])
def built(request, tmp_path_factory):
    builder = vqa.build(request.param, tmp_path_factory.mktemp(request.param.name), SMALL)
    return request.param, builder


def test_splits_sizes_and_vocabulary(built):
    _, builder = built
    for split, count in SMALL.counts:
        examples = vqa.read_examples(builder, split)
        assert len(examples) == count
        for example in examples:
            rows, cols = (side // vqa.CELL for side in example["image"].shape[:2])
            low, high = SMALL.sides
            assert example["image"].shape[0] % vqa.CELL == 0 and example["image"].shape[1] % vqa.CELL == 0
            scale = 2 if split.endswith("_2x") or (split == "train" and max(rows, cols) > high) else 1
            assert low * scale <= rows <= high * scale and low * scale <= cols <= high * scale
            vqa.encode(example["question"])
            assert len(vqa.encode(example["answer"])) == 1
            assert example["evidence"].shape[1] == 4


def test_generation_is_deterministic_by_seed(built, tmp_path):
    builder_class, builder = built
    again = vqa.read_examples(vqa.build(builder_class, tmp_path, SMALL), "test")
    first = vqa.read_examples(builder, "test")
    for a, b in zip(first, again, strict=True):
        assert a["question"] == b["question"] and a["answer"] == b["answer"]
        np.testing.assert_array_equal(a["image"], b["image"])


def test_evidence_cells_hold_what_the_answer_is_about(built):
    """The answer is a function of the evidence cells: blanking every other cell keeps it determinable."""
    builder_class, builder = built
    for example in vqa.read_examples(builder, "train"):
        cells = vqa.evidence_tokens(example["evidence"], example["image"].shape[:2])
        grid = np.asarray(example["image"]).reshape(
            example["image"].shape[0] // vqa.CELL, vqa.CELL, example["image"].shape[1] // vqa.CELL, vqa.CELL, 3
        )
        busy = (grid.max(axis=(1, 3, 4)) > 80).reshape(-1)  # a shape or digit is drawn there
        if example["kind"] in ("count", "presence") and example["answer"] in ("0", "no"):
            assert not (cells & ~busy).any()
            continue
        assert cells.any() and busy[cells].all(), example["sample_id"]
        if example["kind"] in ("sum", "relation"):
            assert cells.sum() == 2
        if example["kind"] in ("colour", "shape", "boxed_digit"):
            assert cells.sum() == 1


def test_scene_colour_answers_read_from_the_evidence_cell(tmp_path):
    builder = vqa.build(SyntheticScenesVqa, tmp_path, SMALL)
    for example in vqa.read_examples(builder, "train"):
        if example["kind"] != "colour":
            continue
        top, left, bottom, right = example["evidence"][0]
        pixels = example["image"][top:bottom, left:right].reshape(-1, 3)
        assert (pixels == vqa.COLOURS[example["answer"]]).all(-1).any()


def test_held_out_digits_come_from_scans_training_never_uses():
    pools = _digit_pools()
    train, held_out = pools[False][0].reshape(len(pools[False][0]), -1), pools[True][0].reshape(len(pools[True][0]), -1)
    assert len(train) + len(held_out) == 1797
    assert not (train[:, None] == held_out[None]).all(-1).any()


def test_bad_questions_and_images_are_named():
    with pytest.raises(ValueError, match="not in the miniature vocabulary"):
        vqa.encode("what colour is the banana ?")
    with pytest.raises(ValueError, match="empty text"):
        vqa.encode("   ")
