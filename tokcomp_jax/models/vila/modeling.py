"""VILA1.5 in Flax NNX: SigLIP on one 384-pixel tile per image (or video frame), the mlp_downsample
projector (2 x 2 neighbouring features concatenated, LayerNorm, Linear, GELU, Linear) and the Llama
decoder with 1-D RoPE. No transformers class exists for it; the checkpoint's llm/, vision_tower/
and mm_projector/ parts are read directly (conversion/).

    batch = expand_image_placeholders(config, input_ids)    # host: one -200 per image -> 196 tokens
    inputs = prepare_vila_inputs(config, **batch, pixel_values=tiles)
    output = model(inputs, return_first_layer_attention=True)
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from tokcomp_jax.models.common.config import warn_past_positions
from tokcomp_jax.models.common.decoder import Decoder, LMHead
from tokcomp_jax.models.common.layers import LayerNorm, activation, linear
from tokcomp_jax.models.common.mllm import DecoderMLLM, TowerAttention
from tokcomp_jax.models.common.rope import text_rope
from tokcomp_jax.models.common.siglip import SiglipVisionTower, pad_tiles
from tokcomp_jax.models.vila.config import VILA_IMAGE_PLACEHOLDER, VilaConfig

PROJECTOR_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, as VILA builds it


@struct.dataclass
class VilaInputs:
    BATCH_AXES: ClassVar[dict[str, int]] = {"input_ids": 0, "attention_mask": 0, "position_ids": 0, "pixel_values": 0,
                                            "visual_token_index": 0}  # fmt: skip

    input_ids: jax.Array  # [B, T], image tokens hold VILA_IMAGE_PLACEHOLDER
    attention_mask: jax.Array  # [B, T]
    position_ids: jax.Array  # [B, T]
    pixel_values: jax.Array | None = None  # [P, C, S, S] one tile per image / frame, padded
    visual_token_index: jax.Array | None = None  # [B, T] row into the projected tokens, -1 for text

    @property
    def visual_token_mask(self) -> jax.Array:
        if self.visual_token_index is None:
            return jnp.zeros_like(self.input_ids, dtype=bool)
        return self.visual_token_index >= 0


def fold_2x2(features: jax.Array) -> jax.Array:
    """VILA1.5's DownSampleBlock: [P, n * n, C] -> [P, ceil(n / 2)^2, 4C]. Sides are zero-padded to
    even; each token concatenates a 2 x 2 neighbourhood, and tokens come out column pair by column
    pair (VILA1.5's order: its flat_square has no final transpose)."""
    tiles, count, channels = features.shape
    side = int(round(count**0.5))
    x = features.reshape(tiles, side, side, channels)
    even = side + side % 2
    x = jnp.pad(x, ((0, 0), (0, even - side), (0, even - side), (0, 0)))
    x = x.reshape(tiles, even, even // 2, 2 * channels).transpose(0, 2, 1, 3)
    return x.reshape(tiles, -1, 4 * channels)


class VilaProjector(nnx.Module):
    """mlp_downsample after the fold: LayerNorm(4C), Linear(4C -> D), GELU, Linear(D -> D)."""

    def __init__(self, config: VilaConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        folded, width = 4 * config.vision.hidden_size, config.text.hidden_size
        self.layer_norm = LayerNorm(folded, eps=PROJECTOR_NORM_EPS, dtype=dtype)
        self.linear_1 = linear(folded, width, bias=True, dtype=dtype, rngs=rngs)
        self.linear_2 = linear(width, width, bias=True, dtype=dtype, rngs=rngs)
        self.act = activation("gelu")

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear_2(self.act(self.linear_1(self.layer_norm(fold_2x2(x)))))


class Vila(DecoderMLLM):
    def __init__(self, config: VilaConfig, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
        self.config = config
        self.vision_tower = SiglipVisionTower(config.vision, dtype=dtype, rngs=rngs)
        self.mm_projector = VilaProjector(config, dtype=dtype, rngs=rngs)
        self.language_model = Decoder(config.text, dtype=dtype, rngs=rngs)
        self.lm_head = LMHead(config.text, dtype=dtype, rngs=rngs)

    def embed(self, inputs: VilaInputs, return_vision_attention: bool = False):
        """Token embeddings with each tile's projected tokens at its image tokens: [B, T, D].

        With return_vision_attention, also the TowerAttention of each visual token's 2 x 2 patches in
        the tower's last layer run (their mean; 0 at text), as Qwen2VL.embed returns it.
        """
        embeds = self.embed_text(jnp.maximum(inputs.input_ids, 0))  # placeholders are < 0
        if inputs.pixel_values is None:
            none = TowerAttention.none(embeds.shape[:2], self.config.vision.head_dim)
            return (embeds, none) if return_vision_attention else embeds
        tower = self.vision_tower(
            inputs.pixel_values, self.config.vision_feature_layer, return_attention=return_vision_attention
        )
        tiles, attention = tower if return_vision_attention else (tower, None)
        visual = self.mm_projector(tiles).reshape(-1, embeds.shape[-1]).astype(embeds.dtype)
        index = jnp.maximum(inputs.visual_token_index, 0)
        embeds = jnp.where(inputs.visual_token_mask[..., None], visual[index], embeds)
        if not return_vision_attention:
            return embeds
        per_token = TowerAttention(
            fold_2x2(attention.received[..., None]).mean(-1).reshape(-1),  # the projector's fold, on [P, N, 1]
            fold_2x2(attention.keys).reshape(-1, 4, attention.keys.shape[-1]).mean(1),
        )
        return embeds, per_token.placed(index, inputs.visual_token_mask)

    def rope(self, position_ids: jax.Array, dtype: jnp.dtype) -> tuple[jax.Array, jax.Array]:
        return text_rope(position_ids, self.config.text.head_dim, self.config.text.rope_theta, dtype)


def expand_image_placeholders(config: VilaConfig, input_ids: np.ndarray) -> dict[str, np.ndarray]:
    """VILA's prompt has one placeholder (-200) per image; each becomes `tokens_per_image` image tokens.
    input_ids [B, T] (right-padded with 0 and masked by the caller, or unpadded) -> input_ids,
    attention_mask, right-padded."""
    rows = []
    for row in np.asarray(input_ids):
        expanded = []
        for token in row.tolist():
            expanded += [token] * (config.tokens_per_image if token == VILA_IMAGE_PLACEHOLDER else 1)
        rows.append(expanded)
    length = max(map(len, rows))
    return {
        "input_ids": np.array([r + [0] * (length - len(r)) for r in rows], np.int64),
        "attention_mask": np.array([[1] * len(r) + [0] * (length - len(r)) for r in rows], np.int64),
    }


def prepare_vila_inputs(
    config: VilaConfig,
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None = None,
    pixel_values: np.ndarray | None = None,
    tile_bucket: int | None = None,
) -> VilaInputs:
    """Host bookkeeping: input_ids with each image's tokens expanded (expand_image_placeholders),
    pixel_values [num_images, C, S, S] in prompt order (a video: its frames, in order)."""
    input_ids = np.asarray(input_ids)
    attention_mask = np.ones_like(input_ids) if attention_mask is None else np.asarray(attention_mask)
    position_ids = np.broadcast_to(np.arange(input_ids.shape[1]), input_ids.shape)
    warn_past_positions(config.text, position_ids, attention_mask)
    inputs = VilaInputs(
        input_ids=jnp.asarray(input_ids, jnp.int32),
        attention_mask=jnp.asarray(attention_mask, jnp.int32),
        position_ids=jnp.asarray(position_ids, jnp.int32),
    )
    if pixel_values is None:
        return inputs
    pixels = np.asarray(pixel_values, np.float32)
    is_image = (input_ids == config.image_token_id) & attention_mask.astype(bool)
    expected = len(pixels) * config.tokens_per_image
    if is_image.sum() != expected:
        raise ValueError(
            f"{len(pixels)} images make {expected} tokens but input_ids holds {is_image.sum()} image tokens "
            "(expand each -200 placeholder with expand_image_placeholders)"
        )
    index = np.full(input_ids.shape, -1, np.int32)
    index[is_image] = np.arange(expected)
    pixels = pad_tiles(pixels, tile_bucket)
    return inputs.replace(pixel_values=jnp.asarray(pixels), visual_token_index=jnp.asarray(index))
