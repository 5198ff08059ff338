"""Pruning LLaVA-OneVision: row newlines are never pruned, the overview tile and the grid tiles are
scored together, gather == mask, keep 1 == unpruned, pruned generation, and the grid-mapper error."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from configs.models.llava_onevision import tiny
from tests.prune.family_batches import llava_batch
from tokcomp_jax.generate import generate
from tokcomp_jax.mapper import Mapper, MapperConfig
from tokcomp_jax.models.llava_onevision.modeling import LlavaOnevision
from tokcomp_jax.prune import Buckets, PruneConfig, prepare_pruning, pruned_forward

ATOL = 1e-5  # float32, highest matmul precision: the same arithmetic in a different order
BUCKETS = Buckets(text=32, visual=96, queries=8, tiles=8)
SIZES = [(40, 100), (100, 60)]  # a wide and a tall image, one per row


@pytest.fixture(scope="module")
def setup():
    config = tiny()
    model = LlavaOnevision(config, rngs=nnx.Rngs(0))
    mapper = Mapper(MapperConfig(num_heads=4, channels=(8,), family="llava_onevision"), rngs=nnx.Rngs(1))
    return model, mapper, llava_batch(config, SIZES)


def test_newlines_are_never_pruned_and_gather_equals_mask(setup):
    model, mapper, batch = setup
    inputs, scoring = prepare_pruning(model.config, batch, BUCKETS, mapper=mapper)
    newlines = np.asarray(inputs.newline_mask)
    candidates = np.asarray(scoring.layout.visual_count)
    image_tokens = (batch["input_ids"] == model.config.image_token_id).sum(1)
    assert (candidates == image_tokens - newlines.sum(1)).all() and newlines.sum() > 0
    for scorer in ("mapper", "attention"):
        mask = pruned_forward(model, mapper, inputs, scoring, PruneConfig(scorer, 0.25, mode="mask"))
        gather = pruned_forward(model, mapper, inputs, scoring, PruneConfig(scorer, 0.25, mode="gather"))
        keep = np.asarray(mask.selection.keep_position)
        assert keep[newlines].all()  # every newline survives; only candidates are dropped
        dropped = np.asarray(inputs.attention_mask).sum(1) - keep.sum(1)
        np.testing.assert_array_equal(dropped, candidates - -(-candidates // 4))
        for row in range(keep.shape[0]):
            kept_logits = np.asarray(mask.logits[row])[keep[row]]
            gathered = np.asarray(gather.logits[row])[: keep[row].sum()]
            np.testing.assert_allclose(gathered, kept_logits, atol=ATOL)
    full = model(inputs).logits
    whole = pruned_forward(model, mapper, inputs, scoring, PruneConfig("mapper", 1.0, mode="gather"))
    real = np.asarray(inputs.attention_mask).astype(bool)
    np.testing.assert_allclose(np.asarray(whole.logits)[real], np.asarray(full)[real], atol=ATOL)


def test_pruned_generation_prefills_fewer_tokens(setup):
    model, mapper, batch = setup
    inputs, scoring = prepare_pruning(model.config, batch, BUCKETS, mapper=mapper)
    full = generate(model, inputs, max_new_tokens=3, eos_token_id=-1)
    pruned = generate(model, inputs, max_new_tokens=3, eos_token_id=-1, mapper=mapper, scoring=scoring,
                      prune=PruneConfig("mapper", 0.5))  # fmt: skip
    count = np.asarray(scoring.layout.visual_count)
    np.testing.assert_array_equal(
        np.asarray(full.prefill_length) - np.asarray(pruned.prefill_length), count - -(-count // 2)
    )


def test_grid_mapper_is_a_clear_error(setup):
    model, _, batch = setup
    grid = Mapper(MapperConfig(layout="grid", num_heads=4, channels=(8,), family="llava_onevision"), rngs=nnx.Rngs(1))
    with pytest.raises(ValueError, match="sequence layout"):
        prepare_pruning(model.config, batch, BUCKETS, mapper=grid)
