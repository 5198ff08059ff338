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


def test_seed_bench_2_single_image_questions_are_read_from_their_data_source_folder(tmp_path):
    """AILab-CVC/SEED-Bench SEED-Bench-2/eval.py run_inference picks the image folder per record:
    cc3m_dir where data_source is "cc3m", seed_bench_v2_dir where it is "SEED-Bench v2", any other value
    an error; with both folders present each record reads its own (records as DATASET.md shows them)."""
    common = {"choice_a": "a", "choice_b": "b", "choice_c": "c", "choice_d": "d", "level": "L1", "version": "v1",
              "subpart": "Single-Image & Text Comprehension", "data_type": "Single Image"}  # fmt: skip
    data = {"questions": [
        {**common, "question_id": "5_0", "question": "How many towels are in the image?", "answer": "B",
         "data_id": "1454426_2591111986", "data_source": "cc3m", "question_type_id": 5},
        {**common, "question_id": "10_0", "question": "Who is this?", "answer": "C", "data_id": "task10/1.jpg",
         "data_source": "SEED-Bench v2", "question_type_id": 10, "version": "v2"},
        {**common, "question_id": "17_0", "question": "What differs?", "answer": "A", "data_type": "Multiple Images",
         "data_id": ["task17/1.png", "task17/2.png"], "data_source": "SEED-Bench v2", "question_type_id": 17},
    ], "question_type": {"Instances Counting": 5, "Celebrity Recognition": 10}}  # fmt: skip
    (tmp_path / "SEED-Bench_v2_level1_2_3.json").write_text(json.dumps(data))
    _png(tmp_path / "cc3m-image" / "1454426_2591111986", colour=(10, 20, 30))
    _png(tmp_path / "SEED-Bench-2-image" / "task10" / "1.jpg", colour=(40, 50, 60))
    cc3m, celebrity = read_benchmark("seed", tmp_path)
    assert (cc3m.sample_id, cc3m.answers, cc3m.category) == ("5_0", ("B",), "Instances Counting")
    assert cc3m.images == (tmp_path / "cc3m-image" / "1454426_2591111986",)
    assert celebrity.images == (tmp_path / "SEED-Bench-2-image" / "task10" / "1.jpg",)
    assert load_image(cc3m.images[0])[0, 0].tolist() == [10, 20, 30]
    assert load_image(celebrity.images[0])[0, 0].tolist() == [40, 50, 60]
    data["questions"][1]["data_source"] = "coco"
    (tmp_path / "SEED-Bench_v2_level1_2_3.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"questions\[1\]: data_source 'coco'"):
        read_benchmark("seed", tmp_path)
    del data["questions"][1]["data_source"]
    (tmp_path / "SEED-Bench_v2_level1_2_3.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"questions\[1\]: missing field 'data_source'"):
        read_benchmark("seed", tmp_path)


def test_mmstar_in_vlmevalkit_columns(tmp_path):
    image = base64.b64encode(_png()).decode()
    header = ["index", "question", "A", "B", "C", "D", "answer", "category", "l2_category", "image"]
    _tsv(tmp_path / "MMStar.tsv", header, [[0, "Which object?", "a cup", "a box", "a lamp", "a dog", "B",
                                             "coarse perception", "image scene", image]])  # fmt: skip
    (sample,) = read_benchmark("mmstar", tmp_path)
    assert dict(sample.options) == {"A": "a cup", "B": "a box", "C": "a lamp", "D": "a dog"}
    assert score_reply(sample.metric, "The answer is a box", sample.answers, dict(sample.options)) == 1.0
