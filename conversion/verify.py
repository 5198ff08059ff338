"""Parity of a Flax port with transformers' PyTorch model on the same weights and generated inputs.

Used by `python -m conversion.convert --verify` and by the parity tests. Inputs are random
images/videos through the real image processor and random text ids around the vision tokens,
so no tokenizer is needed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.models.qwen2_vl.positions import token_types
from tokcomp_jax.models.qwen2_vl.processor import image_processor, process_images, process_video
from tokcomp_jax.models.qwen3_vl.modeling import frame_grids

# A media item: ("image", height, width) or ("video", frames, height, width).
Media = tuple

# The input shapes parity is checked on: one list of media items per batch row.
PARITY_CASES = {
    "square_image": [[("image", 112, 112)]],
    "non_square_image": [[("image", 84, 168)]],
    "two_images_one_prompt": [[("image", 56, 112), ("image", 112, 84)]],
    "video_4_frames": [[("video", 4, 84, 112)]],
    "image_and_video": [[("image", 56, 56), ("video", 3, 56, 84)]],
    "padded_batch_two_sizes": [[("image", 112, 112)], [("image", 56, 84)]],
    "text_only": [[]],
}


def random_batch(
    config: Qwen2VLConfig, rows: Sequence[Sequence[Media]], seed: int = 0, text_length: int = 4
) -> dict[str, np.ndarray]:
    """A right-padded batch: each row is text, then per media item <start> pads <end> text (for a
    family with `timestamped_frames`, each temporal patch of a video: 2 text ids, <start> pads <end>).

    Returns numpy arrays named as transformers names them (input_ids, attention_mask,
    pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw).
    """
    rng = np.random.default_rng(seed)
    family = FAMILIES[config.family]
    processor = image_processor(config, max_pixels=28 * 28 * 64)
    merge = config.vision.spatial_merge_size
    special = min(
        config.image_token_id, config.video_token_id, config.vision_start_token_id, config.vision_end_token_id
    )
    images, image_grids, videos, video_grids, sequences = [], [], [], [], []
    for row in rows:
        ids = list(rng.integers(0, special, text_length))
        for item in row:
            if item[0] == "image":
                pixels, grid = process_images(processor, [rng.integers(0, 256, (*item[1:], 3), dtype=np.uint8)])
                images.append(pixels)
                image_grids.append(grid)
                token = config.image_token_id
            else:
                frames = rng.integers(0, 256, (*item[1:], 3), dtype=np.uint8)
                pixels, grid = process_video(processor, frames)
                videos.append(pixels)
                video_grids.append(grid)
                token = config.video_token_id
            runs = [grid] if item[0] == "image" or not family.timestamped_frames else frame_grids(grid)
            for run in runs:  # Qwen3-VL: each temporal patch its own run, after its "timestamp" text
                ids += list(rng.integers(0, special, 2)) if len(runs) > 1 else []
                ids += [config.vision_start_token_id] + [token] * (int(run.prod()) // merge**2)
                ids += [config.vision_end_token_id]
            ids += list(rng.integers(0, special, text_length))
        sequences.append(ids)
    length = max(len(s) for s in sequences)
    batch = {
        "input_ids": np.array([s + [0] * (length - len(s)) for s in sequences], dtype=np.int64),
        "attention_mask": np.array([[1] * len(s) + [0] * (length - len(s)) for s in sequences], dtype=np.int64),
    }
    if images:
        batch["pixel_values"], batch["image_grid_thw"] = np.concatenate(images), np.concatenate(image_grids)
    if videos:
        batch["pixel_values_videos"], batch["video_grid_thw"] = np.concatenate(videos), np.concatenate(video_grids)
    return batch


def torch_forward(model, config: Qwen2VLConfig, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """transformers' logits [B, T, V] and first-layer attention [B, N, T, T] (float32 numpy)."""
    args = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
    types = token_types(batch["input_ids"], config.image_token_id, config.video_token_id)
    dtype = next(model.parameters()).dtype
    for key in ("pixel_values", "pixel_values_videos"):
        if key in args:
            args[key] = args[key].to(dtype)
    with torch.no_grad():
        out = model(**args, mm_token_type_ids=torch.from_numpy(types), output_attentions=True)
    return out.logits.float().numpy(), out.attentions[0].float().numpy()


def flax_forward(model, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The Flax model's logits [B, T, V] and first-layer attention [B, N, T, T] (float32 numpy)."""
    inputs = FAMILIES[model.config.family].prepare_inputs(model.config, **batch)
    out = model(inputs, return_first_layer_attention=True)
    return np.asarray(out.logits, np.float32), np.asarray(out.first_layer_attention, np.float32)


def max_diffs(model, torch_model, batch: dict[str, np.ndarray]) -> dict[str, float]:
    """Max abs differences of logits and first-layer attention over real (unpadded) positions."""
    reference = torch_forward(torch_model, model.config, batch)
    return masked_diffs(*flax_forward(model, batch), *reference, batch["attention_mask"])


def masked_diffs(jax_logits, jax_attention, ref_logits, ref_attention, attention_mask) -> dict[str, float]:
    """Max abs differences of logits [B, T, V] and first-layer attention [B, N, T, T] over the positions
    `attention_mask` [B, T] marks real."""
    real = attention_mask.astype(bool)
    pairs = real[:, :, None] & real[:, None, :]
    return {
        "logits_max_abs_diff": float(np.abs(jax_logits - ref_logits)[real].max()),
        "attn1_max_abs_diff": float(np.abs(jax_attention - ref_attention).transpose(0, 2, 3, 1)[pairs].max()),
        "logits_max_abs": float(np.abs(ref_logits)[real].max()),
    }


def _float32(block) -> np.ndarray:
    return block.float().numpy() if isinstance(block, torch.Tensor) else np.asarray(block, np.float32)


def _blockwise_max(function, *arrays, axis: int, block: int = 256) -> float:
    """max of function(*blocks) over blocks of `block` positions along `axis` of the arrays (numpy, jax or
    torch, as float32): a full-size vocabulary's logits or a long prompt's attention are GBs, and a whole
    float32 difference would be one more copy of them."""
    length, index = arrays[0].shape[axis], [slice(None)] * arrays[0].ndim
    result = 0.0
    for start in range(0, length, block):
        index[axis] = slice(start, start + block)
        result = max(result, float(function(*(_float32(array[tuple(index)]) for array in arrays))))
    return result


def output_diffs(logits, attention, reference_logits, reference_attention) -> dict[str, float]:
    """Max abs differences of logits [B, T, V] and first-layer attention [B, N, T, T] (Flax or PyTorch) against
    the reference's, over every position (unpadded single-sample batches), a block of positions at a time."""
    difference = lambda a, b: np.abs(a - b).max()  # noqa: E731
    return {
        "logits_max_abs_diff": _blockwise_max(difference, logits, reference_logits, axis=1),
        "attn1_max_abs_diff": _blockwise_max(difference, attention, reference_attention, axis=2),
        "logits_max_abs": _blockwise_max(lambda block: np.abs(block).max(), reference_logits, axis=1),
    }


def first_layer_attention(layer_attention: torch.nn.Module):
    """A forward hook on the first decoder layer's attention module (eager attention) and the list it fills
    with that layer's probabilities [B, N, T, T]: `output_attentions=True` would keep every layer's, GBs
    each for a long prompt. Returns (handle, captured); remove the handle after the forward."""
    captured = []
    handle = layer_attention.register_forward_hook(lambda module, args, output: captured.append(output[1]))
    return handle, captured


def load_torch_model(hf_dir: str | os.PathLike, dtype: str = "float32"):
    """transformers' Qwen2-VL, Qwen2.5-VL or Qwen3-VL (by config.json's model_type) from a local directory,
    eager attention so attentions come back."""
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(
        hf_dir, attn_implementation="eager", dtype=getattr(torch, dtype), local_files_only=True
    ).eval()


def main(argv: list[str] | None = None) -> None:
    """Print a markdown table of float32 diffs per parity case for a HF directory (a new tiny one by default)."""
    import argparse
    import tempfile

    import jax

    from conversion.tiny import TINY_CHECKPOINTS
    from tokcomp_jax import load

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--src", help="HF directory; default: a tiny random checkpoint (conversion.tiny defaults)")
    parser.add_argument(
        "--tiny", choices=("qwen2_vl", "qwen2_5_vl", "qwen3_vl"), default="qwen2_vl", help="family of the tiny one"
    )
    args = parser.parse_args(argv)
    jax.config.update("jax_default_matmul_precision", "highest")
    src = args.src or tempfile.mkdtemp()
    if not args.src:
        TINY_CHECKPOINTS[args.tiny][0](src, 0)
    torch_model, model = load_torch_model(src), load(src)
    print("| case | logits max abs diff | attn1 max abs diff | max abs logits |\n|---|---|---|---|")
    for case, rows in PARITY_CASES.items():
        diffs = max_diffs(model, torch_model, random_batch(model.config, rows, seed=1))
        print(
            f"| {case} | {diffs['logits_max_abs_diff']:.2e} | {diffs['attn1_max_abs_diff']:.2e} | "
            f"{diffs['logits_max_abs']:.3f} |"
        )


if __name__ == "__main__":
    main()
