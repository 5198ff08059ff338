"""Model-level properties: bfloat16 parity, one compile per patch bucket, presets by shape only."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import tokcomp_jax
from conversion.verify import load_torch_model, max_diffs, random_batch
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig, prepare_inputs


def test_bfloat16_matches_transformers_bfloat16(tiny_qwen2vl):
    """Both sides in bf16 (8 mantissa bits): logits within 2% of max |logits|, attention within 1e-2."""
    hf_dir, _, _ = tiny_qwen2vl
    model = tokcomp_jax.load(hf_dir, dtype="bfloat16")
    diffs = max_diffs(model, load_torch_model(hf_dir, "bfloat16"), random_batch(model.config, [[("image", 84, 112)]]))
    assert diffs["logits_max_abs_diff"] <= 2e-2 * max(1.0, diffs["logits_max_abs"]), diffs
    assert diffs["attn1_max_abs_diff"] <= 1e-2, diffs


def test_images_of_different_sizes_share_one_compiled_graph(tiny_qwen2vl):
    """Padded to the same patch bucket and text length, three image sizes compile once."""
    _, _, model = tiny_qwen2vl
    traces = []

    @nnx.jit
    def forward(m, inputs):
        traces.append(1)  # runs once per compile
        return m(inputs).logits

    length = 40
    for size in [(56, 56), (56, 112), (112, 56)]:
        batch = random_batch(model.config, [[("image", *size)]], seed=4)
        pad = length - batch["input_ids"].shape[1]
        batch["input_ids"] = np.pad(batch["input_ids"], ((0, 0), (0, pad)))
        batch["attention_mask"] = np.pad(batch["attention_mask"], ((0, 0), (0, pad)))
        padded = forward(model, prepare_inputs(model.config, **batch, patch_bucket=64))
        unpadded = model(prepare_inputs(model.config, **batch)).logits
        real = batch["attention_mask"][0].astype(bool)
        np.testing.assert_allclose(np.asarray(padded)[0, real], np.asarray(unpadded)[0, real], atol=1e-5)
    assert len(traces) == 1


@pytest.mark.parametrize("preset", ["qwen2_vl_2b", "qwen2_vl_7b", "qwen2_vl_72b", "tiny"])
def test_presets_build_by_shape(preset):
    """Real-size presets are checked with eval_shape: parameter counts, no weights allocated."""
    config = getattr(Qwen2VLConfig, preset)()
    abstract = nnx.eval_shape(lambda: Qwen2VL(config, dtype=jnp.bfloat16, rngs=nnx.Rngs(0)))
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    published = {
        "qwen2_vl_2b": 2.21e9,
        "qwen2_vl_7b": 8.29e9,
        "qwen2_vl_72b": 73.4e9,
    }  # parameters of the released checkpoints
    if preset in published:
        assert abs(count - published[preset]) / published[preset] < 0.01, count


def test_one_block_per_frame_equals_packed_patches(tiny_qwen2vl):
    """Frames padded to blocks of S patches ([F, S, patch_dim]) give the packed layout's logits and
    vision attention: images and video frames never attended across frames in either layout."""
    _, _, model = tiny_qwen2vl
    batch = random_batch(model.config, [[("image", 56, 84), ("video", 3, 56, 56)], [("image", 84, 56)]], seed=5)
    packed = prepare_inputs(model.config, **batch)
    blocked = prepare_inputs(model.config, **batch, frame_patches=32, patch_bucket=32 * 8)
    assert blocked.pixel_values.shape == (8, 32, model.config.vision.patch_dim)
    np.testing.assert_allclose(model(blocked).logits, model(packed).logits, atol=1e-5, rtol=1e-5)
    _, vision_packed = model.embed(packed, return_vision_attention=True)
    _, vision_blocked = model.embed(blocked, return_vision_attention=True)
    np.testing.assert_allclose(vision_blocked.received, vision_packed.received, atol=1e-7)
    np.testing.assert_allclose(vision_blocked.keys, vision_packed.keys, atol=1e-6)


def test_frame_blocks_too_small_are_refused(tiny_qwen2vl):
    _, _, model = tiny_qwen2vl
    batch = random_batch(model.config, [[("image", 56, 84)]], seed=5)  # 4 x 6 = 24 patches
    with pytest.raises(ValueError, match="does not fit frame_patches 16"):
        prepare_inputs(model.config, **batch, frame_patches=16)
    with pytest.raises(ValueError, match="must be a multiple of the merge window"):
        prepare_inputs(model.config, **batch, frame_patches=30)
