"""The PyTorch reference of each family for `python -m conversion.convert --verify`: the max abs
diffs of logits and first-layer attention on generated media (an image or two, a video).

Each family has three parts: `run(src, dtype)` runs the PyTorch model on generated inputs and returns
(batch, logits, first-layer attention), its model freed on return; `forward(model, batch)` runs the
Flax model on the same batch and returns its (logits, first-layer attention); `between(batch, logits,
attention, other_logits, other_attention)` compares two such outputs (ours against the reference, or
the reference in bfloat16 against float32). `--verify` runs them one after the other, so only one
model is in memory at a time (two float32 copies of a 2B model are 18 GB).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from tokcomp_jax.models.checkpoint import read_hf_config
from tokcomp_jax.models.llava_onevision.family import LLAVA_ONEVISION
from tokcomp_jax.models.qwen2_5_vl.family import QWEN2_5_VL
from tokcomp_jax.models.qwen2_vl.family import QWEN2_VL
from tokcomp_jax.models.qwen3_vl.family import QWEN3_VL
from tokcomp_jax.models.vila.family import VILA

VERIFY_MEDIA = [[("image", 84, 140)]]


def _qwen2vl_reference(src: Path, dtype: str):
    from conversion.verify import load_torch_model, random_batch, torch_forward

    _, config = read_hf_config(src)
    batch = random_batch(config, VERIFY_MEDIA)
    return batch, *torch_forward(load_torch_model(src, dtype), config, batch)


def _qwen2vl_forward(model, batch):
    from conversion.verify import flax_forward

    return flax_forward(model, batch)


def _qwen2vl_between(batch, logits, attention, other_logits, other_attention) -> dict[str, float]:
    from conversion.verify import masked_diffs

    return masked_diffs(logits, attention, other_logits, other_attention, batch["attention_mask"])


def _llava_onevision_reference(src: Path, dtype: str):
    from conversion.verify_llava import llava_batch, llava_torch_forward, load_llava_torch

    torch_model = load_llava_torch(src, dtype)
    tile = torch_model.config.vision_config.image_size
    batch = llava_batch(torch_model, images=[(tile * 3 // 2, tile * 5 // 2)], frames=2)  # a wide, tiled image
    return batch, *llava_torch_forward(torch_model, batch)


def _llava_onevision_forward(model, batch):
    from conversion.verify_llava import llava_flax_forward

    out = llava_flax_forward(model, batch)
    return out.logits, out.first_layer_attention


def _vila_reference(src: Path, dtype: str):
    from conversion.verify_vila import load_vila_reference, vila_batch, vila_torch_forward

    _, config = read_hf_config(src)
    batch = vila_batch(config, images=2)
    return batch, *vila_torch_forward(load_vila_reference(src, dtype), config, batch)


def _vila_forward(model, batch):
    from conversion.verify_vila import vila_flax_forward

    out = vila_flax_forward(model, batch)
    return out.logits, out.first_layer_attention


def _unpadded_between(batch, logits, attention, other_logits, other_attention) -> dict[str, float]:
    from conversion.verify import output_diffs

    return output_diffs(logits, attention, other_logits, other_attention)


class Reference(NamedTuple):
    run: object  # (HF directory, dtype) -> (batch, logits, first-layer attention)
    forward: object  # (Flax model, batch) -> (logits, first-layer attention)
    between: object  # (batch, logits, attention, other logits, other attention) -> max abs diffs


QWEN = Reference(_qwen2vl_reference, _qwen2vl_forward, _qwen2vl_between)  # transformers' class: the model_type
REFERENCES = {
    QWEN2_VL.name: QWEN,
    QWEN2_5_VL.name: QWEN,
    QWEN3_VL.name: QWEN,
    LLAVA_ONEVISION.name: Reference(_llava_onevision_reference, _llava_onevision_forward, _unpadded_between),
    VILA.name: Reference(_vila_reference, _vila_forward, _unpadded_between),
}


def reference_diffs(model, src: Path, dtype: str) -> dict[str, float]:
    """The diffs of an already loaded Flax model against its family's reference on `src` (both in memory)."""
    reference = REFERENCES[model.config.family]
    batch, logits, attention = reference.run(src, dtype)
    return reference.between(batch, *reference.forward(model, batch), logits, attention)
