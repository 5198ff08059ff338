"""The label dataset: TFDS round trip without TensorFlow, and rejected examples."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tokcomp_jax.data.labels import check_example, read_split, write_label_dataset
from tokcomp_jax.data.synthetic_labels import synthetic_split


def test_round_trip_through_tfds_without_tensorflow(tmp_path):
    splits = {"train": synthetic_split(0, 5, (2, 4), prefix="t"), "validation": synthetic_split(1, 2, (5, 6))}
    splits["train"][2]["answer_correct"] = False
    directory = write_label_dataset(tmp_path, splits)
    assert "tensorflow" not in sys.modules
    train = read_split(directory, "train")
    assert [e["sample_id"] for e in train] == [f"t-{i:06d}" for i in range(5)]
    for read, written in zip(train, splits["train"], strict=True):
        np.testing.assert_array_equal(read["features"], written["features"])
        np.testing.assert_array_equal(read["relevance"], written["relevance"])
        np.testing.assert_array_equal(read["token_grid_thw"], written["token_grid_thw"])
        assert bool(read["answer_correct"]) == written["answer_correct"]
    assert len(read_split(tmp_path, "validation")) == 2  # the parent data_dir works too


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: dict(e, relevance=np.zeros(0, np.float32), features=np.zeros((4, 0), np.float32)), "no visual"),
        (lambda e: dict(e, relevance=np.where(np.arange(e["relevance"].size) == 0, np.nan, e["relevance"])), "finite"),
        (lambda e: dict(e, relevance=-e["relevance"]), "non-negative"),
        (lambda e: dict(e, features=e["features"][:, :-1]), "features cover"),
        (lambda e: dict(e, token_grid_thw=np.array([[1, 1, 1]])), "token_grid_thw"),
    ],
)
def test_bad_examples_are_rejected(change, message):
    example = synthetic_split(2, 1, (3, 3))[0]
    check_example(example)
    with pytest.raises(ValueError, match=message):
        check_example(change(example))


def test_reading_a_missing_dataset_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no label dataset"):
        read_split(tmp_path, "train")
