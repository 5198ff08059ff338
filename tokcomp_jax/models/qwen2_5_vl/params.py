"""Checkpoint names of Qwen2.5-VL (released and transformers-5 layouts) -> Flax paths: Qwen2-VL's,
with RMSNorm (weight only) and gated-MLP vision blocks and an RMSNorm merger."""

from __future__ import annotations

from tokcomp_jax.models.loading import NameMap, Rule, Transform
from tokcomp_jax.models.qwen2_vl.params import VIS, qwen_vl_name_map

L = Transform.LINEAR
BLOCKS = (
    Rule(rf"{VIS}\.blocks\.(\d+)\.(norm[12])\.weight", r"visual.blocks.\1.\2.scale"),
    Rule(rf"{VIS}\.blocks\.(\d+)\.(attn\.qkv|attn\.proj)\.weight", r"visual.blocks.\1.\2.kernel", L),
    Rule(rf"{VIS}\.blocks\.(\d+)\.(attn\.qkv|attn\.proj)\.bias", r"visual.blocks.\1.\2.bias"),
    Rule(rf"{VIS}\.blocks\.(\d+)\.mlp\.(gate_proj|up_proj|down_proj)\.weight", r"visual.blocks.\1.mlp.\2.kernel", L),
    Rule(rf"{VIS}\.blocks\.(\d+)\.mlp\.(gate_proj|up_proj|down_proj)\.bias", r"visual.blocks.\1.mlp.\2.bias"),
)  # fmt: skip


def qwen2_5_vl_name_map(tie_word_embeddings: bool) -> NameMap:
    return qwen_vl_name_map(tie_word_embeddings, BLOCKS, ("weight",))
