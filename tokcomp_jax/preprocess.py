"""Model inputs from images, video frames and text, with transformers' own Qwen2-VL image processor.

Nothing here touches the network or torch: the image processor is built from the model config
(`Qwen2VLImageProcessorPil`, numpy out) and the tokenizer from a local directory. Video frames go
through the same image processor and are paired along time here, because transformers' video
processor needs torchvision.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tokcomp_jax.models.config import Qwen2VLConfig

IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"


def image_processor(config: Qwen2VLConfig, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280):
    """transformers' Qwen2-VL image processor with the model's patch, merge and temporal sizes."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        patch_size=config.vision.patch_size,
        merge_size=config.vision.spatial_merge_size,
        temporal_patch_size=config.vision.temporal_patch_size,
    )


def _check_image(image: np.ndarray, name: str, patch_size: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"{name} must be [height, width, channels] with 1 or 3 channels, got shape {image.shape}")
    if min(image.shape[:2]) < patch_size:
        raise ValueError(f"{name} is {image.shape[0]}x{image.shape[1]} pixels, smaller than one {patch_size}px patch")
    return image


def process_images(processor, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """[H, W, C] uint8 images -> pixel_values [P, patch_dim] float32, image_grid_thw [I, 3]."""
    images = [_check_image(img, f"image {i}", processor.patch_size) for i, img in enumerate(images)]
    out = processor(images=images, return_tensors="np")
    return out["pixel_values"].astype(np.float32), out["image_grid_thw"]


def process_video(processor, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames [F, H, W, C] -> pixel_values_videos [P, patch_dim], video_grid_thw [1, 3].

    Each frame is resized and normalised by the image processor; consecutive frames are then
    paired into temporal patches (an odd last frame is repeated), in the patch order of
    transformers' Qwen2-VL video processor: per time step, window by window.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError(f"video must be [frames, height, width, channels], got shape {frames.shape}")
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


def expand_visual_pads(text: str, image_grid_thw: np.ndarray | None, video_grid_thw: np.ndarray | None, merge: int):
    """Repeat each `<|image_pad|>` / `<|video_pad|>` placeholder once per visual token of its image/video."""
    for pad, grids in ((IMAGE_PAD, image_grid_thw), (VIDEO_PAD, video_grid_thw)):
        grids = [] if grids is None else list(grids)
        if text.count(pad) != len(grids):
            raise ValueError(f"prompt has {text.count(pad)} {pad} placeholders for {len(grids)} images/videos")
        pieces = text.split(pad)
        text = pieces[0] + "".join(
            pad * (int(np.prod(grid)) // merge**2) + piece for grid, piece in zip(grids, pieces[1:], strict=True)
        )
    return text


def build_inputs(
    config: Qwen2VLConfig,
    tokenizer,
    processor,
    prompt: str,
    images: Sequence[np.ndarray] = (),
    video: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One user turn (media first, then the prompt) through the tokenizer's chat template.

    Returns numpy arrays named as transformers names them: input_ids [1, T], attention_mask,
    and pixel_values / image_grid_thw and pixel_values_videos / video_grid_thw when present.
    """
    if not prompt or not prompt.strip():
        raise ValueError("prompt is empty")
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the tokenizer has no chat template; load it from the model's own tokenizer files")
    content = [{"type": "image"} for _ in images]
    content += [{"type": "video"}] if video is not None else []
    content.append({"type": "text", "text": prompt})
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    inputs: dict[str, np.ndarray] = {}
    if images:
        inputs["pixel_values"], inputs["image_grid_thw"] = process_images(processor, images)
    if video is not None:
        inputs["pixel_values_videos"], inputs["video_grid_thw"] = process_video(processor, video)
    text = expand_visual_pads(
        text, inputs.get("image_grid_thw"), inputs.get("video_grid_thw"), config.vision.spatial_merge_size
    )
    ids = np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)[None]
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), **inputs}


def end_of_turn_id(tokenizer) -> int:
    """The token a chat model ends its reply with: `<|im_end|>` where the vocabulary has it, else EOS."""
    token = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return token if isinstance(token, int) and token != tokenizer.unk_token_id else tokenizer.eos_token_id


MEDIA_KEYS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw")


def batch_media(samples: Sequence[dict]) -> dict[str, np.ndarray]:
    """The images' and videos' pixels and grids of samples, concatenated in sample order (transformers' layout)."""
    return {key: np.concatenate(values) for key in MEDIA_KEYS if (values := [s[key] for s in samples if key in s])}
