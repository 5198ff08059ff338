"""Qwen3-VL model inputs from images, video frames and text: Qwen2-VL's processing with Qwen3-VL's
pixel defaults and video processor, and a video prompt that gives every temporal patch its own
timestamp and its own vision-start / vision-end pair, as transformers' `Qwen3VLProcessor` writes it:
the chat template's outer pair around the video is dropped.

A temporal patch's timestamp is the mean of its first and last frame's times, from the kept frames'
indices in the clip and the clip's frame rate (transformers' 24 fps where it is not told).
"""

from __future__ import annotations

import numpy as np

from tokcomp_jax.models.common.chat import decode_reply, user_turn
from tokcomp_jax.models.common.released import SideFiles, stop_token_ids
from tokcomp_jax.models.qwen2_vl.processor import (
    IMAGE_PAD,
    VIDEO_PAD,
    expand_pads,
    image_processor,
    pixel_limits,
    process_images,
    video_inputs,
)
from tokcomp_jax.models.qwen2_vl.video import VideoRules
from tokcomp_jax.models.qwen3_vl.config import Qwen3VLConfig

# The released preprocessor_config.json (Qwen/Qwen3-VL-4B-Instruct): 256^2 to 4096^2 pixels, mean and std 0.5.
DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS = 65536, 16777216
DEFAULT_NORMALISATION = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3}
QWEN3_VL_VIDEO = VideoRules(  # transformers' Qwen3VLVideoProcessor defaults
    min_pixels=128 * 32 * 32, max_pixels=768 * 32 * 32, sample_frames=True, limits_over_frames=True,
    normalisation=tuple(DEFAULT_NORMALISATION.items()),
)  # fmt: skip
VIDEO_WRAPPER = f"<|vision_start|>{VIDEO_PAD}<|vision_end|>"


def frame_timestamps(indices: np.ndarray, temporal_patch_size: int, fps: float) -> list[float]:
    """Seconds of each temporal patch of the frames at `indices` of a clip taken at `fps` (padded to
    whole patches by repeating the last index): the mean of its first and last frame's times."""
    indices = list(indices) + [indices[-1]] * (-len(indices) % temporal_patch_size)
    times = [int(index) / fps for index in indices]
    return [(times[i] + times[i + temporal_patch_size - 1]) / 2 for i in range(0, len(times), temporal_patch_size)]


def video_placeholder(grid: np.ndarray, timestamps: list[float], merge: int) -> str:
    """`<t seconds><|vision_start|><|video_pad|> x tokens<|vision_end|>` per temporal patch."""
    tokens = int(grid[1] * grid[2]) // merge**2
    return "".join(f"<{t:.1f} seconds><|vision_start|>{VIDEO_PAD * tokens}<|vision_end|>" for t in timestamps)


class Qwen3VLChat:
    """A released Qwen3-VL's prompt side: the tokenizer's chat template, the image processor with
    the checkpoint's pixel limits and normalisation, and its video processor's rules (`files`)."""

    def __init__(self, config: Qwen3VLConfig, tokenizer, files: SideFiles | None = None):
        files = files or SideFiles()
        self.config, self.tokenizer = config, tokenizer
        preprocessor = files.preprocessor
        normalisation = {key: preprocessor.get(key, value) for key, value in DEFAULT_NORMALISATION.items()}
        limits = pixel_limits(preprocessor, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS)
        self.processor = image_processor(config, **limits, **normalisation)
        self.video_rules = QWEN3_VL_VIDEO.read(files.video_preprocessor)
        self.eos_token_id = stop_token_ids(tokenizer, files.generation)

    def encode(self, prompt: str, images=(), video=None, video_fps: float | None = None) -> dict[str, np.ndarray]:
        """One user turn (media first, then the prompt): input_ids [1, T], attention_mask, and
        pixel_values / image_grid_thw, pixel_values_videos / video_grid_thw when present; a video's
        frames taken at `video_fps` (None: unknown)."""
        merge = self.config.vision.spatial_merge_size
        text = user_turn(self.tokenizer, prompt, len(images), int(video is not None))
        inputs: dict[str, np.ndarray] = {}
        if images:
            inputs["pixel_values"], inputs["image_grid_thw"] = process_images(self.processor, images)
        text = expand_pads(
            text, IMAGE_PAD, inputs.get("image_grid_thw"), lambda g: IMAGE_PAD * (int(g.prod()) // merge**2)
        )
        if video is not None:
            clip = video_inputs(self.config, self.video_rules, video, video_fps)
            inputs["pixel_values_videos"], inputs["video_grid_thw"] = clip.pixels, clip.grid
            times = frame_timestamps(clip.indices, self.config.vision.temporal_patch_size, clip.clip_fps)
            text = text.replace(VIDEO_WRAPPER, VIDEO_PAD)
        text = expand_pads(text, VIDEO_PAD, inputs.get("video_grid_thw"), lambda g: video_placeholder(g, times, merge))
        ids = np.asarray(self.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)[None]
        return {"input_ids": ids, "attention_mask": np.ones_like(ids), **inputs}

    def decode(self, tokens) -> str:
        return decode_reply(self.tokenizer, tokens, self.eos_token_id)
