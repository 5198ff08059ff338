"""Qwen3-VL: parity with transformers' Qwen3VLForConditionalGeneration (float32, highest matmul
precision) on the converted tiny checkpoint, DeepStack under pruning, and the released sizes.

Tolerances: 1e-4 max abs on logits (|logits| ~ 0.5) and layer-1 attention, as for the other Qwen
families (measured: <= 1e-6); the vision tower's merged tokens and DeepStack features to 1e-6.
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from conversion.verify import PARITY_CASES, max_diffs, random_batch
from tokcomp_jax.models.common.decoder import pack_deepstack, unpack_deepstack
from tokcomp_jax.models.common.rope import mrope_axes
from tokcomp_jax.models.qwen3_vl.config import Qwen3VLConfig
from tokcomp_jax.models.qwen3_vl.modeling import Qwen3VL, prepare_inputs
from tokcomp_jax.prune import Buckets, PruneConfig, prepare_pruning, pruned_forward

ROWS = [[("image", 84, 168)], [("image", 56, 56), ("video", 4, 56, 84)]]  # a padded batch, image + video in one row
BUCKETS = Buckets(text=32, visual=32, queries=8)
DEFAULT_CASES = ("square_image", "non_square_image", "video_4_frames")  # padding and mixed media: the pruning tests


@pytest.fixture(scope="module")
def tiny_pair(tiny_qwen3_vl):
    """(transformers model, Flax model loaded from its saved directory): DeepStack after vision blocks 0, 1."""
    return tiny_qwen3_vl[1:]


@pytest.mark.parametrize(
    "case", [c if c in DEFAULT_CASES else pytest.param(c, marks=pytest.mark.slow) for c in PARITY_CASES]
)  # fmt: skip
def test_logits_and_first_layer_attention_match_transformers(tiny_pair, case):
    torch_model, model = tiny_pair
    diffs = max_diffs(model, torch_model, random_batch(model.config, PARITY_CASES[case], seed=1))
    assert diffs["logits_max_abs"] > 0.1
    assert diffs["logits_max_abs_diff"] < 1e-4, diffs
    assert diffs["attn1_max_abs_diff"] < 1e-4, diffs


def _torch_visual(torch_model, pixels, grid):
    """transformers' vision tower: merged tokens [N, D] and DeepStack features [L, N, D], numpy."""
    with torch.no_grad():
        out = torch_model.model.visual(torch.from_numpy(pixels), grid_thw=torch.from_numpy(grid))
    return out.pooler_output.numpy(), np.stack([f.numpy() for f in out.deepstack_features])


@pytest.mark.parametrize(
    "layout", [{}, pytest.param({"patch_bucket": 4 * 200}, marks=pytest.mark.slow),
               {"frame_patches": 4 * 64, "patch_bucket": 4 * 64 * 4}],
    ids=["packed", "bucketed", "one-block-per-frame"],
)  # fmt: skip
def test_vision_tokens_and_deepstack_features_match_transformers(tiny_pair, layout):
    """A non-square image (its 12 x 6 patch grid resamples the 8 x 8 position table) and a video."""
    torch_model, model = tiny_pair
    batch = random_batch(model.config, [[("image", 84, 168)], [("video", 4, 84, 112)]], seed=3)
    image_tokens, image_deepstack = _torch_visual(torch_model, batch["pixel_values"], batch["image_grid_thw"])
    inputs = prepare_inputs(model.config, **batch, **layout)
    embeds, deepstack = unpack_deepstack(model.embed(inputs), model.config.text.hidden_size)
    is_image = batch["input_ids"] == model.config.image_token_id
    assert np.abs(np.asarray(embeds)[is_image] - image_tokens).max() < 1e-6
    assert np.abs(np.asarray(deepstack)[:, is_image] - image_deepstack).max() < 1e-6
    assert (np.asarray(deepstack)[:, ~is_image & (batch["input_ids"] != model.config.video_token_id)] == 0).all()
    video_tokens, video_deepstack = _torch_visual(torch_model, batch["pixel_values_videos"], batch["video_grid_thw"])
    is_video = batch["input_ids"] == model.config.video_token_id
    assert np.abs(np.asarray(embeds)[is_video] - video_tokens).max() < 1e-6
    assert np.abs(np.asarray(deepstack)[:, is_video] - video_deepstack).max() < 1e-6


def test_deepstack_features_reach_the_logits(tiny_pair):
    """Zeroing the DeepStack channels changes the logits at and after the visual tokens, not before."""
    _, model = tiny_pair
    batch = random_batch(model.config, PARITY_CASES["square_image"], seed=5)
    inputs = prepare_inputs(model.config, **batch)
    packed = model.embed(inputs)
    embeds, deepstack = unpack_deepstack(packed, model.config.text.hidden_size)
    with_features = np.asarray(model.forward_embeddings(packed, inputs.position_ids, inputs.attention_mask).logits)
    without = pack_deepstack(embeds, jnp.zeros_like(deepstack))
    plain = np.asarray(model.forward_embeddings(without, inputs.position_ids, inputs.attention_mask).logits)
    first_visual = int(np.flatnonzero(batch["input_ids"][0] == model.config.image_token_id)[0])
    np.testing.assert_array_equal(with_features[0, :first_visual], plain[0, :first_visual])
    assert np.abs(with_features[0, first_visual:] - plain[0, first_visual:]).max() > 1e-3


def test_interleaved_mrope_axes_are_transformers_recomposition():
    """Frequency f of Qwen3-VL's text RoPE reads the t, h or w position as transformers' layout."""
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextRotaryEmbedding

    section = (24, 20, 20)
    axis_values = torch.arange(3, dtype=torch.float32)[:, None, None, None].expand(3, 1, 1, sum(section)).clone()
    holder = types.SimpleNamespace(mrope_section=list(section))
    recomposed = Qwen3VLTextRotaryEmbedding.recomposition_frequencies(holder, axis_values)[0, 0, : sum(section)]
    np.testing.assert_array_equal(mrope_axes(section, interleaved=True), recomposed.numpy().astype(int))
    assert not np.array_equal(mrope_axes(section, interleaved=True), mrope_axes(section, interleaved=False))


def _torch_embeddings(torch_model, config, batch):
    """transformers' LLM input for a batch, numpy: token embeddings with the visual tokens placed
    [B, T, D] and the DeepStack features at the visual positions [L, B, T, D] (zero elsewhere)."""
    ids = batch["input_ids"]
    with torch.no_grad():
        embeds = torch_model.model.language_model.embed_tokens(torch.from_numpy(ids)).numpy()
    levels = len(config.vision.deepstack_visual_indexes)
    deepstack = np.zeros((levels, *embeds.shape), np.float32)
    for token_id, pixels, grid in [
        (config.image_token_id, "pixel_values", "image_grid_thw"),
        (config.video_token_id, "pixel_values_videos", "video_grid_thw"),
    ]:
        if batch.get(pixels) is not None:
            where = ids == token_id  # row-major, as masked_scatter places them
            embeds[where], deepstack[:, where] = _torch_visual(torch_model, batch[pixels], batch[grid])
    return embeds, deepstack


def test_pruned_equals_transformers_on_the_sequence_without_the_dropped_tokens(tiny_pair):
    """Gather-mode pruning at the LLM input == transformers' language model run on the kept tokens
    only, with their DeepStack features (visual_pos_masks, deepstack_visual_embeds) deleted alike."""
    torch_model, model = tiny_pair
    config = model.config
    batch = random_batch(config, ROWS, seed=6)
    inputs, scoring = prepare_pruning(config, batch, BUCKETS, seed=2)
    out = pruned_forward(model, None, inputs, scoring, PruneConfig("random", 0.25, "gather"))
    embeds, deepstack = _torch_embeddings(torch_model, config, batch)
    positions = np.asarray(inputs.position_ids)
    visual_ids = (config.image_token_id, config.video_token_id)
    for row in range(len(ROWS)):
        keep = np.flatnonzero(np.asarray(out.selection.keep_position[row])[: batch["input_ids"].shape[1]])
        visual = np.isin(batch["input_ids"][row, keep], visual_ids)
        assert 0 < visual.sum() < np.isin(batch["input_ids"][row], visual_ids).sum()
        with torch.no_grad():
            hidden = torch_model.model.language_model(
                inputs_embeds=torch.from_numpy(embeds[row, keep][None]),
                position_ids=torch.from_numpy(positions[:, row : row + 1, keep]).long(),
                visual_pos_masks=torch.from_numpy(visual[None]),
                deepstack_visual_embeds=[torch.from_numpy(level[row, keep][visual]) for level in deepstack],
            ).last_hidden_state
            reference = torch_model.lm_head(hidden)[0].numpy()
        np.testing.assert_allclose(np.asarray(out.logits[row, : keep.size]), reference, atol=1e-4)


@pytest.mark.parametrize("scorer", ["random", "fastv"])
def test_gather_equals_mask_with_deepstack(tiny_pair, scorer):
    """At the input (every DeepStack level travels) and inside the LLM before layer 1 (level 0
    already added, level 1 travels with the kept tokens)."""
    _, model = tiny_pair
    batch = random_batch(model.config, ROWS, seed=7)
    inputs, scoring = prepare_pruning(model.config, batch, BUCKETS)
    masked = pruned_forward(model, None, inputs, scoring, PruneConfig(scorer, 0.25, "mask", layer=1))
    gathered = pruned_forward(model, None, inputs, scoring, PruneConfig(scorer, 0.25, "gather", layer=1))
    np.testing.assert_array_equal(masked.selection.kept_slots, gathered.selection.kept_slots)
    real = lambda out: np.asarray(out.logits)[np.asarray(out.attention_mask).astype(bool)]  # noqa: E731
    np.testing.assert_allclose(real(gathered), real(masked), atol=1e-5)


@pytest.mark.parametrize(
    "preset,published", [("qwen3_vl_2b", 2_127_532_032), ("qwen3_vl_4b", 4_437_815_808), ("qwen3_vl_8b", 8_767_123_696)]
)
def test_presets_build_by_shape(preset, published):
    """The released sizes by eval_shape (no weights): the safetensors totals of the released
    checkpoints (2.13B / 4.44B / 8.77B; 2B and 4B tie the LM head to the embeddings)."""
    config = getattr(Qwen3VLConfig, preset)()
    abstract = nnx.eval_shape(lambda: Qwen3VL(config, dtype=jnp.bfloat16, rngs=nnx.Rngs(0)))
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    assert count == published
    assert config.text.head_dim == 128 and config.text.qk_norm and config.text.mrope_interleaved
