"""How an EvalSample becomes model input and generated tokens become a reply, per kind of model.

A codec has `encode(sample) -> dict` (a one-row transformers-style batch: input_ids [1, T],
attention_mask and the family's media arrays), `decode(tokens) -> str` and `eos_token_id`.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tokcomp_jax.data import vqa
from tokcomp_jax.eval.samples import EvalSample, load_image, load_video_and_rate
from tokcomp_jax.miniature.samples import prompt_ids
from tokcomp_jax.models.families import family_of
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.models.qwen2_vl.processor import image_processor, process_images


class ChatCodec:
    """A released MLLM of any family: its tokenizer's chat template and its image and video processors,
    as the checkpoint's side files describe them (`overrides` replace fields of both processor
    configs, e.g. max_pixels)."""

    def __init__(self, config, tokenizer, checkpoint: str | os.PathLike | None = None, **overrides):
        family = family_of(config)
        files = family.read_side_files(checkpoint)
        files = dataclasses.replace(
            files,
            preprocessor={**files.preprocessor, **overrides},
            video_preprocessor={**files.video_preprocessor, **overrides},
        )
        self.chat = family.chat(config, tokenizer, files)
        self.eos_token_id = self.chat.eos_token_id

    def encode(self, sample: EvalSample) -> dict[str, np.ndarray]:
        images = [load_image(source) for source in sample.images]
        video, rate = load_video_and_rate(sample.video) if sample.video is not None else (None, None)
        return self.chat.encode(sample.prompt, images=images, video=video, video_fps=rate)

    def decode(self, tokens: np.ndarray) -> str:
        return self.chat.decode(tokens)


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
