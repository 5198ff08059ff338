"""Scores on records copied from the benchmarks' own published files, every expected figure worked
out by hand from the official rule (tokcomp_jax.eval.official cites it).

POPE: the first six lines of each of RUCAIBox/POPE output/coco/coco_pope_{random,popular,adversarial}.json
(commit 3df3ba1), verbatim. ScienceQA: replies and the parsed answers recorded with them in
lupantech/ScienceQA results/gpt3/final_test_QCM-ALE_2_seed_3.json. The other benchmarks are
distributed only through model hubs, which these machines cannot reach; their tests use records
written in the published layout (tests/eval/test_adapters.py, test_adapter_layouts.py).
"""

from __future__ import annotations

import pytest

from tokcomp_jax.eval import official
from tokcomp_jax.eval.adapters import read_benchmark
from tokcomp_jax.eval.scoring import score_replies

POPE_LINES = {
    "random": [
        '{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?", "label": "yes"}',
        '{"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a car in the image?", "label": "no"}',
        '{"question_id": 3, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a person in the image?", "label": "yes"}',
        '{"question_id": 4, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a sandwich in the image?", "label": "no"}',
        '{"question_id": 5, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a skis in the image?", "label": "yes"}',
        '{"question_id": 6, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a couch in the image?", "label": "no"}',
    ],
    "popular": [
        '{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?", "label": "yes"}',
        '{"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a dining table in the image?", "label": "no"}',
        '{"question_id": 3, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a person in the image?", "label": "yes"}',
        '{"question_id": 4, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a car in the image?", "label": "no"}',
        '{"question_id": 5, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a skis in the image?", "label": "yes"}',
        '{"question_id": 6, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a chair in the image?", "label": "no"}',
    ],
    "adversarial": [
        '{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?", "label": "yes"}',
        '{"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a backpack in the image?", "label": "no"}',
        '{"question_id": 3, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a person in the image?", "label": "yes"}',
        '{"question_id": 4, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a car in the image?", "label": "no"}',
        '{"question_id": 5, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a skis in the image?", "label": "yes"}',
        '{"question_id": 6, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a dog in the image?", "label": "no"}',
    ],
}  # fmt: skip

POPE_REPLIES = {
    # TP, TN, TP, FP ("Not" is not "not"), FN, FP ("NO" is not "No"): P 2/4, R 2/3, F1 4/7
    "random": ["Yes, there is a snowboard.", "No, there is no car.", "There is a person.",
               "Not sure, but there is a sandwich.", "I do not see skis.", "NO"],
    "popular": ["Yes", "No", "Yes", "No", "Yes", "No"],  # all right: F1 1
    # TP, TN, TP (an empty reply is "yes"), TN, TP (only the first sentence counts), FP: P 3/4, R 1, F1 6/7
    "adversarial": ["yes.", "no.", "", "no, there is no car", "Yes. But no skis.", "Absolutely."],
}  # fmt: skip


def test_pope_on_its_published_question_files(tmp_path):
    for split, lines in POPE_LINES.items():
        (tmp_path / f"coco_pope_{split}.json").write_text("\n".join(lines) + "\n")
    (tmp_path / "val2014").mkdir()
    (tmp_path / "val2014" / "COCO_val2014_000000310196.jpg").write_bytes(b"")  # placeholder: scoring reads no media
    samples = read_benchmark("pope", tmp_path)
    replies = {f"{split}/{i + 1}": reply for split, rows in POPE_REPLIES.items() for i, reply in enumerate(rows)}
    result = score_replies(samples, replies)
    assert result["samples"] == 18
    assert result["random/f1"] == pytest.approx(400 / 7)
    assert result["random/accuracy"] == pytest.approx(50.0)
    assert result["popular/f1"] == pytest.approx(100.0)
    assert result["adversarial/f1"] == pytest.approx(600 / 7)
    assert result["score"] == pytest.approx(100 * 17 / 21)  # the splits' mean, as published tables report
    assert result["pooled/f1"] == pytest.approx(80.0)  # TP 8, FP 3, FN 1 over the pooled 18


SCIENCEQA_PUBLISHED = [  # (pid, output, the answer index recorded beside it)
    ("4", "The answer is B. BECAUSE: An apostrophe is a figure of speech in which a speaker or writer addresses an "
          "absent person, an inanimate object, or a concept.\nIn the text, the speaker is addressing the goddess. "
          "The goddess is absent. So, the figure of speech used in the text is an apostrophe.", 1),
    ("11", "The answer is A. BECAUSE: The colony shown is Maryland.", 0),
    ("15", "", 0),  # no answer: ScienceQA's own script guessed at random (index 0); LLaVA-1.5 counts it wrong
]  # fmt: skip


@pytest.mark.parametrize("pid,output,recorded", SCIENCEQA_PUBLISHED)
def test_scienceqa_reads_published_outputs_as_their_evaluator_did(pid, output, recorded):
    letter = official.scienceqa_letter(output, "ABCDE")
    assert letter == ("ABCDE"[recorded] if output else None), pid
