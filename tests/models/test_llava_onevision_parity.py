"""LLaVA-OneVision against transformers' LlavaOnevisionForConditionalGeneration on tiny random
weights (float32, highest precision): logits and first-layer attention within 1e-4, the same
tolerance and reason as Qwen2-VL's parity. Cases: one wide and one tall image (anyres grid and
unpad), downsampling past anyres_max_N, two images in one prompt (untiled), a video."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flax import nnx
from transformers import LlavaOnevisionConfig as HFConfig
from transformers import LlavaOnevisionForConditionalGeneration
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
    LlavaOnevisionImageProcessorPil,
)

from tokcomp_jax.models.config import LlavaOnevisionConfig
from tokcomp_jax.models.llava_onevision import LlavaOnevision, prepare_llava_inputs
from tokcomp_jax.models.loading import abstract_state, map_weights, merge_weights, nest
from tokcomp_jax.models.params_llava import llava_onevision_name_map

PINPOINTS = [[56, 56], [56, 112], [112, 56], [112, 112], [56, 168], [168, 56], [112, 168], [168, 112]]
IMAGE, VIDEO = 250, 251


def _hf_config(aspect_ratio: str) -> HFConfig:
    return HFConfig(
        text_config=dict(
            model_type="qwen2", vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ),
        vision_config=dict(
            model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, image_size=56, patch_size=14,
        ),
        image_token_index=IMAGE, video_token_index=VIDEO, image_grid_pinpoints=PINPOINTS, vision_feature_layer=-1,
        vision_feature_select_strategy="full", vision_aspect_ratio=aspect_ratio, tie_word_embeddings=False,
    )  # fmt: skip


def _pair(aspect_ratio: str):
    torch.manual_seed(0)
    hf = _hf_config(aspect_ratio)
    reference = LlavaOnevisionForConditionalGeneration._from_config(hf, attn_implementation="eager").eval()
    with torch.no_grad():
        for name, param in reference.named_parameters():
            if "norm" in name:
                param.add_(0.1 * torch.randn_like(param))
    config = LlavaOnevisionConfig.from_hf_config(hf.to_dict())
    graphdef, abstract = abstract_state(lambda: LlavaOnevision(config, rngs=nnx.Rngs(0)))
    tensors = (("torch", name, t.numpy()) for name, t in reference.state_dict().items())
    weights = map_weights(abstract, tensors, llava_onevision_name_map(config.text.tie_word_embeddings))
    return reference, merge_weights(graphdef, abstract, nest(weights))


@pytest.fixture(scope="module")
def models():
    return {ratio: _pair(ratio) for ratio in ("anyres_max_9", "anyres_max_1")}


def _batch(reference, images=(), frames=0, seed=0) -> dict:
    """Text, the media's tokens (as many as transformers' own features), text; one sample."""
    rng = np.random.default_rng(seed)
    batch, count = {}, {}
    if images:
        processor = LlavaOnevisionImageProcessorPil(size={"height": 56, "width": 56}, image_grid_pinpoints=PINPOINTS)
        arrays = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in images]
        out = processor(arrays, return_tensors="np")
        batch.update(pixel_values=out["pixel_values"], image_sizes=out["image_sizes"],
                     batch_num_images=np.array([len(images)]))  # fmt: skip
        with torch.no_grad():
            features = reference.model.get_image_features(
                torch.from_numpy(batch["pixel_values"]), torch.from_numpy(batch["image_sizes"]),
                batch_num_images=torch.from_numpy(batch["batch_num_images"]),
            ).pooler_output  # fmt: skip
        count[IMAGE] = sum(len(f) for f in features)
    if frames:
        batch["pixel_values_videos"] = rng.standard_normal((1, frames, 3, 56, 56)).astype(np.float32)
        count[VIDEO] = frames * 4 + 1  # 4x4 tile features pooled to 2x2 per frame, one newline
    ids = list(rng.integers(0, IMAGE, 5))
    for token, n in count.items():
        ids += [token] * n + list(rng.integers(0, IMAGE, 3))
    batch["input_ids"] = np.array([ids])
    batch["attention_mask"] = np.ones_like(batch["input_ids"])
    return batch


CASES = {
    "wide_image": dict(images=[(40, 100)]),
    "tall_image": dict(images=[(100, 60)]),
    "two_images_one_prompt": dict(images=[(40, 100), (60, 60)]),
    "video_4_frames": dict(frames=4),
    "image_and_video": dict(images=[(70, 50)], frames=2),
}


@pytest.mark.parametrize("ratio,case", [("anyres_max_9", c) for c in CASES] + [("anyres_max_1", "wide_image")])
def test_logits_and_first_layer_attention_match_transformers(models, ratio, case):
    reference, model = models[ratio]
    batch = _batch(reference, **CASES[case])
    args = {k: torch.from_numpy(v) for k, v in batch.items()}
    with torch.no_grad():
        out = reference(**args, output_attentions=True)
    inputs = prepare_llava_inputs(model.config, **batch)
    ours = model(inputs, return_first_layer_attention=True)
    expected_logits = out.logits.numpy()
    assert np.abs(expected_logits).max() > 0.1
    assert np.abs(np.asarray(ours.logits) - expected_logits).max() < 1e-4
    assert np.abs(np.asarray(ours.first_layer_attention) - out.attentions[0].numpy()).max() < 1e-4
    assert int(inputs.visual_token_mask.sum()) == int(np.isin(batch["input_ids"], (IMAGE, VIDEO)).sum())


def test_token_count_mismatch_is_a_clear_error(models):
    reference, model = models["anyres_max_9"]
    batch = _batch(reference, images=[(40, 100)])
    batch["input_ids"][0, 5] = 7  # the first image token becomes text: one too few
    with pytest.raises(ValueError, match="the images make .* tokens but input_ids holds"):
        prepare_llava_inputs(model.config, **batch)
