"""The generic jsonl + media builder: round trip of a generated split, and clear errors on bad lines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tokcomp_jax.data import vqa
from tokcomp_jax.data.jsonl_vqa import build_jsonl, export_jsonl, read_jsonl_examples
from tokcomp_jax.data.scenes_vqa import SyntheticScenesVqa


def test_exported_split_reads_back_identically(tmp_path):
    generated = vqa.read_examples(vqa.build(SyntheticScenesVqa, tmp_path / "gen", "tiny"), "test")
    path = export_jsonl(generated, tmp_path / "bench", "test")
    examples = read_jsonl_examples(build_jsonl({"test": path}, tmp_path / "tfds", name="bench"), "test")
    assert [e["sample_id"] for e in examples] == [g["sample_id"] for g in generated]
    for example, original in zip(examples, generated, strict=True):
        assert example["question"] == original["question"] and example["answers"] == [original["answer"]]
        np.testing.assert_array_equal(example["images"][0], original["image"])
        np.testing.assert_array_equal(example["evidence"], original["evidence"])
        assert example["frames"] == [] and example["options"] == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"id": "a", "question": "", "answer": "x"}), "'question' must be a non-empty string"),
        (json.dumps({"id": "a", "question": "q"}), "needs 'answers'"),
        (json.dumps({"id": "a", "question": "q", "answer": "x", "image": "missing.png"}), "does not exist"),
        (json.dumps({"id": "a", "question": "q", "answer": "x", "image": "bad.png"}), "not an image PIL can read"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, line, message):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    path = tmp_path / "split.jsonl"
    path.write_text(json.dumps({"id": "ok", "question": "q", "answer": "x"}) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message) as error:
        build_jsonl({"test": path}, tmp_path / "tfds", name="bad")
    assert "split.jsonl:2" in str(error.value)
