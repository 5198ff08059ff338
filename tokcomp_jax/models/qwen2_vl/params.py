"""Checkpoint names of Qwen2-VL (released and transformers-5 layouts) -> Flax paths."""

from __future__ import annotations

from tokcomp_jax.models.common.params_decoder import decoder_rules, lm_head_rule
from tokcomp_jax.models.loading import NameMap, Rule, Transform

LM = r"(?:model\.language_model|model)"  # transformers 5 nests the decoder; released checkpoints do not
VIS = r"(?:model\.visual|visual)"
L = Transform.LINEAR


def qwen_vl_name_map(tie_word_embeddings: bool, block_rules: tuple[Rule, ...], merger_norm: tuple[str, ...]) -> NameMap:
    """The table of a Qwen2-VL-style checkpoint (Qwen2-VL, Qwen2.5-VL): the decoder, patch embedding and
    merger MLP as released, the vision blocks' `block_rules`, the merger norm's `merger_norm` tensors
    ("weight", "bias"); a tied model ignores a stored `lm_head.weight` copy."""
    norm = {"weight": "scale", "bias": "bias"}
    rules = (
        *decoder_rules(rf"{LM}\."),
        Rule(rf"{VIS}\.patch_embed\.proj\.weight", "visual.patch_embed.proj.kernel", Transform.CONV_AS_LINEAR),
        *block_rules,
        *(Rule(rf"{VIS}\.merger\.ln_q\.{name}", f"visual.merger.ln_q.{norm[name]}") for name in merger_norm),
        Rule(rf"{VIS}\.merger\.mlp\.0\.weight", "visual.merger.mlp.fc1.kernel", L),
        Rule(rf"{VIS}\.merger\.mlp\.0\.bias", "visual.merger.mlp.fc1.bias"),
        Rule(rf"{VIS}\.merger\.mlp\.2\.weight", "visual.merger.mlp.fc2.kernel", L),
        Rule(rf"{VIS}\.merger\.mlp\.2\.bias", "visual.merger.mlp.fc2.bias"),
    )  # fmt: skip
    if tie_word_embeddings:
        return NameMap(rules, ignored=(r"lm_head\.weight",))
    return NameMap((*rules, lm_head_rule("")))


QWEN2_VL_BLOCKS = (
    Rule(rf"{VIS}\.blocks\.(\d+)\.(norm[12])\.weight", r"visual.blocks.\1.\2.scale"),
    Rule(rf"{VIS}\.blocks\.(\d+)\.(norm[12])\.bias", r"visual.blocks.\1.\2.bias"),
    Rule(rf"{VIS}\.blocks\.(\d+)\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.weight", r"visual.blocks.\1.\2.kernel", L),
    Rule(rf"{VIS}\.blocks\.(\d+)\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.bias", r"visual.blocks.\1.\2.bias"),
)  # fmt: skip


def qwen2vl_name_map(tie_word_embeddings: bool) -> NameMap:
    """Qwen2-VL: LayerNorm blocks with a two-layer MLP, a LayerNorm merger."""
    return qwen_vl_name_map(tie_word_embeddings, QWEN2_VL_BLOCKS, ("weight", "bias"))
