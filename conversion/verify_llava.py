"""Parity of the LLaVA-OneVision port with transformers on the same weights and generated inputs
(`python -m conversion.convert --verify` and tests/models/test_llava_onevision_parity.py).

Images go through transformers' own image processor; the number of image tokens is what
transformers' model makes of them, so the comparison never relies on our own token count.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from transformers import LlavaOnevisionForConditionalGeneration
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
    LlavaOnevisionImageProcessorPil,
)

from conversion.verify import first_layer_attention, output_diffs
from tokcomp_jax.models.llava_onevision.modeling import prepare_llava_inputs


def llava_batch(torch_model, images: Sequence[tuple[int, int]] = (), frames: int = 0, seed: int = 0) -> dict:
    """One sample: text, the images' tokens (random pixels of the given (height, width)), text, the
    video's tokens (`frames` random tiles), text. Arrays named as transformers names them."""
    config = torch_model.config
    rng = np.random.default_rng(seed)
    tile = config.vision_config.image_size
    batch, counts = {}, {}
    if images:
        processor = LlavaOnevisionImageProcessorPil(
            size={"height": tile, "width": tile}, image_grid_pinpoints=config.image_grid_pinpoints
        )
        out = processor([rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in images], return_tensors="np")
        batch.update(pixel_values=out["pixel_values"], image_sizes=out["image_sizes"],
                     batch_num_images=np.array([len(images)]))  # fmt: skip
        with torch.no_grad():
            features = torch_model.model.get_image_features(
                torch.from_numpy(batch["pixel_values"]), torch.from_numpy(batch["image_sizes"]),
                batch_num_images=torch.from_numpy(batch["batch_num_images"]),
            ).pooler_output  # fmt: skip
        counts[config.image_token_index] = sum(len(f) for f in features)
    if frames:
        batch["pixel_values_videos"] = rng.standard_normal((1, frames, 3, tile, tile)).astype(np.float32)
        with torch.no_grad():
            video = torch_model.model.get_video_features(torch.from_numpy(batch["pixel_values_videos"])).pooler_output
        counts[config.video_token_index] = video.shape[1]
    special = min(config.image_token_index, config.video_token_index)
    ids = list(rng.integers(0, special, 5))
    for token, count in counts.items():
        ids += [token] * count + list(rng.integers(0, special, 3))
    batch["input_ids"] = np.array([ids])
    batch["attention_mask"] = np.ones_like(batch["input_ids"])
    return batch


def llava_torch_forward(torch_model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' logits [B, T, V] and first-layer attention [B, N, T, T], in the model's dtype."""
    dtype = next(torch_model.parameters()).dtype
    args = {k: torch.from_numpy(v) for k, v in batch.items()}
    for key in ("pixel_values", "pixel_values_videos"):
        if key in args:
            args[key] = args[key].to(dtype)
    handle, attention = first_layer_attention(torch_model.model.language_model.layers[0].self_attn)
    try:
        with torch.no_grad():
            out = torch_model(**args)
    finally:
        handle.remove()
    return out.logits, attention[0]


def llava_flax_forward(model, batch: dict):
    """The Flax model's MLLMOutput with its first-layer attention."""
    return model(prepare_llava_inputs(model.config, **batch), return_first_layer_attention=True)


def llava_max_diffs(model, torch_model, batch: dict) -> dict[str, float]:
    """Max abs differences of logits and first-layer attention (float32 numpy)."""
    ours = llava_flax_forward(model, batch)
    return output_diffs(ours.logits, ours.first_layer_attention, *llava_torch_forward(torch_model, batch))


def load_llava_torch(hf_dir: str | os.PathLike, dtype: str = "float32"):
    """transformers' LLaVA-OneVision from a local directory, eager attention so attentions come back."""
    return LlavaOnevisionForConditionalGeneration.from_pretrained(
        hf_dir, attn_implementation="eager", dtype=getattr(torch, dtype), local_files_only=True
    ).eval()
