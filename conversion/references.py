"""The PyTorch reference of each family for `python -m conversion.convert --verify`: the max abs
diffs of logits and first-layer attention on generated media (an image or two, a video)."""

from __future__ import annotations

from pathlib import Path

from tokcomp_jax.models.llava_onevision.family import LLAVA_ONEVISION
from tokcomp_jax.models.qwen2_5_vl.family import QWEN2_5_VL
from tokcomp_jax.models.qwen2_vl.family import QWEN2_VL
from tokcomp_jax.models.qwen3_vl.family import QWEN3_VL
from tokcomp_jax.models.vila.family import VILA

VERIFY_MEDIA = [[("image", 84, 140)]]


def _qwen2vl_diffs(model, src: Path, dtype: str) -> dict[str, float]:
    from conversion.verify import load_torch_model, max_diffs, random_batch

    return max_diffs(model, load_torch_model(src, dtype), random_batch(model.config, VERIFY_MEDIA))


def _llava_onevision_diffs(model, src: Path, dtype: str) -> dict[str, float]:
    from conversion.verify_llava import llava_batch, llava_max_diffs, load_llava_torch

    torch_model = load_llava_torch(src, dtype)
    tile = model.config.vision.image_size
    batch = llava_batch(torch_model, images=[(tile * 3 // 2, tile * 5 // 2)], frames=2)  # a wide, tiled image
    return llava_max_diffs(model, torch_model, batch)


def _vila_diffs(model, src: Path, dtype: str) -> dict[str, float]:
    from conversion.verify_vila import load_vila_reference, vila_batch, vila_max_diffs

    return vila_max_diffs(model, load_vila_reference(src, dtype), vila_batch(model.config, images=2))


# One entry per family: its name -> diffs(converted model, HF directory, dtype) against its PyTorch reference.
REFERENCE_DIFFS = {
    QWEN2_VL.name: _qwen2vl_diffs,
    QWEN2_5_VL.name: _qwen2vl_diffs,  # the same check: transformers' class follows config.json's model_type
    QWEN3_VL.name: _qwen2vl_diffs,
    LLAVA_ONEVISION.name: _llava_onevision_diffs,
    VILA.name: _vila_diffs,
}
