"""Qwen video inputs as transformers' Qwen2-VL and Qwen3-VL video processors make them, without torchvision.

The rules come from the checkpoint's video processor config, read as transformers reads it
(`video_preprocessor_config.json`, else `preprocessor_config.json`; SideFiles.video_preprocessor),
over the video processor class's defaults:

- frames: all of them, or with `do_sample_frames` a uniform sample at `fps` frames per second of the
  clip's own frame rate (transformers assumes 24 fps where the clip's is unknown);
- size: every frame resized to one (H, W), multiples of patch x merge, within the pixel limits
  `size` gives (Qwen2-VL: per frame, `smart_resize`; Qwen3-VL: over the frames together);
- time: the frame indices and frame rate give Qwen3-VL's per-patch timestamps and Qwen2.5-VL's
  `second_per_grid_ts`.

Frames are resized as torchvision resizes uint8 frames on a CPU (models/common/resize.py), which
is what transformers' video processors (and qwen-vl-utils) run.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

DEFAULT_FPS = 24.0  # what transformers assumes for a clip whose frame rate it is not told


@dataclasses.dataclass(frozen=True)
class VideoRules:
    """How a family's video processor picks frames and their size (transformers' names)."""

    min_pixels: int
    max_pixels: int
    sample_frames: bool = False  # do_sample_frames
    fps: float = 2.0  # frames per second to sample
    min_frames: int = 4
    max_frames: int = 768
    limits_over_frames: bool = False  # Qwen3-VL: the pixel limits bound frames x H x W, not one frame
    normalisation: tuple[tuple[str, object], ...] = ()  # image_mean / image_std where they are given

    def read(self, config: dict) -> VideoRules:
        """These rules with a video processor config's fields where it has them; limits that cannot
        hold (min_pixels above max_pixels) are refused."""
        size = config.get("size") or {}
        rules = dataclasses.replace(
            self,
            min_pixels=int(config.get("min_pixels", size.get("shortest_edge", self.min_pixels))),
            max_pixels=int(config.get("max_pixels", size.get("longest_edge", self.max_pixels))),
            sample_frames=bool(config.get("do_sample_frames", self.sample_frames)),
            fps=float(config.get("fps", self.fps)),
            min_frames=int(config.get("min_frames", self.min_frames)),
            max_frames=int(config.get("max_frames", self.max_frames)),
            normalisation=tuple((k, config[k]) for k in ("image_mean", "image_std") if k in config)
            or self.normalisation,
        )
        if not 0 < rules.min_pixels <= rules.max_pixels:
            raise ValueError(
                f"video pixel limits min_pixels {rules.min_pixels}, max_pixels {rules.max_pixels} cannot hold: "
                "need 0 < min_pixels <= max_pixels (set both, in video_preprocessor_config.json or the overrides)"
            )
        return rules


def frame_indices(rules: VideoRules, total: int, clip_fps: float | None, temporal: int) -> np.ndarray:
    """The indices of the frames a video processor keeps of `total` frames taken at `clip_fps`."""
    if not rules.sample_frames:
        return np.arange(total)
    if rules.limits_over_frames:  # Qwen3VLVideoProcessor.sample_frames
        count = int(total / (clip_fps or DEFAULT_FPS) * rules.fps)
        count = min(max(count, rules.min_frames), rules.max_frames, total)
        return np.linspace(0, total - 1, count).round().astype(int)
    if clip_fps is None:  # Qwen2VLVideoProcessor.sample_frames refuses to guess
        raise ValueError("sampling video frames by fps needs the clip's frame rate (video_fps)")
    most = math.floor(min(rules.max_frames, total) / temporal) * temporal
    count = math.floor(min(max(total / clip_fps * rules.fps, rules.min_frames), most, total) / temporal) * temporal
    return (np.arange(0, total, total / count)).astype(np.int32)  # torch.arange(...).int(): truncation


def resized_size(rules: VideoRules, frames: int, height: int, width: int, factor: int, temporal: int):
    """(H, W) every frame is resized to: transformers' smart_resize for the family."""
    if rules.limits_over_frames and (height < factor or width < factor):  # Qwen3-VL scales tiny frames up
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"video frames of {height}x{width} have an aspect ratio over 200")
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    frames_bar = round(frames / temporal) * temporal if rules.limits_over_frames else 1
    frames = frames if rules.limits_over_frames else 1
    if frames_bar * h_bar * w_bar > rules.max_pixels:
        beta = math.sqrt(frames * height * width / rules.max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif frames_bar * h_bar * w_bar < rules.min_pixels:
        beta = math.sqrt(rules.min_pixels / (frames * height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def sampled_fps(indices: np.ndarray, total: int, clip_fps: float | None) -> float:
    """Frames per second of the kept frames (transformers' VideoMetadata.sampled_fps)."""
    return len(indices) / total * (clip_fps or DEFAULT_FPS)
