"""Torch-free tiny batches of the LLaVA-OneVision and VILA1.5 families, for the pruning tests."""

from __future__ import annotations

import numpy as np
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
    LlavaOnevisionImageProcessorPil,
)

from tokcomp_jax.models.llava_onevision import layout as llava_layout
from tokcomp_jax.models.vila.config import VILA_IMAGE_PLACEHOLDER
from tokcomp_jax.models.vila.modeling import expand_image_placeholders

TEXT_BEFORE, INSTRUCTION = [5, 6], [7, 8, 9]


def llava_batch(config, sizes, seed: int = 0) -> dict:
    """One image of each (height, width) per row: text, its tokens (our plan's count), instruction."""
    tile = config.vision.image_size
    processor = LlavaOnevisionImageProcessorPil(
        size={"height": tile, "width": tile}, image_grid_pinpoints=[list(p) for p in config.image_grid_pinpoints]
    )
    rng = np.random.default_rng(seed)
    out = processor([rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in sizes], return_tensors="np")
    rows = []
    for size in sizes:
        plan = llava_layout.image_plan(
            size, config.image_grid_pinpoints, tile, config.vision.grid_side, config.max_tiles, tiled=True
        )
        rows.append(TEXT_BEFORE + [config.image_token_id] * len(plan[0]) + INSTRUCTION)
    length = max(map(len, rows))
    return {
        "input_ids": np.array([r + [0] * (length - len(r)) for r in rows]),
        "attention_mask": np.array([[1] * len(r) + [0] * (length - len(r)) for r in rows]),
        "pixel_values": out["pixel_values"],
        "image_sizes": out["image_sizes"],
    }


def vila_batch(config, images_per_row, seed: int = 0) -> dict:
    """Rows of text, `n` image placeholders (expanded), instruction; random tiles in prompt order."""
    rng = np.random.default_rng(seed)
    prompts = [TEXT_BEFORE + [VILA_IMAGE_PLACEHOLDER] * n + INSTRUCTION for n in images_per_row]
    length = max(map(len, prompts))
    expanded = expand_image_placeholders(config, np.array([p + [0] * (length - len(p)) for p in prompts]))
    real = [len(p) + n * (config.tokens_per_image - 1) for p, n in zip(prompts, images_per_row, strict=True)]
    expanded["attention_mask"] = (np.arange(expanded["input_ids"].shape[1])[None] < np.array(real)[:, None]).astype(int)
    size = config.vision.image_size
    expanded["pixel_values"] = rng.standard_normal((sum(images_per_row), 3, size, size)).astype(np.float32)
    return expanded
