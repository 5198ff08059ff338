"""Slices of a miniature run's records: evidence position, token-count terciles, retention and recall."""

from __future__ import annotations

import numpy as np
import pytest

from tokcomp_jax.miniature.slices import (
    evidence_position,
    length_terciles,
    question_kind,
    slice_markdown,
    slice_rows,
)


def record(kind: str, tokens: int, evidence: list[int], unpruned: bool, pruned: bool, kept: list[int]) -> dict:
    mask = lambda indices: np.isin(np.arange(tokens), indices)  # noqa: E731
    return {
        "kind": f"cluttered_digits_vqa/{kind}",
        "visual_tokens": tokens,
        "evidence": mask(evidence),
        "correct": {"unpruned": unpruned, "m@0.5": pruned},
        "kept": {"m@0.5": mask(kept)},
    }


@pytest.mark.parametrize(("evidence", "third"), [([0], "first third"), ([4], "middle third"), ([8], "last third"),
                                                  ([0, 8], "middle third"), ([5, 6], "last third")])  # fmt: skip
def test_evidence_position_is_the_third_of_the_mean_evidence_index(evidence, third):
    assert evidence_position(record("sum", 9, evidence, True, True, [])) == third


def test_length_terciles_name_each_range_and_sort_by_count():
    records = [record("sum", n, [0], True, True, [0]) for n in (100, 16, 20, 25, 25, 30, 36, 64, 9)]
    length = length_terciles(records)
    assert [length(r) for r in records[:3]] == ["36-100 tokens", "9-20 tokens", "9-20 tokens"]
    rows = slice_rows(records, length, ["m"], [0.5])
    assert [row["slice"] for row in rows] == ["9-20 tokens", "25-30 tokens", "36-100 tokens"]  # by count, not name
    assert [row["samples"] for row in rows] == [3, 3, 3]
    same = [record("sum", 36, [0], True, True, [0])] * 4
    assert {length_terciles(same)(r) for r in same} == {"36 tokens"}


def test_slice_rows_count_retention_and_recall_within_each_slice():
    records = [
        record("sum", 4, [0, 1], unpruned=True, pruned=True, kept=[0]),  # recall 0.5
        record("sum", 4, [2], unpruned=True, pruned=False, kept=[0]),  # recall 0
        record("relation", 4, [3], unpruned=False, pruned=True, kept=[3]),  # right only when pruned
        record("relation", 4, [3], unpruned=True, pruned=True, kept=[3]),
        record("relation", 4, [], unpruned=True, pruned=False, kept=[]),  # no evidence: left out
    ]
    rows = {row["slice"]: row for row in slice_rows(records, question_kind, ["m"], [0.5])}
    assert list(rows) == ["relation", "sum"]
    assert rows["sum"]["samples"] == 2 and rows["sum"]["unpruned"] == 100.0
    assert rows["sum"]["m@0.5"] == (50.0, 25.0)
    assert rows["relation"]["samples"] == 2 and rows["relation"]["unpruned"] == 50.0
    assert rows["relation"]["m@0.5"] == (200.0, 100.0)
    table = slice_markdown(list(rows.values()), ["m"], [0.5], "test, by question kind")
    assert "| sum | 2 | 100.0 | 50 (25) |" in table and table.startswith("#### test, by question kind")
