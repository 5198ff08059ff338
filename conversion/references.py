"""The PyTorch reference of each family for `python -m conversion.convert --verify`: the max abs
diffs of logits and first-layer attention on generated media (an image or two, a video).

Each family has three parts: `reference(src, dtype)` runs the PyTorch model on generated inputs and
returns (batch, logits, first-layer attention), its model freed on return; `diffs(model, batch, logits,
attention)` runs the Flax model on the same batch; `between(batch, logits, attention, other_logits,
other_attention)` compares two references' outputs (the bfloat16 one against float32) the same way.
`--verify` runs them one after the other, so only one model is in memory at a time (two float32
copies of a 2B model are 18 GB).
"""

from __future__ import annotations

import types
from pathlib import Path

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


def _qwen2vl_diffs(model, batch, logits, attention) -> dict[str, float]:
    from conversion.verify import flax_forward, masked_diffs

    return masked_diffs(*flax_forward(model, batch), logits, attention, batch["attention_mask"])


def _qwen2vl_between(batch, logits, attention, other_logits, other_attention) -> dict[str, float]:
    from conversion.verify import masked_diffs

    return masked_diffs(logits, attention, other_logits, other_attention, batch["attention_mask"])


def _llava_onevision_reference(src: Path, dtype: str):
    from conversion.verify_llava import llava_batch, llava_torch_forward, load_llava_torch

    torch_model = load_llava_torch(src, dtype)
    tile = torch_model.config.vision_config.image_size
    batch = llava_batch(torch_model, images=[(tile * 3 // 2, tile * 5 // 2)], frames=2)  # a wide, tiled image
    return batch, *llava_torch_forward(torch_model, batch)


def _llava_onevision_diffs(model, batch, logits, attention) -> dict[str, float]:
    from conversion.verify import output_diffs
    from conversion.verify_llava import llava_flax_forward

    return output_diffs(llava_flax_forward(model, batch), logits, attention)


def _vila_reference(src: Path, dtype: str):
    from conversion.verify_vila import load_vila_reference, vila_batch, vila_torch_forward

    _, config = read_hf_config(src)
    batch = vila_batch(config, images=2)
    return batch, *vila_torch_forward(load_vila_reference(src, dtype), config, batch)


def _vila_diffs(model, batch, logits, attention) -> dict[str, float]:
    from conversion.verify import output_diffs
    from conversion.verify_vila import vila_flax_forward

    return output_diffs(vila_flax_forward(model, batch), logits, attention)


def _unpadded_between(batch, logits, attention, other_logits, other_attention) -> dict[str, float]:
    from conversion.verify import output_diffs

    outputs = types.SimpleNamespace(logits=logits, first_layer_attention=attention)
    return output_diffs(outputs, other_logits, other_attention)


# One entry per family: its name -> (reference(HF directory, dtype), diffs(converted model, batch, logits, attention),
# between(batch, logits, attention, other logits, other attention)).
REFERENCES = {
    QWEN2_VL.name: (_qwen2vl_reference, _qwen2vl_diffs, _qwen2vl_between),
    QWEN2_5_VL.name: (_qwen2vl_reference, _qwen2vl_diffs, _qwen2vl_between),  # transformers' class: the model_type
    QWEN3_VL.name: (_qwen2vl_reference, _qwen2vl_diffs, _qwen2vl_between),
    LLAVA_ONEVISION.name: (_llava_onevision_reference, _llava_onevision_diffs, _unpadded_between),
    VILA.name: (_vila_reference, _vila_diffs, _unpadded_between),
}


def reference_diffs(model, src: Path, dtype: str) -> dict[str, float]:
    """The diffs of an already loaded Flax model against its family's reference on `src` (both in memory)."""
    reference, diffs, _ = REFERENCES[model.config.family]
    return diffs(model, *reference(src, dtype))
