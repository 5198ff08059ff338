"""VILA1.5 against a PyTorch reference assembled here from transformers' LlamaForCausalLM and
SiglipVisionModel and VILA1.5's mlp_downsample projector written out below (no transformers class
exists and trust_remote_code is never used). Tiny random weights, float32, highest precision:
logits and first-layer attention within 1e-4, as for the other families. The tiles give an odd
5 x 5 patch grid, so the fold's zero padding is exercised (SigLIP-384 gives 27 x 27)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flax import nnx
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, SiglipVisionConfig, SiglipVisionModel

from tokcomp_jax.models.config import VILA_IMAGE_PLACEHOLDER, VilaConfig
from tokcomp_jax.models.loading import abstract_state, map_weights, merge_weights, nest
from tokcomp_jax.models.params_vila import vila_name_map
from tokcomp_jax.models.vila import Vila, expand_image_placeholders, prepare_vila_inputs

LLM = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, rms_norm_eps=1e-5, tie_word_embeddings=False)  # fmt: skip
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=70,
              patch_size=14)  # fmt: skip


class ReferenceDownSample(nn.Module):
    """VILA1.5's DownSampleBlock, as in its repository (llava/model/multimodal_projector)."""

    def forward(self, x):
        side = int(x.shape[1] ** 0.5)
        x = x.reshape(x.shape[0], side, side, -1)
        n, w, h, c = x.size()
        if w % 2 == 1:
            x = torch.cat([x, torch.zeros((n, 1, h, c), dtype=x.dtype)], dim=1)
            n, w, h, c = x.size()
        if h % 2 == 1:
            x = torch.cat([x, torch.zeros((n, w, 1, c), dtype=x.dtype)], dim=2)
            n, w, h, c = x.size()
        x = x.contiguous().view(n, w, h // 2, c * 2).permute(0, 2, 1, 3).contiguous().view(n, h // 2, w // 2, c * 4)
        return x.reshape(n, -1, c * 4)


class ReferenceProjector(nn.Module):
    """VILA1.5's mlp_downsample MultimodalProjector (its weights: layers.{1,2,4})."""

    def __init__(self, vision_width: int, width: int):
        super().__init__()
        folded = 4 * vision_width
        self.layers = nn.Sequential(
            ReferenceDownSample(), nn.LayerNorm(folded), nn.Linear(folded, width), nn.GELU(), nn.Linear(width, width)
        )

    def forward(self, x):
        return self.layers(x)


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    llm = LlamaForCausalLM._from_config(LlamaConfig(**LLM), attn_implementation="eager").eval()
    vision = SiglipVisionModel._from_config(SiglipVisionConfig(**VISION), attn_implementation="eager").eval()
    projector = ReferenceProjector(VISION["hidden_size"], LLM["hidden_size"]).eval()
    with torch.no_grad():  # random init leaves norms at 1 and 0; a dropped norm must not pass
        for part in (llm, vision, projector):
            for name, param in part.named_parameters():
                if "norm" in name or name.startswith("layers.1."):
                    param.add_(0.1 * torch.randn_like(param))
    config = VilaConfig.from_vila_configs({"mm_vision_select_layer": -2}, LlamaConfig(**LLM).to_dict(), VISION)
    graphdef, abstract = abstract_state(lambda: Vila(config, rngs=nnx.Rngs(0)))
    tensors = [
        (part, f"{part}/{name}", t.numpy())
        for part, module in (("llm", llm), ("vision_tower", vision), ("mm_projector", projector))
        for name, t in module.state_dict().items()
    ]
    model = merge_weights(graphdef, abstract, nest(map_weights(abstract, tensors, vila_name_map(False))))
    return (llm, vision, projector), model


def _reference(parts, input_ids, attention_mask, pixels):
    llm, vision, projector = parts
    ids = torch.from_numpy(input_ids)
    with torch.no_grad():
        embeds = llm.model.embed_tokens(ids.clamp(min=0))
        if pixels is not None:
            hidden = vision(torch.from_numpy(pixels), output_hidden_states=True).hidden_states[-2]
            embeds[ids == VILA_IMAGE_PLACEHOLDER] = projector(hidden).reshape(-1, embeds.shape[-1])
        out = llm(inputs_embeds=embeds, attention_mask=torch.from_numpy(attention_mask), output_attentions=True)
    return out.logits.numpy(), out.attentions[0].numpy()


@pytest.mark.parametrize("images", [1, 2, 4])  # one image, two images in one prompt, a 4-frame video
def test_logits_and_first_layer_attention_match_the_reference(pair, images):
    parts, model = pair
    rng = np.random.default_rng(images)
    prompt = [[*rng.integers(1, 200, 4), *[VILA_IMAGE_PLACEHOLDER] * images, *rng.integers(1, 200, 5)]]
    batch = expand_image_placeholders(model.config, np.array(prompt))
    pixels = rng.standard_normal((images, 3, 70, 70)).astype(np.float32)
    expected_logits, expected_attention = _reference(parts, batch["input_ids"], batch["attention_mask"], pixels)
    out = model(prepare_vila_inputs(model.config, **batch, pixel_values=pixels), return_first_layer_attention=True)
    assert model.config.tokens_per_image == 9 and (batch["input_ids"] == VILA_IMAGE_PLACEHOLDER).sum() == 9 * images
    assert np.abs(expected_logits).max() > 0.1
    assert np.abs(np.asarray(out.logits) - expected_logits).max() < 1e-4
    assert np.abs(np.asarray(out.first_layer_attention) - expected_attention).max() < 1e-4


def test_image_count_mismatch_is_a_clear_error(pair):
    _, model = pair
    batch = expand_image_placeholders(model.config, np.array([[5, VILA_IMAGE_PLACEHOLDER, 6]]))
    with pytest.raises(ValueError, match="2 images make 18 tokens but input_ids holds 9"):
        prepare_vila_inputs(model.config, **batch, pixel_values=np.zeros((2, 3, 70, 70), np.float32))
