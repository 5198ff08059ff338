"""Qwen2-VL model inputs from images, video frames and text, with transformers' own image processor.

Nothing here touches the network or torch: the image processor is built from the model config
(`Qwen2VLImageProcessorPil`, numpy out) and the tokenizer from a local directory. A video's frames
are chosen and sized by the video processor's rules (qwen2_vl/video.py), then normalised by the
image processor and paired along time here, because transformers' video processor needs torchvision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tokcomp_jax.models.common.chat import (
    check_image,
    check_video,
    collate_text,
    decode_reply,
    user_turn,
)
from tokcomp_jax.models.common.released import SideFiles, stop_token_ids
from tokcomp_jax.models.common.resize import resize_frames
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.models.qwen2_vl.video import DEFAULT_FPS, VideoRules, frame_indices, resized_size, sampled_fps

IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"


DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS = 56 * 56, 28 * 28 * 1280  # transformers' Qwen2VLImageProcessor
QWEN2_VL_VIDEO = VideoRules(min_pixels=128 * 28 * 28, max_pixels=768 * 28 * 28)  # its Qwen2VLVideoProcessor


def image_processor(
    config: Qwen2VLConfig, min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS, **normalisation
):
    """transformers' Qwen2-VL image processor with the model's patch, merge and temporal sizes
    (`normalisation`: image_mean / image_std where they differ from its CLIP defaults). Pixel limits
    that cannot hold (min_pixels above max_pixels, or max_pixels under one visual token) are refused."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    token = (config.vision.patch_size * config.vision.spatial_merge_size) ** 2  # pixels of one visual token
    if not token <= max_pixels or not 0 < min_pixels <= max_pixels:
        raise ValueError(
            f"image pixel limits min_pixels {min_pixels}, max_pixels {max_pixels} cannot hold: need "
            f"0 < min_pixels <= max_pixels and max_pixels >= {token} (one visual token)"
        )

    return Qwen2VLImageProcessorPil(
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        patch_size=config.vision.patch_size,
        merge_size=config.vision.spatial_merge_size,
        temporal_patch_size=config.vision.temporal_patch_size,
        **normalisation,
    )


def process_images(processor, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """[H, W, C] uint8 images -> pixel_values [P, patch_dim] float32, image_grid_thw [I, 3]."""
    images = [check_image(img, f"image {i}", processor.patch_size) for i, img in enumerate(images)]
    out = processor(images=images, return_tensors="np")
    return out["pixel_values"].astype(np.float32), out["image_grid_thw"]


def process_video(processor, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames [F, H, W, C] -> pixel_values_videos [P, patch_dim], video_grid_thw [1, 3].

    Each frame is resized and normalised by the image processor; consecutive frames are then
    paired into temporal patches (an odd last frame is repeated), in the patch order of
    transformers' Qwen2-VL video processor: per time step, window by window.
    """
    frames = check_video(frames)
    temporal = processor.temporal_patch_size
    if pad := -len(frames) % temporal:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
    pixels, grids = process_images(processor, list(frames))
    if len(distinct := np.unique(grids, axis=0)) != 1:
        raise ValueError(f"video frames resized to different grids: {distinct.tolist()}")
    patches_per_frame = int(grids[0].prod())
    patch = processor.patch_size
    channels = pixels.shape[1] // (temporal * patch * patch)
    # [F * N, C * T * p * p] with T identical copies -> one copy per frame [F, N, C, p, p]
    per_frame = pixels.reshape(len(frames), patches_per_frame, channels, temporal, patch, patch)[:, :, :, 0]
    steps = per_frame.reshape(len(frames) // temporal, temporal, patches_per_frame, channels, patch, patch)
    video = steps.transpose(0, 2, 3, 1, 4, 5).reshape(-1, channels * temporal * patch * patch)
    grid = np.array([[len(frames) // temporal, grids[0][1], grids[0][2]]], dtype=np.int64)
    return video, grid


@dataclasses.dataclass(frozen=True)
class ProcessedVideo:
    pixels: np.ndarray  # pixel_values_videos [P, patch_dim]
    grid: np.ndarray  # video_grid_thw [1, 3]
    indices: np.ndarray  # [F] the clip's frames kept, in order
    clip_fps: float  # the clip's frame rate (transformers' 24 where it is not told)
    sampled_fps: float  # frames per second of the kept frames


def video_inputs(config, rules: VideoRules, frames, clip_fps: float | None = None) -> ProcessedVideo:
    """A clip's frames [F, H, W, C] (taken at `clip_fps`, None: unknown) as the family's video
    processor makes them: frames kept by `rules`, each resized to one size, normalised, paired in time."""
    frames = check_video(frames)
    vision, factor = config.vision, config.vision.patch_size * config.vision.spatial_merge_size
    indices = frame_indices(rules, len(frames), clip_fps, vision.temporal_patch_size)
    kept = frames[indices]
    height, width = resized_size(rules, len(kept), *kept.shape[1:3], factor, vision.temporal_patch_size)
    resized = resize_frames(kept, height, width)
    processor = image_processor(config, height * width, height * width, **dict(rules.normalisation))
    pixels, grid = process_video(processor, resized)
    fps = clip_fps or DEFAULT_FPS
    return ProcessedVideo(pixels, grid, indices, fps, sampled_fps(indices, len(frames), clip_fps))


def expand_pads(text: str, pad: str, grids: np.ndarray | None, expand) -> str:
    """Replace each `pad` placeholder by `expand(grid)` of its image / video, in order."""
    grids = [] if grids is None else list(grids)
    if text.count(pad) != len(grids):
        raise ValueError(f"prompt has {text.count(pad)} {pad} placeholders for {len(grids)} images/videos")
    pieces = text.split(pad)
    return pieces[0] + "".join(expand(grid) + piece for grid, piece in zip(grids, pieces[1:], strict=True))


def expand_visual_pads(text: str, image_grid_thw: np.ndarray | None, video_grid_thw: np.ndarray | None, merge: int):
    """Repeat each `<|image_pad|>` / `<|video_pad|>` placeholder once per visual token of its image/video."""
    for pad, grids in ((IMAGE_PAD, image_grid_thw), (VIDEO_PAD, video_grid_thw)):
        text = expand_pads(text, pad, grids, lambda grid, pad=pad: pad * (int(np.prod(grid)) // merge**2))
    return text


def build_inputs(
    config: Qwen2VLConfig,
    tokenizer,
    processor,
    prompt: str,
    images: Sequence[np.ndarray] = (),
    video: np.ndarray | None = None,
    video_rules: VideoRules = QWEN2_VL_VIDEO,
    video_fps: float | None = None,
    video_time: bool = False,
) -> dict[str, np.ndarray]:
    """One user turn (media first, then the prompt) through the tokenizer's chat template; a video's
    frames (taken at `video_fps`, None: unknown) as `video_rules` say.

    Returns numpy arrays named as transformers names them: input_ids [1, T], attention_mask,
    pixel_values / image_grid_thw, and pixel_values_videos / video_grid_thw when present, with
    `video_time` (Qwen2.5-VL) second_per_grid_ts [1]: the seconds between temporal patches.
    """
    text = user_turn(tokenizer, prompt, len(images), int(video is not None))
    inputs: dict[str, np.ndarray] = {}
    if images:
        inputs["pixel_values"], inputs["image_grid_thw"] = process_images(processor, images)
    if video is not None:
        clip = video_inputs(config, video_rules, video, video_fps)
        inputs["pixel_values_videos"], inputs["video_grid_thw"] = clip.pixels, clip.grid
        if video_time:
            inputs["second_per_grid_ts"] = np.array([config.vision.temporal_patch_size / clip.sampled_fps])
    text = expand_visual_pads(
        text, inputs.get("image_grid_thw"), inputs.get("video_grid_thw"), config.vision.spatial_merge_size
    )
    ids = np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)[None]
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), **inputs}


MEDIA_KEYS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts")


def batch_media(samples: Sequence[dict]) -> dict[str, np.ndarray]:
    """The images' and videos' pixels and grids of samples, concatenated in sample order (transformers' layout)."""
    return {key: np.concatenate(values) for key in MEDIA_KEYS if (values := [s[key] for s in samples if key in s])}


def pixel_limits(
    preprocessor: dict, min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS
) -> dict[str, int]:
    """min_pixels / max_pixels of a Qwen2-VL preprocessor_config.json (released files name them at
    the top level, later ones in `size` as shortest_edge / longest_edge); the defaults without."""
    size = preprocessor.get("size") or {}
    return {
        "min_pixels": preprocessor.get("min_pixels", size.get("shortest_edge", min_pixels)),
        "max_pixels": preprocessor.get("max_pixels", size.get("longest_edge", max_pixels)),
    }


class Qwen2VLChat:
    """A released Qwen2-VL's (or Qwen2.5-VL's) prompt side: the tokenizer's chat template, the image
    processor with the checkpoint's pixel limits and the video processor's rules (`files`)."""

    def __init__(self, config: Qwen2VLConfig, tokenizer, files: SideFiles | None = None, video_time: bool = False):
        files = files or SideFiles()
        self.video_time = video_time  # Qwen2.5-VL: a video's second_per_grid_ts
        self.config, self.tokenizer = config, tokenizer
        self.processor = image_processor(config, **pixel_limits(files.preprocessor))
        self.video_rules = QWEN2_VL_VIDEO.read(files.video_preprocessor)
        self.eos_token_id = stop_token_ids(tokenizer, files.generation)

    def encode(self, prompt: str, images=(), video=None, video_fps: float | None = None) -> dict[str, np.ndarray]:
        return build_inputs(
            self.config, self.tokenizer, self.processor, prompt, images, video, self.video_rules, video_fps,
            self.video_time,
        )  # fmt: skip

    def decode(self, tokens) -> str:
        return decode_reply(self.tokenizer, tokens, self.eos_token_id)


def collate(rows) -> dict[str, np.ndarray]:
    """One-row batches -> one right-padded batch, media concatenated in row order (transformers' layout)."""
    return {**collate_text(rows), **batch_media(rows)}
