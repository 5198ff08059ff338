"""Greedy generation with a KV cache equals transformers' generate; pruned generation equals
decoding from the pruned prefill without a cache."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from conversion.verify import random_batch
from tokcomp_jax.generate import Generator, _generate_split, generate
from tokcomp_jax.models import prepare_inputs
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.models.qwen2_vl.positions import token_types
from tokcomp_jax.models.qwen2_vl.processor import collate as stack_rows
from tokcomp_jax.prune import Buckets, PruneConfig, prepare_pruning, prune_embeddings

ROWS = [[("image", 112, 84)], [("video", 2, 56, 84)], [("image", 56, 56), ("image", 84, 56)]]
NEW_TOKENS = 8


def _hf_generate(torch_model, config, sample: dict, eos: int | None) -> list[int]:
    """transformers' greedy generate on one unpadded sample."""
    args = {key: torch.from_numpy(value) for key, value in sample.items()}
    types = token_types(sample["input_ids"], config.image_token_id, config.video_token_id)
    with torch.no_grad():
        out = torch_model.generate(
            **args, mm_token_type_ids=torch.from_numpy(types), max_new_tokens=NEW_TOKENS, do_sample=False,
            eos_token_id=eos, pad_token_id=0,
        )  # fmt: skip
    return out[0, sample["input_ids"].shape[1] :].tolist()


@pytest.fixture(scope="module")
def samples(tiny_qwen2vl):
    return [random_batch(tiny_qwen2vl[2].config, [row], seed=5 + i, text_length=4 + i) for i, row in enumerate(ROWS)]


@pytest.fixture(scope="module")
def batch(samples):
    return stack_rows(samples)


def test_greedy_tokens_equal_transformers_generate(tiny_qwen):
    """Our padded batch against transformers one sample at a time (no padding on its side)."""
    _, torch_model, model = tiny_qwen
    config = model.config
    samples = [random_batch(config, [row], seed=5 + i, text_length=4 + i) for i, row in enumerate(ROWS)]
    reference = [_hf_generate(torch_model, config, sample, None) for sample in samples]
    eos = reference[0][3]  # a token sample 0 emits: generation must stop there
    reference = [_hf_generate(torch_model, config, sample, eos) for sample in samples]
    inputs = FAMILIES[config.family].prepare_inputs(config, **stack_rows(samples))
    out = generate(model, inputs, max_new_tokens=NEW_TOKENS, eos_token_id=eos)
    for row, expected in enumerate(reference):
        length = int(out.lengths[row])
        assert np.asarray(out.tokens[row, :length]).tolist() == expected[:length], row
        assert length == (expected.index(eos) + 1 if eos in expected else NEW_TOKENS)
        assert (np.asarray(out.tokens[row, length:]) == 0).all()


def test_pruned_generation_equals_decoding_the_pruned_prefill_without_cache(tiny_qwen2vl, batch):
    """Each greedy token from the cache equals the argmax of a full forward over the pruned prefill plus the answer so far."""
    _, _, model = tiny_qwen2vl
    prune = PruneConfig("attention", 0.25, "gather")
    inputs, scoring = prepare_pruning(model.config, batch, Buckets(text=24, visual=64, queries=8))
    out = generate(model, inputs, max_new_tokens=4, eos_token_id=-1, scoring=scoring, prune=prune)
    embeds, positions, mask, _ = prune_embeddings(model, None, inputs, scoring, prune)
    assert (np.asarray(out.prefill_length) < np.asarray(inputs.attention_mask.sum(-1))).all()
    for row in range(len(ROWS)):
        keep = np.flatnonzero(np.asarray(mask[row]))
        x = np.asarray(embeds[row, keep])
        pos = np.asarray(positions[:, row, keep])
        for step in range(4):
            logits = model.forward_embeddings(
                jnp.asarray(x[None]), jnp.asarray(pos[:, None]), jnp.ones((1, len(x)), jnp.int32)
            ).logits
            token = int(np.argmax(np.asarray(logits[0, -1])))
            assert token == int(out.tokens[row, step]), (row, step)
            x = np.concatenate([x, np.asarray(model.language_model.embed_tokens(jnp.array([token])))])
            pos = np.concatenate([pos, np.full((3, 1), pos.max() + 1)], axis=1)


def test_the_generator_equals_generate_and_compiles_once_per_setting(tiny_qwen2vl, batch):
    """Generator (the eval runner's: the model split once) gives generate's tokens, pruned or not;
    a second Generator of the same model reuses the first one's compiled graph."""
    _, _, model = tiny_qwen2vl
    prune = PruneConfig("attention", 0.25, "gather")
    inputs, scoring = prepare_pruning(model.config, batch, Buckets(text=24, visual=64, queries=8))
    compiled_before = _generate_split._cache_size()
    for setting in (None, prune):
        expected = generate(model, inputs, max_new_tokens=4, eos_token_id=-1, scoring=scoring, prune=setting)
        for run in (Generator(model), Generator(model)):
            out = run(inputs, max_new_tokens=4, eos_token_id=-1, scoring=scoring, prune=setting)
            np.testing.assert_array_equal(np.asarray(out.tokens), np.asarray(expected.tokens))
            np.testing.assert_array_equal(np.asarray(out.prefill_length), np.asarray(expected.prefill_length))
    assert _generate_split._cache_size() - compiled_before == 2


def test_bad_generation_arguments(tiny_qwen2vl, batch):
    _, _, model = tiny_qwen2vl
    inputs = prepare_inputs(model.config, **batch)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, inputs, max_new_tokens=0, eos_token_id=1)
    with pytest.raises(ValueError, match="fastv prunes before layer 2; the decoder has 2 layers"):
        generate(model, inputs, max_new_tokens=2, eos_token_id=1, prune=PruneConfig("fastv", 0.5))
