"""FastV, PyramidDrop and DART inside the LLM equal a direct per-sample reference: a plain loop over
the layers (each a DecoderLayer of its own) that deletes the dropped tokens from the sequence and
keeps their positions, with each method's rule written out as its repository's code reads; greedy
generation after in-LLM pruning equals full forwards of that reference over the same kept tokens;
one compile per bucket and setting."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tokcomp_jax.benchmark import random_image_batch
from tokcomp_jax.generate import generate
from tokcomp_jax.models.common.decoder import causal_mask
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.models.qwen2_vl.modeling import Qwen2VL
from tokcomp_jax.prune import Buckets, PruneConfig, keep_count, prepare_pruning, pruned_forward
from tokcomp_jax.prune.in_llm import LayerPruning, layer_pruning

ATOL = 1e-5  # float32, highest matmul precision: the same arithmetic in another order
BUCKETS = Buckets(text=16, visual=40, queries=8, frame_patches=160)
GRIDS = [(8, 12), (12, 8), (4, 8)]  # 24, 24 and 8 visual tokens


@pytest.fixture(scope="module")
def setup():
    base = Qwen2VLConfig.tiny()
    config = dataclasses.replace(base, text=dataclasses.replace(base.text, num_hidden_layers=8))
    model = Qwen2VL(config, rngs=nnx.Rngs(5))
    batch = random_image_batch(config, GRIDS, seed=1)
    inputs, scoring = prepare_pruning(config, batch, BUCKETS)
    return model, inputs, scoring


def _rope(model, positions):
    return model.rope(jnp.asarray(positions)[:, None], jnp.float32)


def _drop_for(pruning: LayerPruning, stage, model, x, x_in, probs, positions, prev_positions, visual, text, count):
    """The visual indices (into the current sequence) the method keeps at its stage, as its code reads."""
    layers = model.language_model.layers
    if pruning.method == "fastv":  # layer K - 1's attention, last token's row, heads averaged
        scores = np.asarray(probs)[0].mean(0)[-1, visual]
        keep = keep_count(pruning.keep_ratios[stage], count)
        return sorted(visual[np.argsort(-scores, kind="stable")[:keep]])
    if pruning.method == "pdrop":  # layer K's own attention on the hidden states before the drop
        cos, sin = _rope(model, positions)
        _, layer_probs, _ = layers[pruning.layers[stage]](x, cos, sin, causal_mask(jnp.ones((1, x.shape[1]))))
        scores = np.asarray(layer_probs)[0].mean(0)[-1, visual]
        keep = keep_count(pruning.keep_ratios[stage], count)
        return sorted(visual[np.argsort(-scores, kind="stable")[:keep]])
    # DART: L1 norm of layer K - 1's keys picks 4 + 4 pivots; hidden after K - 1 through the final norm
    layer = layers[pruning.layers[0] - 1]
    cos, sin = _rope(model, prev_positions)
    _, keys = layer.self_attn.rotated_query_key(layer.input_layernorm(x_in), cos, sin)
    norms = np.abs(np.asarray(keys)[0].reshape(keys.shape[1], -1)).sum(-1)
    hidden = np.asarray(model.language_model.norm(x))[0]
    image_pivots = visual[np.argsort(-norms[visual], kind="stable")[:4]].tolist()
    text_pivots = text[np.argsort(-norms[text], kind="stable")[:4]].tolist()
    per_pivot = int(count * pruning.keep_ratios[0] / 8)
    kept, candidates = set(image_pivots), set(visual.tolist()) - set(image_pivots)
    for pivot in sorted(image_pivots) + sorted(text_pivots):
        pool = sorted(candidates)
        unit = hidden[pool] / np.linalg.norm(hidden[pool], axis=-1, keepdims=True)
        similarity = unit @ (hidden[pivot] / np.linalg.norm(hidden[pivot]))
        picked = [pool[i] for i in np.argsort(similarity, kind="stable")[:per_pivot]]
        kept |= set(picked)
        candidates -= set(picked)
    return sorted(kept)


def reference_forward(model, embeds, positions, visual, text, pruning: LayerPruning, kept_sets=None):
    """One sample [T, D] (positions [3, T]) through the layers one by one, deleting dropped visual
    tokens before each pruning layer. Returns (last-token logits, kept visual sets per stage, as
    original indices). `kept_sets` replays earlier decisions (the decoding steps do not re-prune)."""
    layers = model.language_model.layers
    alive = np.arange(embeds.shape[0])  # original index of each current token
    x, x_in, probs = jnp.asarray(embeds)[None], None, None
    previous_positions, decided = positions, []
    for index in range(len(layers)):
        if index in pruning.layers:
            stage = pruning.layers.index(index)
            current_visual = np.flatnonzero(np.isin(alive, visual))
            current_text = np.flatnonzero(np.isin(alive, text))
            if kept_sets is None:
                kept = _drop_for(
                    pruning, stage, model, x, x_in, probs, positions[:, alive], previous_positions,
                    current_visual, current_text, len(visual),
                )  # fmt: skip
                kept_original = set(alive[kept].tolist())
            else:
                kept_original = kept_sets[stage]
            decided.append(kept_original)
            stay = np.array([not np.isin(a, visual) or a in kept_original for a in alive])
            x, alive = x[:, stay], alive[stay]
        cos, sin = _rope(model, positions[:, alive])
        previous_positions = positions[:, alive]
        x_in = x
        x, probs, _ = layers[index](x, cos, sin, causal_mask(jnp.ones((1, x.shape[1]))))
    logits = model.lm_head(model.language_model.norm(x), model.language_model.embed_tokens)
    return np.asarray(logits)[0, -1], decided


def _sample(model, inputs, scoring, row):
    real = np.flatnonzero(np.asarray(inputs.attention_mask[row]))
    embeds = np.asarray(model.embed(inputs))[row, real]
    positions = np.asarray(inputs.position_ids)[:, row, real]
    visual_slots = np.asarray(scoring.layout.visual_positions[row])
    visual = visual_slots[visual_slots >= 0]
    queries = np.asarray(scoring.layout.query_positions[row])
    return embeds, positions, visual, queries[queries >= 0]


SLOW = pytest.mark.slow  # each case runs the per-sample reference: ~15 s; one per method stays in the default suite
CASES = [
    pytest.param("gather", "fastv", 0.25), pytest.param("gather", "pdrop", 0.5), pytest.param("gather", "dart", 0.5),
    pytest.param("mask", "fastv", 0.5),
    *(pytest.param("gather", m, k, marks=SLOW) for m, k in [("fastv", 0.5), ("dart", 0.25)]),
    *(pytest.param("mask", m, k, marks=SLOW) for m, k in [("fastv", 0.25), ("pdrop", 0.5), ("dart", 0.5), ("dart", 0.25)]),
]  # fmt: skip


@pytest.mark.parametrize(("mode", "method", "keep"), CASES)
def test_in_llm_pruning_equals_the_per_sample_reference(setup, method, keep, mode):
    model, inputs, scoring = setup
    config = PruneConfig(method, keep, mode, layer=3)
    pruning = config.layer_pruning(len(model.language_model.layers))
    out = pruned_forward(model, None, inputs, scoring, config)
    last = np.asarray(out.attention_mask).astype(bool)
    for row in range(len(GRIDS)):
        embeds, positions, visual, text = _sample(model, inputs, scoring, row)
        expected_logits, kept_sets = reference_forward(model, embeds, positions, visual, text, pruning)
        ours = np.asarray(out.logits)[row, np.flatnonzero(last[row])[-1]]
        np.testing.assert_allclose(ours, expected_logits, atol=ATOL)
        slots = np.asarray(out.selection.kept_slots[row])[np.asarray(out.selection.kept_valid[row])]
        assert set(visual[slots].tolist()) == kept_sets[-1], (row, method)
        assert len(kept_sets[-1]) == pruning.kept_counts(len(visual))[-1]


@pytest.mark.parametrize(
    ("method", "keep"), [("fastv", 0.25), pytest.param("pdrop", 0.5, marks=SLOW), pytest.param("dart", 0.5, marks=SLOW)]
)
def test_generation_after_in_llm_pruning_equals_reference_forwards(setup, method, keep):
    """Each greedy token from the staged caches equals the reference over the same kept tokens plus the answer so far."""
    model, inputs, scoring = setup
    config = PruneConfig(method, keep, layer=3)
    pruning = config.layer_pruning(len(model.language_model.layers))
    out = generate(model, inputs, max_new_tokens=3, eos_token_id=-1, scoring=scoring, prune=config)
    for row in range(len(GRIDS)):
        embeds, positions, visual, text = _sample(model, inputs, scoring, row)
        _, kept_sets = reference_forward(model, embeds, positions, visual, text, pruning)
        assert int(out.prefill_length[row]) == embeds.shape[0] - len(visual) + len(kept_sets[-1])
        for step in range(3):
            logits, _ = reference_forward(model, embeds, positions, visual, text, pruning, kept_sets)
            token = int(np.argmax(logits))
            assert token == int(out.tokens[row, step]), (row, step)
            embeds = np.concatenate([embeds, np.asarray(model.language_model.embed_tokens(jnp.array([token])))])
            positions = np.concatenate([positions, np.full((3, 1), positions.max() + 1)], axis=1)


def test_one_compile_per_bucket_and_setting(setup):
    model, inputs, scoring = setup
    traces = []

    @nnx.jit(static_argnames="config")
    def counted(model, inputs, scoring, config):
        traces.append(config)
        return pruned_forward(model, None, inputs, scoring, config).logits

    config = PruneConfig("pdrop", 0.5)
    for seed in range(3):
        other_inputs, other_scoring = prepare_pruning(
            model.config, random_image_batch(model.config, GRIDS[::-1], seed), BUCKETS
        )
        counted(model, other_inputs, other_scoring, config)
    assert len(traces) == 1


def test_settings_are_checked():
    assert layer_pruning("pdrop", 0.5, 8) == LayerPruning("pdrop", (2, 4, 6), (0.5, 0.25, 0.125))
    with pytest.raises(ValueError, match="unknown in-LLM pruning method"):
        LayerPruning("sparsevlm", (2,), (0.5,))
    with pytest.raises(ValueError, match="increasing"):
        LayerPruning("pdrop", (4, 2), (0.5, 0.25))
    with pytest.raises(ValueError, match="must not grow"):
        LayerPruning("pdrop", (2, 4), (0.25, 0.5))
    with pytest.raises(ValueError, match="prunes at one layer"):
        LayerPruning("fastv", (2, 4), (0.5, 0.25))
    with pytest.raises(ValueError, match="the decoder has 2 layers"):
        layer_pruning("fastv", 0.5, 2, layer=2)
    with pytest.raises(ValueError, match="at least 4 layers"):
        layer_pruning("pdrop", 0.5, 2)
