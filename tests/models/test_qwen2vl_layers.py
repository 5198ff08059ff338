"""Layer-by-layer parity with transformers' Qwen2-VL modules, so a failure says where.

float32, highest matmul precision; components agree to ~1e-6, checked at 1e-5.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers.vision_utils import get_vision_attention_seqlens, get_vision_position_ids

from conversion.verify import random_batch
from tokcomp_jax.models.common.decoder import causal_mask
from tokcomp_jax.models.common.rope import multimodal_rope, vision_rope
from tokcomp_jax.models.qwen2_vl import positions
from tokcomp_jax.models.qwen2_vl.positions import token_types

ATOL = 1e-5
GRID = np.array([[1, 4, 6], [2, 2, 4]])  # an image and a 2-step video


def _t(x) -> torch.Tensor:
    return torch.from_numpy(np.array(x))


def _close(ours, theirs, atol=ATOL):
    np.testing.assert_allclose(np.asarray(ours), theirs.detach().numpy(), atol=atol, rtol=0)


@pytest.fixture(scope="module")
def hidden_patches():
    return np.random.default_rng(0).standard_normal((int(GRID.prod(-1).sum()), 32)).astype(np.float32)


def test_embedding(tiny_qwen2vl):
    _, ref, model = tiny_qwen2vl
    ids = np.arange(0, 256, 7)[None]
    _close(model.language_model.embed_tokens(jnp.asarray(ids)), ref.model.language_model.embed_tokens(_t(ids)))


def test_patch_embed(tiny_qwen2vl):
    _, ref, model = tiny_qwen2vl
    pixels = np.random.default_rng(1).standard_normal((6, model.config.vision.patch_dim)).astype(np.float32)
    _close(model.visual.patch_embed(jnp.asarray(pixels)), ref.model.visual.patch_embed(_t(pixels)))


def test_patch_positions_and_vision_rope_tables(tiny_qwen2vl):
    _, ref, model = tiny_qwen2vl
    theirs = get_vision_position_ids(_t(GRID), 2)
    ours = positions.patch_positions(GRID, 2)
    np.testing.assert_array_equal(ours, theirs.numpy())
    cos, sin = vision_rope(jnp.asarray(ours), model.config.vision.head_dim, model.config.vision.rope_theta)
    ref_cos, ref_sin = ref.model.visual.rotary_pos_emb(torch.zeros(1), theirs)
    _close(cos, ref_cos), _close(sin, ref_sin)


def test_vision_block_with_per_frame_segments(tiny_qwen2vl, hidden_patches):
    _, ref, model = tiny_qwen2vl
    ours_pos = jnp.asarray(positions.patch_positions(GRID, 2))
    cos, sin = vision_rope(ours_pos, model.config.vision.head_dim, model.config.vision.rope_theta)
    segments = jnp.asarray(positions.frame_segment_ids(GRID))
    mask = segments[:, None] == segments[None, :]
    ours, _ = model.visual.blocks[0](jnp.asarray(hidden_patches)[None], cos[None], sin[None], mask[None])
    cu_seqlens, _ = get_vision_attention_seqlens(_t(GRID), ref.config.vision_config)
    ref_rope = ref.model.visual.rotary_pos_emb(torch.zeros(1), get_vision_position_ids(_t(GRID), 2))
    theirs = ref.model.visual.blocks[0](_t(hidden_patches), cu_seqlens=cu_seqlens, position_embeddings=ref_rope)
    _close(ours[0], theirs)


def test_patch_merger(tiny_qwen2vl, hidden_patches):
    _, ref, model = tiny_qwen2vl
    _close(model.visual.merger(jnp.asarray(hidden_patches)[None])[0], ref.model.visual.merger(_t(hidden_patches)))


@pytest.fixture(scope="module")
def mixed_batch(tiny_qwen2vl):
    """Two rows, right-padded: image + video in one, two images in the other."""
    _, _, model = tiny_qwen2vl
    rows = [[("image", 56, 84), ("video", 4, 56, 56)], [("image", 84, 56), ("image", 56, 56)]]
    return random_batch(model.config, rows, seed=2)


def test_rope_index_equals_get_rope_index(tiny_qwen2vl, mixed_batch):
    _, ref, model = tiny_qwen2vl
    config = model.config
    ours = positions.rope_index(
        mixed_batch["input_ids"], mixed_batch["attention_mask"], mixed_batch["image_grid_thw"],
        mixed_batch["video_grid_thw"], image_token_id=config.image_token_id, video_token_id=config.video_token_id,
        spatial_merge_size=2,
    )  # fmt: skip
    types = token_types(mixed_batch["input_ids"], config.image_token_id, config.video_token_id)
    theirs, _ = ref.model.get_rope_index(
        _t(mixed_batch["input_ids"]), _t(types), _t(mixed_batch["image_grid_thw"]),
        _t(mixed_batch["video_grid_thw"]), attention_mask=_t(mixed_batch["attention_mask"]),
    )  # fmt: skip
    np.testing.assert_array_equal(ours, theirs.numpy())


def test_mrope_tables(tiny_qwen2vl, mixed_batch):
    _, ref, model = tiny_qwen2vl
    text = model.config.text
    ids = positions.rope_index(
        mixed_batch["input_ids"], mixed_batch["attention_mask"], mixed_batch["image_grid_thw"],
        mixed_batch["video_grid_thw"], image_token_id=250, video_token_id=251, spatial_merge_size=2,
    )  # fmt: skip
    cos, sin = multimodal_rope(jnp.asarray(ids), text.head_dim, text.rope_theta, text.mrope_section, jnp.float32)
    ref_cos, ref_sin = ref.model.language_model.rotary_emb(torch.zeros(1), _t(ids).long())
    _close(cos, ref_cos), _close(sin, ref_sin)


def test_one_decoder_layer_with_padding(tiny_qwen2vl, mixed_batch):
    _, ref, model = tiny_qwen2vl
    text = model.config.text
    mask = mixed_batch["attention_mask"]
    batch, length = mask.shape
    hidden = np.random.default_rng(3).standard_normal((batch, length, text.hidden_size)).astype(np.float32)
    ids = np.broadcast_to(np.arange(length), (3, batch, length))
    cos, sin = multimodal_rope(jnp.asarray(ids), text.head_dim, text.rope_theta, text.mrope_section, jnp.float32)
    allowed = np.asarray(causal_mask(jnp.asarray(mask)).dense())
    ours, ours_probs, _ = model.language_model.layers[0](jnp.asarray(hidden), cos, sin, jnp.asarray(allowed))
    additive = torch.where(_t(allowed)[:, None], 0.0, torch.finfo(torch.float32).min)
    layer = ref.model.language_model.layers[0]
    rope = ref.model.language_model.rotary_emb(torch.zeros(1), _t(ids).long())
    theirs = layer(_t(hidden), attention_mask=additive, position_embeddings=rope)
    _, theirs_probs = layer.self_attn(
        layer.input_layernorm(_t(hidden)), attention_mask=additive, position_embeddings=rope
    )
    real = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(ours)[real], theirs.detach().numpy()[real], atol=ATOL, rtol=0)
    np.testing.assert_allclose(
        np.asarray(ours_probs).transpose(0, 2, 1, 3)[real], theirs_probs.detach().numpy().transpose(0, 2, 1, 3)[real],
        atol=ATOL, rtol=0,
    )  # fmt: skip


@pytest.mark.parametrize("num_heads,num_kv_heads,length", [(4, 2, 37), (3, 3, 64)])
def test_query_chunked_attention_equals_whole(num_heads, num_kv_heads, length):
    """Long query sequences are attended a chunk at a time (padded when the length does not divide);
    outputs and probabilities equal attending them all at once, padding and masks included."""
    from tokcomp_jax.models.common.attention import dot_product_attention

    rng = np.random.default_rng(0)
    query = jnp.asarray(rng.standard_normal((2, length, num_heads, 8)), jnp.float32)
    key, value = (jnp.asarray(rng.standard_normal((2, length, num_kv_heads, 8)), jnp.float32) for _ in range(2))
    mask = causal_mask(jnp.asarray(np.arange(length)[None] < np.array([[length], [length - 5]])))
    whole = dot_product_attention(query, key, value, mask, query_chunk=length)
    chunked = dot_product_attention(query, key, value, mask, query_chunk=16)
    for got, expected in zip(chunked, whole, strict=True):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-6)
