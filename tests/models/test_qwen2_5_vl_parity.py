"""Qwen2.5-VL: parity with transformers' Qwen2_5_VLForConditionalGeneration (float32, highest
matmul precision) on the converted tiny checkpoint, its window order, and the released sizes.

Tolerances: 1e-4 max abs on logits (|logits| ~ 0.5) and layer-1 attention, as for Qwen2-VL; the
vision tower's merged tokens to 1e-6, because a window mistake moves them by ~1e-3 on this tiny
random model while the logits move by less than the logit tolerance (checked below).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import tokcomp_jax
from conversion.tiny import tiny_qwen2_5_vl_model
from conversion.verify import PARITY_CASES, max_diffs, random_batch
from tokcomp_jax.models.qwen2_5_vl.config import Qwen25VLConfig
from tokcomp_jax.models.qwen2_5_vl.modeling import Qwen25VL, prepare_inputs
from tokcomp_jax.models.qwen2_vl.positions import window_order


@pytest.fixture(scope="module")
def tiny_pair(tiny_qwen2_5_vl):
    """(transformers model, Flax model loaded from its saved directory): block 0 windowed, block 1 full."""
    return tiny_qwen2_5_vl[1:]


@pytest.fixture(scope="module", params=["last-block-full", "last-block-windowed"])
def either_pair(request, tiny_pair, tmp_path_factory):
    """The tiny pair, and one whose last block is the windowed one (full attention in block 0)."""
    if request.param == "last-block-full":
        return tiny_pair
    directory = tmp_path_factory.mktemp("tiny_qwen2_5_vl_windowed_last")
    torch_model = tiny_qwen2_5_vl_model(seed=1, fullatt_block_indexes=[0])
    torch_model.save_pretrained(directory)
    return torch_model, tokcomp_jax.load(directory)


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow) if c in ("image_and_video", "text_only") else c for c in PARITY_CASES]
)  # fmt: skip
def test_logits_and_first_layer_attention_match_transformers(tiny_pair, case):
    torch_model, model = tiny_pair
    diffs = max_diffs(model, torch_model, random_batch(model.config, PARITY_CASES[case], seed=1))
    assert diffs["logits_max_abs"] > 0.1
    assert diffs["logits_max_abs_diff"] < 1e-4, diffs
    assert diffs["attn1_max_abs_diff"] < 1e-4, diffs


def test_logits_match_whichever_block_is_last(either_pair):
    torch_model, model = either_pair
    diffs = max_diffs(model, torch_model, random_batch(model.config, PARITY_CASES["image_and_video"], seed=4))
    assert diffs["logits_max_abs_diff"] < 1e-4 and diffs["attn1_max_abs_diff"] < 1e-4, diffs


def test_video_time_follows_second_per_grid_ts(tiny_pair):
    """2 tokens per second x 1.5 s per temporal patch: temporal ids 0, 3 (int of 3.0), as transformers."""
    torch_model, model = tiny_pair
    batch = random_batch(model.config, [[("video", 4, 84, 112)]], seed=2)
    batch["second_per_grid_ts"] = np.array([1.5], np.float32)
    diffs = max_diffs(model, torch_model, batch)
    assert diffs["logits_max_abs_diff"] < 1e-4 and diffs["attn1_max_abs_diff"] < 1e-4, diffs
    positions = np.asarray(prepare_inputs(model.config, **batch).position_ids)[0, 0]
    video = batch["input_ids"][0] == model.config.video_token_id
    assert sorted(set((positions[video] - positions[video].min()).tolist())) == [0, 3]


@pytest.mark.parametrize(
    "layout", [{}, pytest.param({"patch_bucket": 4 * 300}, marks=pytest.mark.slow),
               {"frame_patches": 4 * 64, "patch_bucket": 4 * 64 * 4}],
    ids=["packed", "bucketed", "one-block-per-frame"],
)  # fmt: skip
def test_vision_tokens_match_transformers_in_every_layout(either_pair, layout):
    """A non-square image whose merge-unit grid (3 x 6) is no multiple of the 2 x 2 windows, and a video."""
    torch_model, model = either_pair
    batch = random_batch(model.config, [[("image", 84, 168)], [("video", 4, 84, 112)]], seed=3)
    pixels, grid = (torch.from_numpy(batch[key]) for key in ("pixel_values", "image_grid_thw"))
    with torch.no_grad():
        reference = torch_model.model.visual(pixels, grid_thw=grid).pooler_output.numpy()
    inputs = prepare_inputs(model.config, **batch, **layout)
    is_image = batch["input_ids"] == model.config.image_token_id
    placed = np.asarray(model.embed(inputs))[is_image]
    assert np.abs(placed - reference).max() < 1e-6
    everywhere_full = inputs.replace(patch_window_ids=inputs.patch_segment_ids)
    assert np.abs(np.asarray(model.embed(everywhere_full))[is_image] - reference).max() > 1e-5


def test_window_order_is_transformers_get_vision_window_index():
    from transformers.vision_utils import get_vision_window_index

    grids = np.array([[1, 6, 12], [2, 10, 6]])  # merge units 3 x 6 (image), 2 frames of 5 x 3 (video)
    order, windows = window_order(grids, spatial_merge_size=2, window_units=2)
    index, cu_seqlens = get_vision_window_index(torch.from_numpy(grids), 2, 56, 14)
    expected = (index.numpy()[:, None] * 4 + np.arange(4)).reshape(-1)
    np.testing.assert_array_equal(order, expected)
    np.testing.assert_array_equal(np.flatnonzero(np.diff(windows)) + 1, cu_seqlens.numpy()[1:-1])


@pytest.mark.parametrize("preset,published", [("qwen2_5_vl_3b", 3.75e9), ("qwen2_5_vl_7b", 8.29e9)])
def test_presets_build_by_shape(preset, published):
    """The released sizes by eval_shape (no weights): parameter counts of the released checkpoints."""
    config = getattr(Qwen25VLConfig, preset)()
    abstract = nnx.eval_shape(lambda: Qwen25VL(config, dtype=jnp.bfloat16, rngs=nnx.Rngs(0)))
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    assert abs(count - published) / published < 0.005, count
    assert config.vision.window_units == 4 and config.vision.fullatt_block_indexes == (7, 15, 23, 31)
