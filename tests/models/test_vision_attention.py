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
    expected = attentions[feature_layer % (len(attentions) + 1) - 1].numpy().mean((1, 2))
    _, received = tower(jnp.asarray(pixels), feature_layer=feature_layer, return_attention=True)
    np.testing.assert_allclose(np.asarray(received), expected, atol=1e-6)


@pytest.mark.parametrize("family", sorted(CASES))
def test_every_family_returns_vision_attention_and_prunes_by_it(family):
    make_config, make_batch, buckets = CASES[family]
    config = make_config()
    model = FAMILIES[family].model(config, rngs=nnx.Rngs(0))
    inputs, scoring = prepare_pruning(config, make_batch(config), buckets)
    embeds, received = model.embed(inputs, return_vision_attention=True)
    np.testing.assert_array_equal(np.asarray(embeds), np.asarray(model.embed(inputs)))
    received, prunable = np.asarray(received), np.zeros(received.shape, bool)
    for row, positions in enumerate(np.asarray(scoring.layout.visual_positions)):
        prunable[row, positions[positions >= 0]] = True
    assert (received[~np.asarray(inputs.visual_token_mask)] == 0).all() and (received[prunable] > 0).all()
    out = pruned_forward(model, None, inputs, scoring, PruneConfig("vision_attention", 0.5))
    kept = np.asarray(out.selection.kept_valid).sum(-1)
    np.testing.assert_array_equal(kept, -(-np.asarray(scoring.layout.visual_count) // 2))
