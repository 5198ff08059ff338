"""The mapper v2 (MapperConfig(prior="attention"), scorer `mapper_v2`): untrained, it keeps what raw
layer-1 attention keeps; training moves its head mix and its correction; it saves and loads like the
paper's; each mapper scorer refuses the other's checkpoint."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conversion.verify import random_batch
from tests.prune.test_pruning import BUCKETS, ROWS, setup  # noqa: F401  (the fixture)
from tokcomp_jax.mapper import Mapper, MapperConfig, load_mapper, save_mapper
from tokcomp_jax.mapper.inputs import MapperBatch
from tokcomp_jax.mapper.objective import kl_divergence, sparse_target
from tokcomp_jax.prune import PruneConfig, prepare_pruning, pruned_forward
from tokcomp_jax.prune.features import first_layer_features


def v2_mapper(model, seed: int = 0) -> Mapper:
    heads = model.config.text.num_attention_heads
    config = MapperConfig(input_channels="heads", num_heads=heads, channels=(8, 16), prior="attention")
    return Mapper(config, rngs=nnx.Rngs(seed))


def prepared(model, mapper):
    """The setup fixture's batch (same seed), prepared for this mapper's layout: (inputs, scoring)."""
    return prepare_pruning(
        model.config, random_batch(model.config, ROWS, seed=3, text_length=5), BUCKETS, mapper=mapper
    )


def batch_of(model, inputs, scoring) -> MapperBatch:
    layout = scoring.layout
    features = first_layer_features(model, model.embed(inputs), inputs.position_ids, inputs.attention_mask, layout)
    return MapperBatch(features=features, mask=layout.visual_mask, neighbour_index=scoring.neighbour_index)


@pytest.mark.parametrize("keep_ratio", [0.5, 0.25, 0.111])
def test_an_untrained_v2_keeps_what_layer_one_attention_keeps(setup, keep_ratio):  # noqa: F811
    model = setup[0]
    mapper = v2_mapper(model)
    inputs, scoring = prepared(model, mapper)
    v2 = pruned_forward(model, mapper, inputs, scoring, PruneConfig("mapper_v2", keep_ratio))
    attention = pruned_forward(model, None, inputs, scoring, PruneConfig("attention", keep_ratio))
    np.testing.assert_array_equal(v2.selection.kept_slots, attention.selection.kept_slots)


def test_training_moves_the_head_mix_and_the_correction(setup):  # noqa: F811
    model = setup[0]
    mapper = v2_mapper(model)
    batch = batch_of(model, *prepared(model, mapper))
    labels = jax.random.uniform(jax.random.key(0), batch.mask.shape)
    target = sparse_target(labels, batch.mask)

    def loss(mapper):
        return kl_divergence(target, jax.nn.log_softmax(mapper(batch), axis=-1)).mean()

    grads = nnx.grad(loss)(mapper)
    assert jnp.abs(grads.head_mix[...]).max() > 0 and jnp.abs(grads.head.kernel[...]).max() > 0


def test_v2_saves_and_loads(setup, tmp_path):  # noqa: F811
    model = setup[0]
    mapper = v2_mapper(model)
    mapper.head_mix[...] = jnp.arange(mapper.config.num_heads, dtype=jnp.float32)
    mapper.head.kernel[...] = jnp.ones_like(mapper.head.kernel[...]) * 0.1
    batch = batch_of(model, *prepared(model, mapper))
    loaded = load_mapper(save_mapper(tmp_path / "v2", mapper))
    assert loaded.config.prior == "attention"
    np.testing.assert_array_equal(np.asarray(loaded(batch)), np.asarray(mapper(batch)))


def test_each_mapper_scorer_refuses_the_others_checkpoint(setup):  # noqa: F811
    model, paper, inputs, scoring = setup
    with pytest.raises(ValueError, match="trained for the mapper scorer .* use --scorer mapper(\n|$)"):
        pruned_forward(model, paper, inputs, scoring, PruneConfig("mapper_v2", 0.5))
    mapper = v2_mapper(model)
    with pytest.raises(ValueError, match="trained for the mapper_v2 scorer .* use --scorer mapper_v2(\n|$)"):
        pruned_forward(model, mapper, *prepared(model, mapper), PruneConfig("mapper", 0.5))
