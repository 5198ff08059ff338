"""Pruning: q/k-only features equal the full forward's, gather == mask == physically absent tokens,
keep_ratio 1 == unpruned, one compile per bucket, and bad input."""

from __future__ import annotations

import logging

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conversion.verify import random_batch
from tokcomp_jax.mapper import Mapper, MapperConfig
from tokcomp_jax.models.common.rope import apply_rotary, vision_rope
from tokcomp_jax.prune import Buckets, PruneConfig, keep_count, prepare_pruning, prune_embeddings, pruned_forward
from tokcomp_jax.prune import scorers as scorer_module
from tokcomp_jax.prune.features import first_layer_features

ATOL = 1e-5  # float32, highest matmul precision: the same arithmetic in a different order
BUCKETS = Buckets(text=24, visual=64, queries=8)
ROWS = [[("image", 112, 84)], [("image", 56, 112), ("image", 56, 56)], [("video", 4, 56, 84)]]
INPUT_SCORERS = ["mapper", "attention", "random", "stride", "oracle", "dart_input", "vision_attention", "visionzip"]


@pytest.fixture(scope="module")
def setup(tiny_qwen2vl):
    _, _, model = tiny_qwen2vl
    batch = random_batch(model.config, ROWS, seed=3, text_length=5)
    heads = model.config.text.num_attention_heads
    mapper = Mapper(
        MapperConfig(layout="grid", input_channels="heads", num_heads=heads, channels=(8, 16)), rngs=nnx.Rngs(0)
    )
    counts = [
        int(n)
        for n in (batch["input_ids"] == model.config.image_token_id).sum(1)
        + (batch["input_ids"] == model.config.video_token_id).sum(1)
    ]
    relevance = [np.random.default_rng(i).random(n).astype(np.float32) for i, n in enumerate(counts)]
    inputs, scoring = prepare_pruning(model.config, batch, BUCKETS, mapper=mapper, relevance=relevance)
    return model, mapper, inputs, scoring


def _real(values, mask):
    return np.asarray(values)[np.asarray(mask).astype(bool)]


def test_features_from_q_k_equal_the_full_forward_attention(setup):
    model, _, inputs, scoring = setup
    full = np.asarray(model(inputs, return_first_layer_attention=True).first_layer_attention)  # [B, H, T, T]
    ours = np.asarray(
        first_layer_features(model, model.embed(inputs), inputs.position_ids, inputs.attention_mask, scoring.layout)
    )
    layout = scoring.layout
    for row in range(full.shape[0]):
        visual = np.asarray(layout.visual_positions[row])
        queries = np.asarray(layout.query_positions[row])
        visual, queries = visual[visual >= 0], queries[queries >= 0]
        expected = full[row][:, queries][:, :, visual].mean(1)  # [H, n]
        np.testing.assert_allclose(ours[row][:, : visual.size], expected, atol=1e-7, rtol=1e-5)
        assert (ours[row][:, visual.size :] == 0).all()


@pytest.mark.parametrize("mode", ["mask", "gather"])
def test_keep_ratio_one_equals_unpruned(setup, mode):
    model, mapper, inputs, scoring = setup
    unpruned = model(inputs).logits
    out = pruned_forward(model, mapper, inputs, scoring, PruneConfig("attention", 1.0, mode))
    np.testing.assert_allclose(_real(out.logits, out.attention_mask), _real(unpruned, inputs.attention_mask), atol=ATOL)


@pytest.mark.parametrize(
    ("scorer", "keep_ratio"),
    [
        *zip(INPUT_SCORERS, [0.5, 0.111, 0.25, 0.5, 0.111, 0.25, 0.5, 0.25], strict=True),
        ("fastv", 0.5),
        ("fastv", 0.111),
    ],
)
def test_gather_equals_mask(setup, scorer, keep_ratio):
    model, mapper, inputs, scoring = setup
    masked = pruned_forward(model, mapper, inputs, scoring, PruneConfig(scorer, keep_ratio, "mask", layer=1))
    gathered = pruned_forward(model, mapper, inputs, scoring, PruneConfig(scorer, keep_ratio, "gather", layer=1))
    np.testing.assert_array_equal(masked.selection.kept_slots, gathered.selection.kept_slots)
    np.testing.assert_allclose(
        _real(gathered.logits, gathered.attention_mask), _real(masked.logits, masked.attention_mask), atol=ATOL
    )
    kept = np.asarray(masked.selection.kept_valid).sum(1)
    counts = np.asarray(scoring.layout.visual_count)
    assert kept.tolist() == [keep_count(keep_ratio, int(n)) for n in counts]


def test_pruned_equals_the_model_on_a_sequence_without_the_dropped_tokens(setup):
    """Built independently: numpy deletes the dropped positions from the unpruned embeddings and M-RoPE ids."""
    model, mapper, inputs, scoring = setup
    out = pruned_forward(model, mapper, inputs, scoring, PruneConfig("mapper", 0.25, "gather"))
    embeds = np.asarray(model.embed(inputs))
    positions = np.asarray(inputs.position_ids)
    layout = scoring.layout
    for row in range(embeds.shape[0]):
        visual = np.asarray(layout.visual_positions[row])
        slots = np.asarray(out.selection.kept_slots[row])[np.asarray(out.selection.kept_valid[row])]
        dropped = np.setdiff1d(visual[visual >= 0], visual[slots])
        real = np.flatnonzero(np.asarray(inputs.attention_mask[row]))
        keep = np.setdiff1d(real, dropped)
        alone = model.forward_embeddings(
            jnp.asarray(embeds[row : row + 1, keep]), jnp.asarray(positions[:, row : row + 1, keep]),
            jnp.ones((1, keep.size), jnp.int32),
        )  # fmt: skip
        np.testing.assert_allclose(np.asarray(out.logits[row, : keep.size]), np.asarray(alone.logits[0]), atol=ATOL)


def test_selection_keeps_the_highest_scores_in_original_order(setup):
    model, mapper, inputs, scoring = setup
    out = pruned_forward(model, mapper, inputs, scoring, PruneConfig("oracle", 0.25, "gather"))
    relevance = np.asarray(scoring.relevance)
    for row, count in enumerate(np.asarray(scoring.layout.visual_count)):
        slots = np.asarray(out.selection.kept_slots[row])[np.asarray(out.selection.kept_valid[row])]
        expected = np.sort(np.argsort(-relevance[row, :count], kind="stable")[: keep_count(0.25, int(count))])
        np.testing.assert_array_equal(slots, expected)


def test_vision_attention_is_the_attention_received_in_the_last_vision_block(setup):
    """Recomputed here from the vision blocks: received attention is the mean over heads and same-image
    queries, then over each 2x2 window; keys are the last block's after rotary, mean over heads and window."""
    model, _, inputs, scoring = setup
    visual = model.visual
    x = visual.patch_embed(inputs.pixel_values)[None]  # packed patches: one block
    cos, sin = vision_rope(inputs.patch_positions[None], visual.config.head_dim, visual.config.rope_theta)
    segments = np.asarray(inputs.patch_segment_ids)
    for block in visual.blocks:
        before = x
        x, probs = block(x, cos, sin, jnp.asarray(segments[:, None] == segments[None, :])[None])
    probs = np.asarray(probs)[0].mean(0)  # [P, P]
    per_patch = np.array([probs[segments == segments[p], p].mean() for p in range(len(segments))])
    per_token = per_patch.reshape(-1, 4).mean(-1)
    heads = visual.config.num_heads
    keys = block.attn.qkv(block.norm1(before)).reshape(1, len(segments), 3, heads, -1)[:, :, 1]
    keys = np.asarray(apply_rotary(keys, cos, sin))[0].mean(1)  # [P, d]
    keys = keys.reshape(-1, 4, keys.shape[-1]).mean(1)
    _, vision = model.embed(inputs, return_vision_attention=True)
    index = np.asarray(inputs.visual_token_index)
    received = np.asarray(vision.received)
    np.testing.assert_allclose(received[index >= 0], per_token[index[index >= 0]], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(vision.keys)[index >= 0], keys[index[index >= 0]], atol=1e-6)
    assert (received[index < 0] == 0).all() and (np.asarray(vision.keys)[index < 0] == 0).all()


def test_stride_spreads_kept_tokens_evenly(setup):
    model, mapper, inputs, scoring = setup
    out = pruned_forward(model, mapper, inputs, scoring, PruneConfig("stride", 0.25, "gather"))
    count = int(scoring.layout.visual_count[0])
    slots = np.asarray(out.selection.kept_slots[0])[np.asarray(out.selection.kept_valid[0])]
    keep = keep_count(0.25, count)
    np.testing.assert_array_equal(slots, (np.arange(keep) * count) // keep)


def test_images_of_several_sizes_in_one_bucket_compile_once(tiny_qwen2vl, monkeypatch):
    _, _, model = tiny_qwen2vl
    traces = []
    original = scorer_module.attention_scores
    monkeypatch.setattr(scorer_module, "attention_scores", lambda *a: traces.append(1) or original(*a))
    config = PruneConfig("attention", 0.5, "gather")
    for seed, rows in enumerate([[[("image", 112, 112)]], [[("image", 56, 84)]], [[("image", 84, 140)]]]):
        inputs, scoring = prepare_pruning(model.config, random_batch(model.config, rows, seed=seed), BUCKETS)
        pruned_forward(model, None, inputs, scoring, config)
    assert len(traces) == 1


def test_no_visual_tokens_is_a_logged_no_op(tiny_qwen2vl, caplog):
    _, _, model = tiny_qwen2vl
    batch = random_batch(model.config, [[]], seed=0, text_length=9)
    with caplog.at_level(logging.INFO, logger="tokcomp_jax.prune.pruner"):
        inputs, scoring = prepare_pruning(model.config, batch, BUCKETS)
    assert "no visual tokens" in caplog.text
    out = pruned_forward(model, None, inputs, scoring, PruneConfig("attention", 0.25, "gather"))
    np.testing.assert_allclose(
        _real(out.logits, out.attention_mask), _real(model(inputs).logits, inputs.attention_mask), atol=ATOL
    )


def test_bad_input(setup, tiny_qwen2vl):
    model, mapper, inputs, scoring = setup
    for ratio in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="keep_ratio must be in"):
            PruneConfig("attention", ratio)
    assert keep_count(1e-9, 10) == 1  # a positive ratio always keeps at least one token per image
    with pytest.raises(ValueError, match="unknown scorer"):
        PruneConfig("magic")
    batch = random_batch(model.config, ROWS[:1], seed=0)
    other = Mapper(MapperConfig(num_heads=4, channels=(8,), family="llava_onevision"), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="trained on 'llava_onevision' attention"):
        prepare_pruning(model.config, batch, BUCKETS, mapper=other)
    with pytest.raises(ValueError, match="more than the bucket 8"):
        prepare_pruning(model.config, batch, Buckets(text=24, visual=8))
    with pytest.raises(ValueError, match="exceeds the bucket"):
        prepare_pruning(model.config, batch, Buckets(text=2, visual=4))
    with pytest.raises(ValueError, match="needs a mapper"):
        prune_embeddings(model, None, inputs, scoring, PruneConfig("mapper", 0.5))
