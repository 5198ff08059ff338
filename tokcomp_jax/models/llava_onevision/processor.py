"""LLaVA-OneVision model inputs from images, video frames and text: the tokenizer's chat template
(`<image>` / `<video>` per medium, expanded to the medium's token count) and transformers' own
LLaVA-OneVision image processor (anyres tiles); video frames are resized to one tile each.

The token count of an image is the length of its layout plan (llava_onevision.layout): the tiles'
unpadded features, their row newlines and the overview tile, exactly what the model places.
"""

from __future__ import annotations

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
from tokcomp_jax.models.llava_onevision import layout
from tokcomp_jax.models.llava_onevision.config import LlavaOnevisionConfig

PIXEL_KEYS = ("image_mean", "image_std", "do_rescale", "rescale_factor", "do_normalize", "do_convert_rgb")


def image_processor(config: LlavaOnevisionConfig, preprocessor: dict | None = None):
    """transformers' LLaVA-OneVision image processor at the model's tile size and pinpoints, with the
    checkpoint's normalisation (`preprocessor`: its preprocessor_config.json)."""
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    tile = config.vision.image_size
    chosen = {key: value for key, value in (preprocessor or {}).items() if key in PIXEL_KEYS}
    return LlavaOnevisionImageProcessorPil(
        size={"height": tile, "width": tile}, image_grid_pinpoints=[list(p) for p in config.image_grid_pinpoints],
        **chosen,
    )  # fmt: skip


def image_plan(config: LlavaOnevisionConfig, size: tuple[int, int], tiled: bool) -> layout.Plan:
    """The layout plan of an image of (height, width): tiled (anyres) alone in its prompt, one tile beside others."""
    side = config.vision.grid_side
    return layout.image_plan(size, config.image_grid_pinpoints, config.vision.image_size, side, config.max_tiles, tiled)


def row_newlines(config: LlavaOnevisionConfig, row: dict) -> int:
    """Row newlines (never pruned) a one-row batch's images and videos make, from their plans alone."""
    sizes = [tuple(s) for s in np.asarray(row.get("image_sizes", np.zeros((0, 2), int))).tolist()]
    plans = [image_plan(config, size, tiled=len(sizes) == 1) for size in sizes]
    plans += [layout.video_plan(len(v), config.vision.grid_side) for v in row.get("pixel_values_videos", ())]
    return int(sum(np.asarray(newline).sum() for _, _, newline in plans))


def row_tiles(config: LlavaOnevisionConfig, row: dict) -> int:
    """Tiles the vision tower runs for a one-row batch: each image's anyres tiles (one when the prompt
    holds several images) and every video frame."""
    sizes = np.asarray(row.get("image_sizes", np.zeros((0, 2), int))).tolist()
    tile = config.vision.image_size
    images = (
        sum(layout.num_tiles(tuple(s), config.image_grid_pinpoints, tile) for s in sizes)
        if len(sizes) == 1
        else len(sizes)
    )
    frames = sum(len(v) for v in row.get("pixel_values_videos", ()))
    return images + frames


def process_video(processor, frames: np.ndarray, tile: int) -> np.ndarray:
    """Frames [F, H, W, C] -> [1, F, C, tile, tile]: each resized to one tile as transformers' video
    processor resizes it (torchvision's bicubic on the CPU: models/common/resize.py), rescaled and
    normalised as the image processor does."""
    frames = check_video(frames)
    frames = np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames
    mean, std = np.asarray(processor.image_mean, np.float32), np.asarray(processor.image_std, np.float32)
    resized = resize_frames(frames, tile, tile).astype(np.float32) / 255.0
    return ((resized - mean) / std).transpose(0, 3, 1, 2)[None]


def expand_media_tokens(text: str, token: str, counts: Sequence[int]) -> str:
    """Repeat the i-th `token` placeholder of the text counts[i] times."""
    pieces = text.split(token)
    if len(pieces) - 1 != len(counts):
        raise ValueError(f"prompt has {len(pieces) - 1} {token} placeholders for {len(counts)} media")
    return pieces[0] + "".join(token * count + piece for count, piece in zip(counts, pieces[1:], strict=True))


class LlavaOnevisionChat:
    """A released LLaVA-OneVision's prompt side (llava-hf layout: `<image>` and `<video>` are tokens
    of its tokenizer, at the config's image / video token ids)."""

    def __init__(self, config: LlavaOnevisionConfig, tokenizer, files: SideFiles | None = None):
        files = files or SideFiles()
        self.config, self.tokenizer = config, tokenizer
        self.processor = image_processor(config, files.preprocessor)
        self.eos_token_id = stop_token_ids(tokenizer, files.generation)
        self.image_token = tokenizer.convert_ids_to_tokens(config.image_token_id)
        self.video_token = tokenizer.convert_ids_to_tokens(config.video_token_id)

    def encode(self, prompt: str, images=(), video=None, video_fps: float | None = None) -> dict[str, np.ndarray]:
        """One user turn (media first, then the prompt): input_ids [1, T], attention_mask, and
        pixel_values [I, tiles, C, S, S] / image_sizes / batch_num_images, pixel_values_videos [1, F, C, S, S].
        Every video frame given is kept (transformers' video processor samples none by default), so
        `video_fps` changes nothing."""
        text = user_turn(self.tokenizer, prompt, len(images), int(video is not None))
        batch: dict[str, np.ndarray] = {}
        if images:
            tile = self.config.vision.patch_size
            images = [check_image(image, f"image {i}", tile) for i, image in enumerate(images)]
            # one prompt's images as one nested list: with several, each is padded to a square and kept
            # as one tile (LLaVA-OneVision's multi-image rule), not cut into anyres tiles
            out = self.processor([list(images)], return_tensors="np")
            batch.update(pixel_values=out["pixel_values"].astype(np.float32), image_sizes=np.asarray(out["image_sizes"]),
                         batch_num_images=np.array([len(images)]))  # fmt: skip
            tiled = len(images) == 1
            counts = [len(image_plan(self.config, tuple(s), tiled)[0]) for s in batch["image_sizes"].tolist()]
            text = expand_media_tokens(text, self.image_token, counts)
        if video is not None:
            batch["pixel_values_videos"] = process_video(self.processor, video, self.config.vision.image_size)
            count = len(layout.video_plan(batch["pixel_values_videos"].shape[1], self.config.vision.grid_side)[0])
            text = expand_media_tokens(text, self.video_token, [count])
        ids = np.asarray(self.tokenizer(text, add_special_tokens=False)["input_ids"], np.int64)[None]
        return {"input_ids": ids, "attention_mask": np.ones_like(ids), **batch}

    def decode(self, tokens) -> str:
        return decode_reply(self.tokenizer, tokens, self.eos_token_id)


def collate(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """One-row batches -> one right-padded batch: images' tiles padded to the most tiles of any image,
    image sizes and per-row image counts concatenated, videos stacked (equal frame counts)."""
    batch = collate_text(rows)
    images = [row for row in rows if "pixel_values" in row]
    if images:
        most = max(row["pixel_values"].shape[1] for row in images)
        pad = lambda x: np.pad(x, ((0, 0), (0, most - x.shape[1])) + ((0, 0),) * (x.ndim - 2))  # noqa: E731
        batch["pixel_values"] = np.concatenate([pad(row["pixel_values"]) for row in images])
        batch["image_sizes"] = np.concatenate([row["image_sizes"] for row in images])
        batch["batch_num_images"] = np.concatenate([row["batch_num_images"] for row in images])
    videos = [row["pixel_values_videos"] for row in rows if "pixel_values_videos" in row]
    if videos:
        if len({v.shape[1] for v in videos}) > 1:
            raise ValueError(
                f"videos of {sorted({v.shape[1] for v in videos})} frames in one batch; sample equal counts"
            )
        batch["pixel_values_videos"] = np.concatenate(videos)
    return batch
