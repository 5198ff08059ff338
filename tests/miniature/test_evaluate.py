"""The evaluation harness: equal to prune.pruned_forward per (scorer, keep ratio), and its summary arithmetic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tokcomp_jax.miniature.evaluate import (
    METHODS,
    EvalSettings,
    answers_after_selection,
    evaluate_split,
    last_token_answers,
    retention_error,
    score_all,
    summarise,
)
from tokcomp_jax.miniature.report import matched_flops_table
from tokcomp_jax.miniature.samples import Samples, collate
from tokcomp_jax.models.layout import Buckets
from tokcomp_jax.prune.pruner import PruneConfig, prepare_pruning, pruned_forward

SETTINGS = EvalSettings(text_bucket=20, visual_buckets=(36,), batch_size=4, keep_ratios=(0.5, 0.25), prune_layer=1)


@pytest.fixture(scope="module")
def batch(mini_model, mini_mapper, mini_splits):
    samples = Samples(mini_model.config, mini_splits["test_2x"])[0:4]
    buckets = Buckets(text=20, visual=36, queries=20, frame_patches=144)
    relevance = [np.random.default_rng(i).random(s["evidence"].size).astype(np.float32) for i, s in enumerate(samples)]
    inputs, scoring = prepare_pruning(
        mini_model.config, collate(samples), buckets, mapper=mini_mapper, relevance=relevance
    )
    return samples, inputs, scoring


@pytest.mark.parametrize("scorer", ["mapper", "vision_attention", "visionzip"])
def test_score_once_then_select_equals_pruned_forward(mini_model, mini_mapper, batch, scorer):
    """VisionZip's scores depend on the ratio and its kept tokens carry merged embeddings."""
    samples, inputs, scoring = batch
    evidence = np.zeros((4, 36), np.float32)
    embeds, unpruned, scores, merged = score_all(mini_model, mini_mapper, inputs, scoring, evidence, (scorer,), (0.25,))
    key = f"{scorer}@0.25" if scorer == "visionzip" else scorer
    assert set(merged) == ({key} if scorer == "visionzip" else set())
    answers, slots, valid = answers_after_selection(
        mini_model, merged.get(key, embeds), inputs, scoring.layout, scores[key], 0.25
    )
    reference = pruned_forward(mini_model, mini_mapper, inputs, scoring, PruneConfig(scorer, 0.25, "gather"))
    np.testing.assert_array_equal(slots, reference.selection.kept_slots)
    np.testing.assert_array_equal(answers, last_token_answers(reference.logits, reference.attention_mask))
    full = pruned_forward(mini_model, mini_mapper, inputs, scoring, PruneConfig("random", 1.0, "gather"))
    np.testing.assert_array_equal(unpruned, last_token_answers(full.logits, full.attention_mask))


def test_ground_truth_keeps_the_evidence_first(mini_model, mini_mapper, mini_splits):
    examples = mini_splits["test"]
    oracle = {e["sample_id"]: np.ones(int(np.prod(e["image"].shape[:2])) // 28**2, np.float32) for e in examples}
    records = evaluate_split(mini_model, mini_mapper, examples, oracle, SETTINGS)
    assert len(records) == len(examples)
    for record in records:
        evidence, kept = record["evidence"], record["kept"]["ground_truth@0.5"]
        assert kept.sum() == int(np.ceil(0.5 * record["visual_tokens"] - 1e-4))
        assert kept[evidence].sum() == min(evidence.sum(), kept.sum())
        assert set(record["correct"]) == {"unpruned"} | {f"{m}@{k}" for m in METHODS for k in SETTINGS.keep_ratios}


def test_budgets_run_beside_the_fixed_keep_of_every_scorer_with_a_mass(mini_model, mini_mapper, mini_splits):
    """Each budget is a row of its own ("method+budget"), whose samples keep at most the fixed count and
    whose FLOPs count what they kept."""
    examples = mini_splits["test"][:8]
    oracle = {e["sample_id"]: np.ones(int(np.prod(e["image"].shape[:2])) // 28**2, np.float32) for e in examples}
    settings = dataclasses.replace(SETTINGS, methods=("attention", "random"), budgets=("mass:0.3",))
    records = evaluate_split(mini_model, mini_mapper, examples, oracle, settings)
    for record in records:
        for keep in settings.keep_ratios:
            budgeted, fixed = record["kept"][f"attention+mass:0.3@{keep}"], record["kept"][f"attention@{keep}"]
            assert 1 <= budgeted.sum() <= fixed.sum()
        assert not any(key.startswith("random+") for key in record["kept"])  # random has no mass
    summary = summarise(records, mini_model.config, settings)
    for keep in ("0.5", "0.25"):
        budget, fixed = summary["methods"]["attention+mass:0.3"][keep], summary["methods"]["attention"][keep]
        assert budget["flops"] <= fixed["flops"] and budget["kept"] <= fixed["kept"]
    assert summary["methods"]["attention+mass:0.3"]["0.5"]["kept"] < summary["methods"]["attention"]["0.5"]["kept"]


def test_missing_oracle_labels_are_named(mini_model, mini_mapper, mini_splits):
    with pytest.raises(ValueError, match="no oracle relevance labels"):
        evaluate_split(mini_model, mini_mapper, mini_splits["test"], {}, SETTINGS)


def test_summary_retention_recall_coverage_and_flops(mini_model):
    def record(sample_id, correct_unpruned, correct_pruned, evidence, kept):
        keys = [f"{m}@{k}" for m in METHODS for k in SETTINGS.keep_ratios]
        return {
            "sample_id": sample_id, "kind": "colour", "visual_tokens": 4, "text_tokens": 6,
            "evidence": np.array(evidence, bool),
            "correct": {"unpruned": correct_unpruned, **dict.fromkeys(keys, correct_pruned)},
            "kept": dict.fromkeys(keys, np.array(kept, bool)),
        }  # fmt: skip

    records = [  # image 0: both questions' evidence kept; image 1: only its first question's
        record("d-test-000000-a", True, True, [1, 0, 0, 0], [1, 0, 1, 0]),
        record("d-test-000000-b", True, False, [0, 0, 1, 0], [1, 0, 1, 0]),
        record("d-test-000001-a", False, False, [1, 1, 0, 0], [1, 1, 0, 0]),
        record("d-test-000001-b", True, True, [0, 0, 1, 1], [1, 1, 0, 0]),
    ]
    summary = summarise(records, mini_model.config, SETTINGS)
    row = summary["methods"]["mapper"]["0.5"]
    assert summary["unpruned_accuracy"] == pytest.approx(3 / 4)
    assert row["accuracy"] == pytest.approx(2 / 4) and row["retention"] == pytest.approx(100 * 2 / 3)
    assert row["ground_truth_recall"] == pytest.approx((1 + 1 + 1 + 0) / 4)
    assert row["paired_coverage"] == pytest.approx(1 / 2)
    assert 50.0 < row["flops"] < 100.0  # 8 of 10 tokens: linear terms at 80%, attention at 64%
    assert summary["methods"]["fastv"]["0.5"]["flops"] > row["flops"]  # FastV runs its first layer in full
    # Matched compute: FastV (K=1 of 4 layers; 10 tokens, then 8 or 7) is nearest the input keep 0.5
    # (8 tokens in every layer) at both its keep ratios, never 0.25 (7 tokens everywhere).
    fastv_rows = [line for line in matched_flops_table(summary, SETTINGS.keep_ratios).splitlines() if "FastV" in line]
    assert len(fastv_rows) == 2 and all("| 0.5 (" in line for line in fastv_rows)


def test_retention_error_is_the_spread_of_retention_over_resampled_questions():
    rng = np.random.default_rng(0)
    unpruned = (rng.random(400) < 0.9).astype(float)
    pruned = unpruned * (rng.random(400) < 0.9)  # pruning loses about a tenth of the right answers
    resampled = []
    for _ in range(2000):
        pick = rng.integers(400, size=400)
        resampled.append(100 * pruned[pick].mean() / unpruned[pick].mean())
    assert retention_error(pruned, unpruned) == pytest.approx(np.std(resampled), rel=0.1)
    assert np.isnan(retention_error(pruned[:1], unpruned[:1]))
