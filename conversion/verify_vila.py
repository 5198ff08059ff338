"""A PyTorch VILA1.5 reference assembled from transformers' LlamaForCausalLM and SiglipVisionModel
and VILA1.5's mlp_downsample projector (written out here: VILA ships it as remote code, which is
never run), tiny VILA1.5 directories in the released layout, and the parity of the Flax port.

Directory layout: config.json (model_type llava_llama, llm_cfg, vision_tower_cfg,
mm_projector_cfg, mm_vision_select_layer), llm/ (a Llama checkpoint), vision_tower/ (a SigLIP
vision checkpoint), mm_projector/ (model.safetensors with layers.{1,2,4}.*).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, SiglipVisionConfig, SiglipVisionModel

from conversion.verify import output_diffs
from tokcomp_jax.models.vila.config import VILA_IMAGE_PLACEHOLDER
from tokcomp_jax.models.vila.modeling import expand_image_placeholders, prepare_vila_inputs


class ReferenceDownSample(nn.Module):
    """VILA1.5's DownSampleBlock (llava/model/multimodal_projector): fold 2 x 2 neighbours into channels."""

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


def save_tiny_vila(directory: str | os.PathLike, seed: int = 0, llm: dict | None = None, vision: dict | None = None):
    """A random tiny VILA1.5 directory (norms perturbed so a dropped one cannot pass); returns the parts."""
    torch.manual_seed(seed)
    llm_config = LlamaConfig(**{
        "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
        **(llm or {}),
    })  # fmt: skip
    vision_config = SiglipVisionConfig(**{
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
        "image_size": 70, "patch_size": 14, **(vision or {}),
    })  # fmt: skip
    parts = (
        LlamaForCausalLM._from_config(llm_config, attn_implementation="eager").eval(),
        SiglipVisionModel._from_config(vision_config, attn_implementation="eager").eval(),
        ReferenceProjector(vision_config.hidden_size, llm_config.hidden_size).eval(),
    )
    with torch.no_grad():
        for part in parts:
            for name, param in part.named_parameters():
                if "norm" in name or name.startswith("layers.1."):
                    param.add_(0.1 * torch.randn_like(param))
    directory = Path(directory)
    parts[0].save_pretrained(directory / "llm")
    parts[1].save_pretrained(directory / "vision_tower")
    (directory / "mm_projector").mkdir(parents=True, exist_ok=True)
    save_file(parts[2].state_dict(), directory / "mm_projector" / "model.safetensors")
    top = {
        "model_type": "llava_llama", "architectures": ["LlavaLlamaModel"], "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "cls_patch", "llm_cfg": llm_config.to_dict(),
        "vision_tower_cfg": vision_config.to_dict(), "mm_projector_cfg": {"mm_projector_type": "mlp_downsample"},
    }  # fmt: skip
    (directory / "config.json").write_text(json.dumps(top, indent=2))
    return parts


def load_vila_reference(directory: str | os.PathLike, dtype: str = "float32"):
    """(llm, vision tower, projector) of a VILA1.5 directory, in PyTorch."""
    directory, torch_dtype = Path(directory), getattr(torch, dtype)
    kwargs = dict(attn_implementation="eager", dtype=torch_dtype, local_files_only=True)
    llm = LlamaForCausalLM.from_pretrained(directory / "llm", **kwargs).eval()
    vision = SiglipVisionModel.from_pretrained(directory / "vision_tower", **kwargs).eval()
    weights = load_file(directory / "mm_projector" / "model.safetensors")
    projector = ReferenceProjector(vision.config.hidden_size, llm.config.hidden_size)
    projector.load_state_dict(weights)
    return llm, vision, projector.to(torch_dtype).eval()


def vila_batch(config, images: int, seed: int = 0) -> dict:
    """One prompt: text, `images` placeholders (expanded), text; random tiles of the tower's size."""
    rng = np.random.default_rng(seed)
    prompt = [[*rng.integers(1, 200, 4), *[VILA_IMAGE_PLACEHOLDER] * images, *rng.integers(1, 200, 5)]]
    size = config.vision.image_size
    return {**expand_image_placeholders(config, np.array(prompt)),
            "pixel_values": rng.standard_normal((images, 3, size, size)).astype(np.float32)}  # fmt: skip


def vila_torch_forward(reference, config, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The assembled reference's logits [B, T, V] and first-layer attention [B, N, T, T] (our VilaConfig
    names the vision feature layer), in the reference's dtype."""
    llm, vision, projector = reference
    dtype = next(llm.parameters()).dtype
    ids = torch.from_numpy(batch["input_ids"])
    with torch.no_grad():
        embeds = llm.model.embed_tokens(ids.clamp(min=0))
        layer = config.vision_feature_layer
        hidden = vision(torch.from_numpy(batch["pixel_values"]).to(dtype), output_hidden_states=True).hidden_states
        embeds[ids == VILA_IMAGE_PLACEHOLDER] = projector(hidden[layer]).reshape(-1, embeds.shape[-1])
        out = llm(
            inputs_embeds=embeds, attention_mask=torch.from_numpy(batch["attention_mask"]), output_attentions=True
        )
    return out.logits, out.attentions[0]


def vila_flax_forward(model, batch: dict):
    """The Flax model's MLLMOutput with its first-layer attention."""
    return model(prepare_vila_inputs(model.config, **batch), return_first_layer_attention=True)


def vila_max_diffs(model, reference, batch: dict) -> dict[str, float]:
    """Max abs differences of logits and first-layer attention against the assembled reference."""
    ours = vila_flax_forward(model, batch)
    return output_diffs(ours.logits, ours.first_layer_attention, *vila_torch_forward(reference, model.config, batch))
