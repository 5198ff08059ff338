"""Qwen3-VL in Flax NNX: Qwen2-VL's model with its own vision tower, a Qwen3 decoder and DeepStack.

    inputs = prepare_inputs(config, input_ids=..., pixel_values=..., image_grid_thw=...)  # host, numpy
    output = model(inputs, return_first_layer_attention=True)                             # jit-friendly

The inputs are Qwen2-VL's (`Qwen2VLInputs`) with the position-table taps set. A video's temporal
patches are separate runs of video tokens in the prompt (each after its timestamp), so the host
treats each as a one-frame video, as transformers' `get_rope_index` does.

DeepStack: `embed` returns the embeddings packed with the DeepStack features of every token
(zero at text), [B, T, (1 + L) * D]; the decoder's layer stack adds level l to the output of layer
l. Pruning drops or keeps a token's features with it, since they are the same array's channels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax.models.common.decoder import Decoder, LMHead, pack_deepstack
from tokcomp_jax.models.qwen2_vl import modeling as qwen2_vl
from tokcomp_jax.models.qwen2_vl.modeling import Qwen2VL, Qwen2VLInputs
from tokcomp_jax.models.qwen3_vl.config import Qwen3VLConfig
from tokcomp_jax.models.qwen3_vl.vision import Qwen3VisionTransformer


def frame_grids(video_grid_thw: np.ndarray | None) -> np.ndarray | None:
    """Video grids [V, 3] -> one grid per temporal patch [sum t, 3], each with t = 1."""
    if video_grid_thw is None:
        return None
    grids = np.asarray(video_grid_thw)
    return np.repeat(np.concatenate([np.ones_like(grids[:, :1]), grids[:, 1:]], axis=1), grids[:, 0], axis=0)


def prepare_inputs(
    config: Qwen3VLConfig,
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None = None,
    pixel_values: np.ndarray | None = None,
    image_grid_thw: np.ndarray | None = None,
    pixel_values_videos: np.ndarray | None = None,
    video_grid_thw: np.ndarray | None = None,
    patch_bucket: int | None = None,
    frame_patches: int | None = None,
) -> Qwen2VLInputs:
    """Host bookkeeping for one batch, arguments as in transformers' Qwen3-VL forward."""
    return qwen2_vl.prepare_inputs(
        config, input_ids, attention_mask, pixel_values, image_grid_thw, pixel_values_videos,
        frame_grids(video_grid_thw), patch_bucket=patch_bucket, frame_patches=frame_patches,
        position_table_side=config.vision.position_grid_side,
    )  # fmt: skip


class Qwen3VL(Qwen2VL):
    """Qwen3-VL for conditional generation (transformers' `Qwen3VLForConditionalGeneration`)."""

    def __init__(self, config: Qwen3VLConfig, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
        self.config = config
        self.visual = Qwen3VisionTransformer(config.vision, dtype=dtype, rngs=rngs)
        self.language_model = Decoder(config.text, dtype=dtype, rngs=rngs)
        self.lm_head = LMHead(config.text, dtype=dtype, rngs=rngs)

    def embed_text(self, input_ids: jax.Array) -> jax.Array:
        """Token embeddings packed with zero DeepStack features: [B, T, (1 + L) * D]."""
        embeds = self.language_model.embed_tokens(input_ids)
        levels = len(self.config.vision.deepstack_visual_indexes)
        return pack_deepstack(embeds, jnp.zeros((levels, *embeds.shape), embeds.dtype))

    def vision_tower(self, inputs: Qwen2VLInputs, return_attention: bool = False):
        """The merged visual tokens packed with their DeepStack features [N, (1 + L) * D]; with
        return_attention, also the tower's last block at each, a TowerAttention ([N], [N, d])."""
        return self.visual(
            inputs.pixel_values,
            inputs.patch_positions,
            inputs.patch_segment_ids,
            inputs.patch_table_index,
            inputs.patch_table_weight,
            return_attention=return_attention,
        )
