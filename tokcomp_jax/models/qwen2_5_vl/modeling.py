"""Qwen2.5-VL in Flax NNX: Qwen2-VL's model with the windowed vision tower.

    inputs = prepare_inputs(config, input_ids=..., pixel_values=..., image_grid_thw=...)  # host, numpy
    output = model(inputs, return_first_layer_attention=True)                             # jit-friendly

The inputs are Qwen2-VL's (`Qwen2VLInputs`) with `patch_window_ids` set: the host orders the
patches window by window and spaces video frames in time by `second_per_grid_ts`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax.models.common.decoder import Decoder, LMHead
from tokcomp_jax.models.qwen2_5_vl.config import Qwen25VLConfig
from tokcomp_jax.models.qwen2_5_vl.vision import Qwen25VisionTransformer
from tokcomp_jax.models.qwen2_vl import modeling as qwen2_vl
from tokcomp_jax.models.qwen2_vl.modeling import Qwen2VL, Qwen2VLInputs


def prepare_inputs(
    config: Qwen25VLConfig,
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None = None,
    pixel_values: np.ndarray | None = None,
    image_grid_thw: np.ndarray | None = None,
    pixel_values_videos: np.ndarray | None = None,
    video_grid_thw: np.ndarray | None = None,
    second_per_grid_ts: Sequence[float] | np.ndarray | None = None,
    patch_bucket: int | None = None,
    frame_patches: int | None = None,
) -> Qwen2VLInputs:
    """Host bookkeeping for one batch, arguments as in transformers' Qwen2.5-VL forward (Qwen2-VL's
    `prepare_inputs` plus the window order and the videos' seconds per temporal patch, 1 when absent
    as transformers assumes)."""
    time_steps = None
    if video_grid_thw is not None:
        count = len(np.asarray(video_grid_thw))
        seconds = np.ones(count) if second_per_grid_ts is None else np.asarray(second_per_grid_ts, np.float64)
        if seconds.shape != (count,):
            raise ValueError(f"second_per_grid_ts has shape {seconds.shape}, expected one value per video ({count})")
        time_steps = [config.vision.tokens_per_second * float(s) for s in seconds]
    return qwen2_vl.prepare_inputs(
        config, input_ids, attention_mask, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw,
        patch_bucket=patch_bucket, frame_patches=frame_patches, window_units=config.vision.window_units,
        video_time_steps=time_steps,
    )  # fmt: skip


class Qwen25VL(Qwen2VL):
    """Qwen2.5-VL for conditional generation (transformers' `Qwen2_5_VLForConditionalGeneration`)."""

    def __init__(self, config: Qwen25VLConfig, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
        self.config = config
        self.visual = Qwen25VisionTransformer(config.vision, dtype=dtype, rngs=rngs)
        self.language_model = Decoder(config.text, dtype=dtype, rngs=rngs)
        self.lm_head = LMHead(config.text, dtype=dtype, rngs=rngs)
