"""The method end to end on tiny Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision and VILA1.5 models: greedy answers, gradient
relevance labels for them, a mapper trained on the first-layer features to predict the labels,
then pruned generation with that mapper (gather == mask on the way)."""

from __future__ import annotations

import numpy as np
import optax
import pytest
from flax import nnx

from configs.models import llava_onevision, vila
from conversion.verify import random_batch
from tests.prune.family_batches import llava_batch, vila_batch
from tokcomp_jax.explain.relevance import append_answers, relevance
from tokcomp_jax.generate import generate, greedy_decode
from tokcomp_jax.mapper import Mapper, MapperBatch, MapperConfig
from tokcomp_jax.mapper.train import train_step
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.models.qwen2_5_vl.config import Qwen25VLConfig
from tokcomp_jax.models.qwen3_vl.config import Qwen3VLConfig
from tokcomp_jax.prune import Buckets, PruneConfig, prepare_pruning, pruned_forward
from tokcomp_jax.prune.features import first_layer_features

CASES = {
    "qwen2_5_vl": (Qwen25VLConfig.tiny, lambda c: random_batch(c, [[("image", 84, 168)], [("video", 2, 56, 84)]]),
                   Buckets(text=16, visual=24, queries=8)),
    "qwen3_vl": (Qwen3VLConfig.tiny, lambda c: random_batch(c, [[("image", 84, 168)], [("video", 2, 56, 84)]]),
                 Buckets(text=20, visual=24, queries=8)),
    "llava_onevision": (llava_onevision.tiny, lambda c: llava_batch(c, [(40, 100), (100, 60)]),
                        Buckets(text=32, visual=96, queries=8, tiles=8)),
    "vila": (vila.tiny, lambda c: vila_batch(c, [1, 2]), Buckets(text=16, visual=24, queries=8, tiles=4)),
}  # fmt: skip


@pytest.mark.slow  # 50-65 s a family; the default suite takes each family through the CLI journey or its parity tests
@pytest.mark.parametrize("family", sorted(CASES))
def test_labels_mapper_and_pruned_generation(family):
    make_config, make_batch, buckets = CASES[family]
    config = make_config()
    model = FAMILIES[family].model(config, rngs=nnx.Rngs(0))
    batch = make_batch(config)
    mapper = Mapper(MapperConfig(num_heads=4, channels=(8, 8), family=family), rngs=nnx.Rngs(1))
    inputs, scoring = prepare_pruning(config, batch, buckets, mapper=mapper)

    embeds = model.embed(inputs)
    answers = np.asarray(greedy_decode(model, embeds, inputs.position_ids, inputs.attention_mask,
                                       max_new_tokens=2, eos_token_id=-1).tokens)  # fmt: skip
    taught, answer_positions = append_answers(batch, [list(a) for a in answers])
    long = Buckets(text=buckets.text + 2, visual=buckets.visual, queries=buckets.queries, tiles=buckets.tiles)
    taught_inputs, taught_scoring = prepare_pruning(config, taught, long)
    labels = np.asarray(relevance(model, taught_inputs, answer_positions, taught_scoring.layout))
    visual = np.asarray(scoring.layout.visual_mask)
    assert np.isfinite(labels).all() and (labels[~visual] == 0).all() and np.abs(labels[visual]).max() > 0

    features = first_layer_features(model, embeds, inputs.position_ids, inputs.attention_mask, scoring.layout)
    mapper_batch = MapperBatch(
        features=features, mask=scoring.layout.visual_mask, neighbour_index=scoring.neighbour_index
    )
    optimizer = nnx.Optimizer(mapper, optax.adam(3e-3), wrt=nnx.Param)
    weights = np.ones(len(labels), np.float32)
    losses = [float(train_step(mapper, optimizer, mapper_batch, np.abs(labels), weights, 0.5)) for _ in range(40)]
    assert losses[-1] < 0.9 * losses[0], losses[::10]

    prune = PruneConfig("mapper", 0.5)
    gathered = pruned_forward(model, mapper, inputs, scoring, prune)
    masked = pruned_forward(model, mapper, inputs, scoring, PruneConfig("mapper", 0.5, mode="mask"))
    keep = np.asarray(masked.selection.keep_position)
    for row in range(keep.shape[0]):
        np.testing.assert_allclose(np.asarray(gathered.logits[row])[: keep[row].sum()],
                                   np.asarray(masked.logits[row])[keep[row]], atol=1e-5)  # fmt: skip
    full = generate(model, inputs, max_new_tokens=2, eos_token_id=-1)
    pruned = generate(model, inputs, max_new_tokens=2, eos_token_id=-1, mapper=mapper, scoring=scoring, prune=prune)
    count = np.asarray(scoring.layout.visual_count)
    np.testing.assert_array_equal(np.asarray(full.prefill_length - pruned.prefill_length), count - -(-count // 2))
