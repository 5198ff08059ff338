"""`embed(inputs, return_vision_attention=True)` is one output type for every family: embeddings
[B, T, D] and [B, T] the attention each visual token received in the vision tower (0 at text), the
input of the vision-encoder-attention baseline. SigLIP's is checked against transformers'
attentions on the same weights (float32; only the summation order differs, so 1e-6)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from tests.models.test_siglip_parity import towers  # noqa: F401  (the fixture)
from tests.prune.test_family_pipeline import CASES
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.prune import PruneConfig, prepare_pruning, pruned_forward


@pytest.mark.parametrize("feature_layer", [-1, 2])
def test_siglip_received_attention_matches_transformers(towers, feature_layer):  # noqa: F811
    reference, tower = towers
    pixels = np.random.default_rng(2).standard_normal((2, 3, 60, 60)).astype(np.float32)
    with torch.no_grad():
        attentions = reference(torch.from_numpy(pixels), output_attentions=True).attentions
    last = feature_layer % (len(attentions) + 1) - 1
    expected = attentions[last].numpy().mean((1, 2))
    _, vision = tower(jnp.asarray(pixels), feature_layer=feature_layer, return_attention=True)
    np.testing.assert_allclose(np.asarray(vision.received), expected, atol=1e-6)
    with torch.no_grad():  # the keys of that layer: its k_proj on its normed input, mean over heads
        layer = reference.encoder.layers[last]
        hidden = reference(torch.from_numpy(pixels), output_hidden_states=True).hidden_states[last]
        keys = layer.self_attn.k_proj(layer.layer_norm1(hidden))
    keys = keys.numpy().reshape(*keys.shape[:2], layer.self_attn.num_heads, -1).mean(2)
    np.testing.assert_allclose(np.asarray(vision.keys), keys, atol=1e-5)


@pytest.mark.parametrize("family", sorted(CASES))
def test_every_family_returns_vision_attention_and_prunes_by_it(family):
    make_config, make_batch, buckets = CASES[family]
    config = make_config()
    model = FAMILIES[family].model(config, rngs=nnx.Rngs(0))
    inputs, scoring = prepare_pruning(config, make_batch(config), buckets)
    embeds, vision = model.embed(inputs, return_vision_attention=True)
    np.testing.assert_array_equal(np.asarray(embeds), np.asarray(model.embed(inputs)))
    received, prunable = np.asarray(vision.received), np.zeros(vision.received.shape, bool)
    assert vision.keys.shape == (*received.shape, vision.keys.shape[-1])
    keys = np.abs(np.asarray(vision.keys)).sum(-1)
    for row, positions in enumerate(np.asarray(scoring.layout.visual_positions)):
        prunable[row, positions[positions >= 0]] = True
    assert (received[~np.asarray(inputs.visual_token_mask)] == 0).all() and (received[prunable] > 0).all()
    assert (keys[~np.asarray(inputs.visual_token_mask)] == 0).all() and (keys[prunable] > 0).all()
    out = pruned_forward(model, None, inputs, scoring, PruneConfig("vision_attention", 0.5))
    kept = np.asarray(out.selection.kept_valid).sum(-1)
    np.testing.assert_array_equal(kept, -(-np.asarray(scoring.layout.visual_count) // 2))
