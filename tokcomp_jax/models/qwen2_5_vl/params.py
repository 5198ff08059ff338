"""Checkpoint names of Qwen2.5-VL (released and transformers-5 layouts) -> Flax paths."""

from __future__ import annotations

from tokcomp_jax.models.common.params_decoder import decoder_rules, lm_head_rule
from tokcomp_jax.models.loading import NameMap, Rule, Transform

_LM = r"(?:model\.language_model|model)"  # transformers 5 nests the decoder; released checkpoints do not
_VIS = r"(?:model\.visual|visual)"
L = Transform.LINEAR


def qwen2_5_vl_name_map(tie_word_embeddings: bool) -> NameMap:
    """The table for one checkpoint; a tied model ignores a stored `lm_head.weight` copy."""
    rules = (
        *decoder_rules(rf"{_LM}\."),
        Rule(rf"{_VIS}\.patch_embed\.proj\.weight", "visual.patch_embed.proj.kernel", Transform.CONV_AS_LINEAR),
        Rule(rf"{_VIS}\.blocks\.(\d+)\.(norm[12])\.weight", r"visual.blocks.\1.\2.scale"),
        Rule(rf"{_VIS}\.blocks\.(\d+)\.(attn\.qkv|attn\.proj)\.weight", r"visual.blocks.\1.\2.kernel", L),
        Rule(rf"{_VIS}\.blocks\.(\d+)\.(attn\.qkv|attn\.proj)\.bias", r"visual.blocks.\1.\2.bias"),
        Rule(rf"{_VIS}\.blocks\.(\d+)\.mlp\.(gate_proj|up_proj|down_proj)\.weight", r"visual.blocks.\1.mlp.\2.kernel", L),
        Rule(rf"{_VIS}\.blocks\.(\d+)\.mlp\.(gate_proj|up_proj|down_proj)\.bias", r"visual.blocks.\1.mlp.\2.bias"),
        Rule(rf"{_VIS}\.merger\.ln_q\.weight", "visual.merger.ln_q.scale"),
        Rule(rf"{_VIS}\.merger\.mlp\.0\.weight", "visual.merger.mlp.fc1.kernel", L),
        Rule(rf"{_VIS}\.merger\.mlp\.0\.bias", "visual.merger.mlp.fc1.bias"),
        Rule(rf"{_VIS}\.merger\.mlp\.2\.weight", "visual.merger.mlp.fc2.kernel", L),
        Rule(rf"{_VIS}\.merger\.mlp\.2\.bias", "visual.merger.mlp.fc2.bias"),
    )  # fmt: skip
    if tie_word_embeddings:
        return NameMap(rules, ignored=(r"lm_head\.weight",))
    return NameMap((*rules, lm_head_rule("")))
