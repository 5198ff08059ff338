"""Qwen3-VL model inputs from images, video frames and text: Qwen2-VL's processing with Qwen3-VL's
pixel defaults, and a video prompt that gives every temporal patch its own timestamp and its own
vision-start / vision-end pair, as transformers' `Qwen3VLProcessor` writes it.

Video frames are taken as sampled at `fps` (transformers' default for Qwen3-VL video: 2); a
temporal patch's timestamp is the mean of its two frames' times.
"""

from __future__ import annotations

import numpy as np

from tokcomp_jax.models.common.chat import decode_reply, end_of_turn_id, user_turn
from tokcomp_jax.models.qwen2_vl.processor import (
    IMAGE_PAD,
    VIDEO_PAD,
    expand_pads,
    image_processor,
    pixel_limits,
    process_images,
    process_video,
)
from tokcomp_jax.models.qwen3_vl.config import Qwen3VLConfig

# The released preprocessor_config.json (Qwen/Qwen3-VL-4B-Instruct): 256^2 to 4096^2 pixels, mean and std 0.5.
DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS = 65536, 16777216
DEFAULT_NORMALISATION = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3}
VIDEO_FPS = 2.0


def frame_timestamps(num_frames: int, temporal_patch_size: int, fps: float = VIDEO_FPS) -> list[float]:
    """Seconds of each temporal patch of `num_frames` frames (padded to whole patches by repeating
    the last frame): the mean of its first and last frame's times."""
    indices = list(range(num_frames)) + [num_frames - 1] * (-num_frames % temporal_patch_size)
    times = [index / fps for index in indices]
    return [(times[i] + times[i + temporal_patch_size - 1]) / 2 for i in range(0, len(times), temporal_patch_size)]


def video_placeholder(grid: np.ndarray, timestamps: list[float], merge: int) -> str:
    """`<t seconds><|vision_start|><|video_pad|> x tokens<|vision_end|>` per temporal patch; the outer
    start / end pair of the chat template stays around them, as in transformers."""
    tokens = int(grid[1] * grid[2]) // merge**2
    return "".join(f"<{t:.1f} seconds><|vision_start|>{VIDEO_PAD * tokens}<|vision_end|>" for t in timestamps)


class Qwen3VLChat:
    """A released Qwen3-VL's prompt side: the tokenizer's chat template and the image processor with
    the checkpoint's pixel limits and normalisation (`preprocessor`: its preprocessor_config.json)."""

    def __init__(self, config: Qwen3VLConfig, tokenizer, preprocessor: dict | None = None):
        preprocessor = preprocessor or {}
        self.config, self.tokenizer = config, tokenizer
        normalisation = {key: preprocessor.get(key, value) for key, value in DEFAULT_NORMALISATION.items()}
        limits = pixel_limits(preprocessor, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS)
        self.processor = image_processor(config, **limits, **normalisation)
        self.eos_token_id = end_of_turn_id(tokenizer)

    def encode(self, prompt: str, images=(), video=None) -> dict[str, np.ndarray]:
        """One user turn (media first, then the prompt): input_ids [1, T], attention_mask, and
        pixel_values / image_grid_thw, pixel_values_videos / video_grid_thw when present."""
        merge = self.config.vision.spatial_merge_size
        text = user_turn(self.tokenizer, prompt, len(images), int(video is not None))
        inputs: dict[str, np.ndarray] = {}
        if images:
            inputs["pixel_values"], inputs["image_grid_thw"] = process_images(self.processor, images)
        text = expand_pads(
            text, IMAGE_PAD, inputs.get("image_grid_thw"), lambda g: IMAGE_PAD * (int(g.prod()) // merge**2)
        )
        if video is not None:
            inputs["pixel_values_videos"], inputs["video_grid_thw"] = process_video(self.processor, video)
            times = frame_timestamps(len(video), self.config.vision.temporal_patch_size)
        text = expand_pads(text, VIDEO_PAD, inputs.get("video_grid_thw"), lambda g: video_placeholder(g, times, merge))
        ids = np.asarray(self.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)[None]
        return {"input_ids": ids, "attention_mask": np.ones_like(ids), **inputs}

    def decode(self, tokens) -> str:
        return decode_reply(self.tokenizer, tokens, self.eos_token_id)
