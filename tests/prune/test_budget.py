"""Per-sample budgets (prune/budget.py): each sample's count is the fewest top tokens holding TAU of its
score mass, clipped to [MIN * n, keep * n], chosen inside the keep ratio's static slots (no new shapes,
one compile), equal in gather and mask mode."""

from __future__ import annotations

import numpy as np
import pytest

from conversion.verify import random_batch
from tests.prune.test_pruning import ATOL, BUCKETS, ROWS, setup  # noqa: F401  (the fixture)
from tokcomp_jax.prune import PruneConfig, keep_count, prepare_pruning, pruned_forward, pruner
from tokcomp_jax.prune.budget import Budget, budget_keep, score_mass
from tokcomp_jax.prune.pruner import visual_scores


class Layout:  # what budget_keep reads of a VisualLayout
    def __init__(self, counts, slots):
        self.visual_mask = np.arange(slots)[None] < np.asarray(counts)[:, None]
        self.visual_count = np.asarray(counts)


def expected_count(mass: np.ndarray, tau: float, floor: int, ceiling: int) -> int:
    """Plain numpy: the first count of top tokens whose mass reaches tau, clipped."""
    running = np.cumsum(np.sort(mass)[::-1])
    return int(np.clip(np.flatnonzero(running >= tau - 1e-6)[0] + 1, min(floor, ceiling), ceiling))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("fixed", Budget()), ("mass:0.9", Budget("mass", 0.9)), ("mass:0.8:0.05", Budget("mass", 0.8, 0.05))],
)
def test_budgets_parse(text, expected):
    assert Budget.parse(text) == expected


@pytest.mark.parametrize("text", ["mass", "mass:0", "mass:1.5", "mass:0.9:2", "mass:x", "fixed:0.5", "top:0.5", ""])
def test_impossible_budgets_are_refused_naming_the_form(text):
    with pytest.raises(ValueError, match="expected 'fixed', 'mass:TAU' or 'mass:TAU:MIN'"):
        Budget.parse(text)


def test_the_count_is_the_fewest_top_tokens_holding_tau_clipped():
    scores = np.array(
        [[0.1, 0.5, 0.3, 0.1, 0.0, 0.0], [0.2, 0.2, 0.2, 0.2, 0.2, 0.0], [1.0, 0, 0, 0, 0, 0]], np.float32
    )
    layout = Layout([4, 5, 6], 6)
    keep = np.asarray(budget_keep(scores, layout, 1.0, Budget("mass", 0.8), "scores"))
    np.testing.assert_array_equal(keep, [2, 4, 1])  # 0.5 + 0.3; four fifths; one token holds it all
    capped = np.asarray(budget_keep(scores, layout, 0.5, Budget("mass", 0.8), "scores"))
    np.testing.assert_array_equal(capped, [2, 3, 1])  # at most ceil(0.5 n)
    floored = np.asarray(budget_keep(scores, layout, 1.0, Budget("mass", 0.8, 0.5), "scores"))
    np.testing.assert_array_equal(floored, [2, 4, 3])  # at least ceil(0.5 n)
    logits = np.log(np.maximum(scores, 1e-30))  # the softmax of log-mass is the mass again
    np.testing.assert_array_equal(np.asarray(budget_keep(logits, layout, 1.0, Budget("mass", 0.8), "softmax")), keep)


def test_mass_is_a_share_of_the_real_tokens():
    scores = np.array([[3.0, -1.0, 1.0, 9.0]], np.float32)
    layout = Layout([3], 4)
    np.testing.assert_allclose(np.asarray(score_mass(scores, layout.visual_mask, "scores")), [[0.75, 0, 0.25, 0]])
    softmax = np.exp([3.0, -1.0, 1.0]) / np.exp([3.0, -1.0, 1.0]).sum()
    np.testing.assert_allclose(np.asarray(score_mass(scores, layout.visual_mask, "softmax"))[0, :3], softmax, 1e-6)


@pytest.mark.parametrize(("scorer", "tau"), [("attention", 0.2), ("mapper", 0.2), ("oracle", 0.3)])
def test_pruned_forward_keeps_each_samples_count_in_static_slots(setup, scorer, tau):  # noqa: F811
    model, mapper, inputs, scoring = setup
    config = PruneConfig(scorer, 0.5, "gather", budget=f"mass:{tau}")
    out = pruned_forward(model, mapper, inputs, scoring, config)
    masked = pruned_forward(model, mapper, inputs, scoring, PruneConfig(scorer, 0.5, "mask", budget=f"mass:{tau}"))
    np.testing.assert_array_equal(out.selection.kept_slots, masked.selection.kept_slots)
    real = lambda o: np.asarray(o.logits)[np.asarray(o.attention_mask).astype(bool)]  # noqa: E731
    np.testing.assert_allclose(real(out), real(masked), atol=ATOL)

    slots = out.selection.kept_slots.shape[1]
    assert slots == keep_count(0.5, scoring.layout.visual_positions.shape[1])  # the fixed budget's slots
    scores = np.asarray(visual_scores(model, mapper, model.embed(inputs), None, inputs, scoring, config))
    counts = np.asarray(scoring.layout.visual_count)
    kept = np.asarray(out.selection.kept_valid).sum(-1)
    for row, count in enumerate(counts):
        real_scores = scores[row, :count].astype(np.float64)
        mass = np.exp(real_scores - real_scores.max()) if scorer == "mapper" else np.maximum(real_scores, 0)
        expected = expected_count(mass / mass.sum(), tau, 1, keep_count(0.5, int(count)))
        assert kept[row] == expected, (row, kept[row], expected)
        top = np.argsort(-scores[row, :count], kind="stable")[:expected]
        assert sorted(np.asarray(out.selection.kept_slots[row])[: kept[row]].tolist()) == sorted(top.tolist())
    assert (kept < [keep_count(0.5, int(n)) for n in counts]).any()  # some sample needs fewer than the ceiling


def test_tau_one_is_the_fixed_budget(setup):  # noqa: F811
    model, mapper, inputs, scoring = setup
    fixed = pruned_forward(model, mapper, inputs, scoring, PruneConfig("oracle", 0.25))
    full_mass = pruned_forward(model, mapper, inputs, scoring, PruneConfig("oracle", 0.25, budget="mass:1.0"))
    np.testing.assert_array_equal(full_mass.selection.kept_slots, fixed.selection.kept_slots)


def test_budgets_compile_once_per_setting(setup, monkeypatch):  # noqa: F811
    """Two batches of other pixels and prompts in the same bucket, whose samples need other counts,
    share one compiled graph (counted by the traces of the budget's count)."""
    model, mapper, inputs, scoring = setup
    tokens = np.asarray(scoring.layout.visual_count)
    peaked = [np.eye(1, int(n), row, dtype=np.float32)[0] for row, n in enumerate(tokens)]  # one token holds it all
    batch = random_batch(model.config, ROWS, seed=11, text_length=5)
    other_inputs, other_scoring = prepare_pruning(model.config, batch, BUCKETS, mapper=mapper, relevance=peaked)
    traces = []
    monkeypatch.setattr(pruner, "budget_keep", lambda *a: traces.append(1) or budget_keep(*a))
    config = PruneConfig("oracle", 0.5, budget="mass:0.5")
    counts = [
        np.asarray(pruned_forward(model, mapper, i, s, config).selection.kept_valid.sum(-1)).tolist()
        for i, s in ((inputs, scoring), (other_inputs, other_scoring))
    ]
    assert len(traces) == 1 and counts[1] == [1, 1, 1] and counts[0] != counts[1], counts


@pytest.mark.parametrize("scorer", ["random", "stride", "divprune", "visionzip", "fastv"])
def test_a_budget_needs_a_score_mass(scorer):
    with pytest.raises(ValueError, match=f"needs a score mass; the '{scorer}' scorer has none"):
        PruneConfig(scorer, 0.5, budget="mass:0.9")
