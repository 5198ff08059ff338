"""VILA1.5 against a PyTorch reference assembled from transformers' LlamaForCausalLM and
SiglipVisionModel and VILA1.5's mlp_downsample projector (conversion/verify_vila.py: no
transformers class exists and trust_remote_code is never used). The port is loaded the way a
released VILA1.5 directory is: llm/, vision_tower/ and mm_projector/ read directly. Tiny random
weights, float32, highest precision: logits and first-layer attention within 1e-4, as for the
other families. Tiles give an odd 5 x 5 patch grid, so the fold's zero padding is exercised
(SigLIP-384 gives 27 x 27)."""

from __future__ import annotations

import numpy as np
import pytest

import tokcomp_jax
from conversion.verify_vila import save_tiny_vila, vila_batch, vila_max_diffs
from tokcomp_jax.models.vila.config import VILA_IMAGE_PLACEHOLDER
from tokcomp_jax.models.vila.modeling import prepare_vila_inputs


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vila")
    reference = save_tiny_vila(directory)
    return reference, tokcomp_jax.load(directory)


@pytest.mark.parametrize("images", [1, 2, 4])  # one image, two images in one prompt, a 4-frame video
def test_logits_and_first_layer_attention_match_the_reference(pair, images):
    reference, model = pair
    batch = vila_batch(model.config, images, seed=images)
    assert model.config.tokens_per_image == 9 and (batch["input_ids"] == VILA_IMAGE_PLACEHOLDER).sum() == 9 * images
    diffs = vila_max_diffs(model, reference, batch)
    assert diffs["logits_max_abs"] > 0.1
    assert diffs["logits_max_abs_diff"] < 1e-4 and diffs["attn1_max_abs_diff"] < 1e-4, diffs


def test_image_count_mismatch_is_a_clear_error(pair):
    _, model = pair
    batch = vila_batch(model.config, 1)
    batch["pixel_values"] = np.concatenate([batch["pixel_values"]] * 2)
    with pytest.raises(ValueError, match="2 images make 18 tokens but input_ids holds 9"):
        prepare_vila_inputs(model.config, **batch)
