"""Benchmark layouts as really distributed: an MME archive unpacked one level deeper, MMBench's
circular copies whose image column names another row, SEED-Bench-2's data types, MMStar in
VLMEvalKit's A-D columns."""

from __future__ import annotations

import base64
import json

import pytest

from tests.eval.test_adapters import _png, _tsv, write_mme
from tokcomp_jax.eval.adapters import read_benchmark
from tokcomp_jax.eval.metrics import benchmark_score, score_reply
from tokcomp_jax.eval.samples import load_image


def test_mme_one_level_deeper_is_found_and_an_empty_category_is_named(tmp_path):
    write_mme(tmp_path / "MME_Benchmark_release_version")
    assert len(read_benchmark("mme", tmp_path)) == 4
    (tmp_path / "MME_Benchmark_release_version" / "count").mkdir()
    with pytest.raises(ValueError, match="count: no question files"):
        read_benchmark("mme", tmp_path)
    with pytest.raises(ValueError, match="no MME category directories"):
        read_benchmark("mme", tmp_path / "MME_Benchmark_release_version" / "existence")


def test_mmbench_circular_copies_share_the_original_image_and_are_scored_together(tmp_path):
    image = base64.b64encode(_png()).decode()
    header = ["index", "question", "hint", "A", "B", "C", "answer", "category", "image"]
    rows = [  # question 7 and its two circular copies (options rotated), which point at row 7's image
        [7, "Which colour?", "nan", "red", "green", "blue", "A", "attribute", image],
        [1000007, "Which colour?", "nan", "green", "blue", "red", "C", "attribute", "7"],
        [2000007, "Which colour?", "nan", "blue", "red", "green", "B", "attribute", "7"],
    ]
    _tsv(tmp_path / "MMBench_DEV_EN.tsv", header, rows)
    samples = read_benchmark("mmbench", tmp_path)
    assert [s.group for s in samples] == ["7", "7", "7"] and samples[1].images[0] == samples[0].images[0]
    assert load_image(samples[2].images[0]).shape == (8, 12, 3)

    def score(replies):
        records = [{"sample_id": s.sample_id, "score": score_reply(s.metric, reply, s.answers, dict(s.options)),
                    "answers": list(s.answers), "category": s.category, "group": s.group}
                   for s, reply in zip(samples, replies, strict=True)]  # fmt: skip
        return benchmark_score("circular", records)

    assert score(["A", "C", "B"])["score"] == 100.0
    always_b = score(["B", "B", "B"])
    # vanilla: the original question (index 7, answer A) only; vanilla_all: one row of three is right
    assert always_b["score"] == 0.0 and always_b["vanilla"] == 0.0 and always_b["vanilla_all"] == pytest.approx(100 / 3)
    rows[2][-1] = "8"  # names no row
    _tsv(tmp_path / "MMBench_DEV_EN.tsv", header, rows)
    with pytest.raises(ValueError, match="refers to row index '8'"):
        read_benchmark("mmbench", tmp_path)


def test_seed_bench_2_single_image_questions_are_read(tmp_path):
    data = {"questions": [
        {"question_id": "5_0", "question": "What is it?", "choice_a": "a", "choice_b": "b", "choice_c": "c",
         "choice_d": "d", "answer": "B", "data_id": "pic.jpg", "data_type": "Single Image", "question_type_id": 5,
         "level": "L1", "subpart": "Single-Image & Text Comprehension", "version": "v1"},
        {"question_id": "27_0", "question": "Which frame?", "choice_a": "a", "choice_b": "b", "choice_c": "c",
         "choice_d": "d", "answer": "A", "data_id": ["f1.png", "f2.png"], "data_type": "Multiple Images",
         "question_type_id": 27},
    ]}  # fmt: skip
    (tmp_path / "SEED-Bench_v2_level1_2_3.json").write_text(json.dumps(data))
    _png(tmp_path / "SEED-Bench-2-image" / "pic.jpg")
    (sample,) = read_benchmark("seed", tmp_path)
    assert sample.sample_id == "5_0" and sample.answers == ("B",) and sample.metric == "mcq"


def test_mmstar_in_vlmevalkit_columns(tmp_path):
    image = base64.b64encode(_png()).decode()
    header = ["index", "question", "A", "B", "C", "D", "answer", "category", "l2_category", "image"]
    _tsv(tmp_path / "MMStar.tsv", header, [[0, "Which object?", "a cup", "a box", "a lamp", "a dog", "B",
                                             "coarse perception", "image scene", image]])  # fmt: skip
    (sample,) = read_benchmark("mmstar", tmp_path)
    assert dict(sample.options) == {"A": "a cup", "B": "a box", "C": "a lamp", "D": "a dog"}
    assert score_reply(sample.metric, "The answer is a box", sample.answers, dict(sample.options)) == 1.0
