"""The SigLIP vision tower (LLaVA-OneVision, VILA1.5) against transformers' SiglipVisionModel on
the same tiny random weights, float32 at highest precision. Tolerance 1e-5: only the summation
order differs; a transposed patch kernel or a misplaced norm moves values by > 1e-2. Tiles of 60
pixels with 14-pixel patches leave 4 pixels unused, as SigLIP's 384-pixel tiles leave 6."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from transformers import SiglipVisionConfig as HFSiglipVisionConfig
from transformers import SiglipVisionModel

from tokcomp_jax.models.common.config import SiglipVisionConfig
from tokcomp_jax.models.common.params_siglip import siglip_ignored, siglip_rules
from tokcomp_jax.models.common.siglip import SiglipVisionTower
from tokcomp_jax.models.loading import NameMap, abstract_state, map_weights, merge_weights, nest

HF = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=56, patch_size=14
)


@pytest.fixture(scope="module")
def towers():
    torch.manual_seed(0)
    reference = SiglipVisionModel._from_config(HFSiglipVisionConfig(**HF), attn_implementation="eager").eval()
    with torch.no_grad():  # random init leaves norms at 1 and 0; perturb them so a dropped norm cannot pass
        for name, param in reference.named_parameters():
            if "norm" in name:
                param.add_(0.1 * torch.randn_like(param))
    config = SiglipVisionConfig.from_hf_config(HF)
    graphdef, abstract = abstract_state(lambda: SiglipVisionTower(config, dtype=jnp.float32, rngs=nnx.Rngs(0)))
    source = r"(?:vision_model\.)?"
    name_map = NameMap(siglip_rules(source, ""), ignored=siglip_ignored(source))
    tensors = (("torch", name, t.numpy()) for name, t in reference.state_dict().items())
    return reference, merge_weights(graphdef, abstract, nest(map_weights(abstract, tensors, name_map)))


@pytest.mark.parametrize("feature_layer", [-1, 1, 0])
def test_hidden_states_match_transformers(towers, feature_layer):
    reference, tower = towers
    pixels = np.random.default_rng(1).standard_normal((2, 3, 60, 60)).astype(np.float32)
    with torch.no_grad():
        out = reference(torch.from_numpy(pixels), output_hidden_states=True)
    expected = out.hidden_states[feature_layer].numpy()
    got = np.asarray(tower(jnp.asarray(pixels), feature_layer=feature_layer))
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(got, expected, atol=1e-5)
    if feature_layer == -1:
        np.testing.assert_allclose(np.asarray(tower(jnp.asarray(pixels), post_norm=True)),
                                   out.last_hidden_state.numpy(), atol=1e-5)  # fmt: skip


def test_wrong_image_size_is_a_clear_error(towers):
    with pytest.raises(ValueError, match="25 patches, but the tower has 16 positions"):
        towers[1](jnp.zeros((1, 3, 70, 70)))
