"""VILA1.5 model inputs from images, video frames and text, as VILA1.5 builds them.

Images: `image_aspect_ratio: resize`, i.e. each image (or video frame) resized to one SigLIP tile
and normalised by the vision tower's preprocessor_config.json (transformers' SigLIP processor).
Prompt: VILA's conversation templates (llava/conversation.py of NVlabs/VILA) with one `<image>\\n`
per image or frame before the question; `<image>` becomes the placeholder id -200 and then
`tokens_per_image` image tokens. Llama-3 models (a vocabulary with `<|eot_id|>`) use `llama_3`, the
others `vicuna_v1`, as VILA1.5's released models do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tokcomp_jax.models.common.chat import check_image, check_video, collate_text, decode_reply
from tokcomp_jax.models.common.released import SideFiles, stop_token_ids
from tokcomp_jax.models.vila.config import VILA_IMAGE_PLACEHOLDER, VilaConfig
from tokcomp_jax.models.vila.modeling import expand_image_placeholders

IMAGE = "<image>"
PIXEL_KEYS = ("image_mean", "image_std", "do_rescale", "rescale_factor", "do_normalize", "resample")
VICUNA_V1_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
LLAMA_3_SYSTEM = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language."
)


def conversation(tokenizer, message: str) -> str:
    """One user message and the assistant's cue in the model's VILA conversation template."""
    if tokenizer.convert_tokens_to_ids("<|eot_id|>") not in (None, tokenizer.unk_token_id):  # llama_3
        header = "<|start_header_id|>{}<|end_header_id|>\n\n"
        return (
            f"<|begin_of_text|>{header.format('system')}{LLAMA_3_SYSTEM}<|eot_id|>"
            f"{header.format('user')}{message}<|eot_id|>{header.format('assistant')}"
        )
    return f"{VICUNA_V1_SYSTEM} USER: {message} ASSISTANT:"  # vicuna_v1 (SeparatorStyle.TWO, sep " ")


def image_processor(config: VilaConfig, preprocessor: dict | None = None):
    """transformers' SigLIP image processor at the tower's tile size (a plain resize, no crop)."""
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    size = config.vision.image_size
    chosen = {key: value for key, value in (preprocessor or {}).items() if key in PIXEL_KEYS}
    return SiglipImageProcessorPil(size={"height": size, "width": size}, **chosen)


def prompt_ids(tokenizer, text: str) -> list[int]:
    """tokenizer_image_token: the text's pieces between `<image>`s tokenised, one -200 at each,
    BOS first unless the template wrote it."""
    pieces = [tokenizer(piece, add_special_tokens=False)["input_ids"] for piece in text.split(IMAGE)]
    ids = list(pieces[0])
    for piece in pieces[1:]:
        ids += [VILA_IMAGE_PLACEHOLDER, *piece]
    bos = tokenizer.bos_token_id
    return ids if bos is None or (ids and ids[0] == bos) else [bos, *ids]


class VilaChat:
    """A released VILA1.5's prompt side: its LLM's tokenizer and its vision tower's preprocessing."""

    def __init__(self, config: VilaConfig, tokenizer, files: SideFiles | None = None):
        files = files or SideFiles()
        self.config, self.tokenizer = config, tokenizer
        self.processor = image_processor(config, files.preprocessor)
        self.eos_token_id = stop_token_ids(tokenizer, files.generation)

    def encode(self, prompt: str, images=(), video=None, video_fps: float | None = None) -> dict[str, np.ndarray]:
        """input_ids [1, T] with each image's tokens expanded, attention_mask, pixel_values [I, C, S, S]
        (images, then the video's frames, in prompt order). VILA1.5 writes no frame times, so
        `video_fps` changes nothing."""
        if not prompt or not prompt.strip():
            raise ValueError("prompt is empty")
        patch = self.config.vision.patch_size
        tiles = [check_image(image, f"image {i}", patch) for i, image in enumerate(images)]
        if video is not None:
            tiles += [check_image(frame, f"video frame {i}", patch) for i, frame in enumerate(check_video(video))]
        message = f"{IMAGE}\n" * len(tiles) + prompt
        ids = np.array([prompt_ids(self.tokenizer, conversation(self.tokenizer, message))])
        batch = expand_image_placeholders(self.config, ids)
        if tiles:
            batch["pixel_values"] = self.processor(tiles, return_tensors="np")["pixel_values"].astype(np.float32)
        return batch

    def decode(self, tokens) -> str:
        return decode_reply(self.tokenizer, tokens, self.eos_token_id)


def collate(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """One-row batches -> one right-padded batch, tiles concatenated in row order."""
    tiles = [row["pixel_values"] for row in rows if "pixel_values" in row]
    return {**collate_text(rows), **({"pixel_values": np.concatenate(tiles)} if tiles else {})}
