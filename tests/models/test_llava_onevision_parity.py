"""LLaVA-OneVision against transformers' LlavaOnevisionForConditionalGeneration on tiny random
weights (float32, highest precision): logits and first-layer attention within 1e-4, the same
tolerance and reason as Qwen2-VL's parity. Cases: one wide and one tall image (anyres grid and
unpad), downsampling past anyres_max_N, two images in one prompt (untiled), a video."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from conversion.tiny import tiny_llava_model
from conversion.verify_llava import llava_batch, llava_max_diffs
from tokcomp_jax.models.llava_onevision.config import LlavaOnevisionConfig
from tokcomp_jax.models.llava_onevision.modeling import LlavaOnevision, prepare_llava_inputs
from tokcomp_jax.models.llava_onevision.params import llava_onevision_name_map
from tokcomp_jax.models.loading import abstract_state, map_weights, merge_weights, nest

IMAGE, VIDEO = 250, 251


def _pair(aspect_ratio: str):
    reference = tiny_llava_model(aspect_ratio=aspect_ratio)
    config = LlavaOnevisionConfig.from_hf_config(reference.config.to_dict())
    graphdef, abstract = abstract_state(lambda: LlavaOnevision(config, rngs=nnx.Rngs(0)))
    tensors = (("torch", name, t.numpy()) for name, t in reference.state_dict().items())
    weights = map_weights(abstract, tensors, llava_onevision_name_map(config.text.tie_word_embeddings))
    return reference, merge_weights(graphdef, abstract, nest(weights))


@pytest.fixture(scope="module")
def models():
    return {ratio: _pair(ratio) for ratio in ("anyres_max_9", "anyres_max_1")}


CASES = {
    "wide_image": dict(images=[(40, 100)]),
    "tall_image": dict(images=[(100, 60)]),
    "two_images_one_prompt": dict(images=[(40, 100), (60, 60)]),
    "video_4_frames": dict(frames=4),  # 4x4 tile features pooled to 2x2 per frame, one newline
    "image_and_video": dict(images=[(70, 50)], frames=2),
}


@pytest.mark.parametrize("ratio,case", [("anyres_max_9", c) for c in CASES] + [("anyres_max_1", "wide_image")])
def test_logits_and_first_layer_attention_match_transformers(models, ratio, case):
    reference, model = models[ratio]
    batch = llava_batch(reference, **CASES[case])
    diffs = llava_max_diffs(model, reference, batch)
    assert diffs["logits_max_abs"] > 0.1
    assert diffs["logits_max_abs_diff"] < 1e-4 and diffs["attn1_max_abs_diff"] < 1e-4, diffs
    inputs = prepare_llava_inputs(model.config, **batch)
    assert int(inputs.visual_token_mask.sum()) == int(np.isin(batch["input_ids"], (IMAGE, VIDEO)).sum())


def test_token_count_mismatch_is_a_clear_error(models):
    reference, model = models["anyres_max_9"]
    batch = llava_batch(reference, images=[(40, 100)])
    batch["input_ids"][0, 5] = 7  # the first image token becomes text: one too few
    with pytest.raises(ValueError, match="the images make .* tokens but input_ids holds"):
        prepare_llava_inputs(model.config, **batch)
