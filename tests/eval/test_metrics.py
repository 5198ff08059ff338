"""Benchmark metrics on hand-worked cases."""

from __future__ import annotations

import pytest

from tokcomp_jax.eval.metrics import (
    exact_match,
    extract_choice,
    mme_scores,
    normalize_answer,
    vqa_accuracy,
    yes_no_scores,
)


@pytest.mark.parametrize(
    "raw,normalized",
    [
        ("Two", "2"),
        ("The dog.", "dog"),
        ("a red-white  ball", "red white ball"),
        ("dont know", "don't know"),
        ("1,000", "1000"),
        ("3.5", "3.5"),
        ("yes!", "yes"),
        ("  an Apple\n", "apple"),
    ],
)
def test_normalize_answer(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_vqa_accuracy_is_the_leave_one_out_average():
    answers = ["2"] * 2 + ["two"] + ["3"] * 7  # "2" three times after normalising
    # Leaving out one of the three "2"s leaves two matches (2/3); leaving out a "3" leaves three (1).
    assert vqa_accuracy("2", answers) == pytest.approx((3 * 2 / 3 + 7 * 1.0) / 10)
    assert vqa_accuracy("3", answers) == 1.0
    assert vqa_accuracy("four", answers) == 0.0
    assert vqa_accuracy("The Dog", ["dog"]) == 1.0
    with pytest.raises(ValueError, match="reference"):
        vqa_accuracy("x", [])


def test_exact_match_normalises_both_sides():
    assert exact_match("Yes.", ["yes"]) == 1.0 and exact_match("left", ["right"]) == 0.0


OPTIONS = {"A": "a cat", "B": "a dog", "C": "a bird", "D": "a horse"}


@pytest.mark.parametrize(
    "reply,letter",
    [
        ("B", "B"),
        ("(C) a bird", "C"),
        ("D. a horse", "D"),
        ("The answer is A.", "A"),
        ("Answer: (B)", "B"),
        ("It shows a bird on a branch", "C"),
        ("I think B is right", "B"),
        ("", None),
        ("none of them", None),
    ],
)
def test_extract_choice(reply, letter):
    assert extract_choice(reply, OPTIONS) == letter


def test_pope_scores():
    predictions = ["yes", "yes", "no", "no", "yes", "no"]
    labels = ["yes", "no", "no", "yes", "yes", "yes"]
    scores = yes_no_scores(predictions, labels)
    # tp 2 (rows 0, 4), fp 1 (row 1), fn 2 (rows 3, 5); correct: rows 0, 2, 4.
    assert scores["accuracy"] == pytest.approx(50.0)
    assert scores["precision"] == pytest.approx(200 / 3)
    assert scores["recall"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5) * 100)
    assert scores["yes_ratio"] == pytest.approx(50.0)


def test_mme_score_is_accuracy_plus_accuracy_plus():
    rows = [
        ("existence", "img1", "yes", "yes"), ("existence", "img1", "no", "no"),   # both right
        ("existence", "img2", "yes", "yes"), ("existence", "img2", "yes", "no"),  # one right
        ("code_reasoning", "img3", "other", "yes"), ("code_reasoning", "img3", "no", "no"),
    ]  # fmt: skip
    scores = mme_scores(rows)
    assert scores["existence"] == pytest.approx(75.0 + 50.0)
    assert scores["code_reasoning"] == pytest.approx(50.0 + 0.0)
    assert scores["perception"] == pytest.approx(125.0) and scores["cognition"] == pytest.approx(50.0)
