"""How an EvalSample becomes model input and generated tokens become a reply, per kind of model.

A codec has `encode(sample) -> dict` (a one-row transformers-style batch: input_ids [1, T],
attention_mask, pixel_values, image_grid_thw), `decode(tokens) -> str` and `eos_token_id`.
"""

from __future__ import annotations

import numpy as np

from tokcomp_jax.data import vqa
from tokcomp_jax.eval.samples import EvalSample, load_image, load_video
from tokcomp_jax.miniature.samples import prompt_ids
from tokcomp_jax.models.config import Qwen2VLConfig
from tokcomp_jax.preprocess import build_inputs, end_of_turn_id, image_processor, process_images


class ChatCodec:
    """A released MLLM: its tokenizer's chat template and transformers' image processor."""

    def __init__(self, config: Qwen2VLConfig, tokenizer, max_pixels: int = 28 * 28 * 1280):
        self.config, self.tokenizer = config, tokenizer
        self.processor = image_processor(config, max_pixels=max_pixels)
        self.eos_token_id = end_of_turn_id(tokenizer)

    def encode(self, sample: EvalSample) -> dict[str, np.ndarray]:
        images = [load_image(source) for source in sample.images]
        video = load_video(sample.video) if sample.video is not None else None
        return build_inputs(self.config, self.tokenizer, self.processor, sample.prompt, images=images, video=video)

    def decode(self, tokens: np.ndarray) -> str:
        return self.tokenizer.decode([t for t in tokens if t != self.eos_token_id], skip_special_tokens=True).strip()


class MiniatureCodec:
    """The miniature model (tokcomp_jax.miniature): one image, then the question in its word vocabulary."""

    eos_token_id = vqa.EOS_ID

    def __init__(self, config: Qwen2VLConfig):
        self.config = config
        self.processor = image_processor(config, max_pixels=28 * 28 * 4096)

    def encode(self, sample: EvalSample) -> dict[str, np.ndarray]:
        if len(sample.images) != 1 or sample.video is not None:
            raise ValueError(f"{sample.sample_id}: the miniature model reads exactly one image and no video")
        pixels, grid = process_images(self.processor, [load_image(sample.images[0])])
        ids = prompt_ids(self.config, sample.prompt, int(grid.prod()) // self.config.vision.spatial_merge_size**2)
        return {"input_ids": ids[None], "attention_mask": np.ones((1, len(ids)), np.int64), "pixel_values": pixels,
                "image_grid_thw": grid}  # fmt: skip

    def decode(self, tokens: np.ndarray) -> str:
        """Words up to EOS; an id outside the words (a vision token) reads as <id>, never a word."""
        words = [vqa.VOCAB[t] if t < len(vqa.VOCAB) else f"<{t}>" for t in map(int, tokens)]
        return " ".join(word for word in words if word not in ("<eos>", "<pad>"))
