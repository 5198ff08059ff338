"""Checkpoint names of Qwen3-VL (released and transformers-5 layouts) -> Flax paths: the Qwen3
decoder (with q/k norms), the patch embedding with its bias, the learned position table, LayerNorm
blocks with `linear_fc1/2` MLPs, the merger and the DeepStack mergers."""

from __future__ import annotations

from tokcomp_jax.models.common.params_decoder import decoder_rules, lm_head_rule
from tokcomp_jax.models.loading import NameMap, Rule, Transform
from tokcomp_jax.models.qwen2_vl.params import LM, VIS

L = Transform.LINEAR


RULES = (
    *decoder_rules(rf"{LM}\."),
    Rule(rf"{VIS}\.patch_embed\.proj\.weight", "visual.patch_embed.proj.kernel", Transform.CONV_AS_LINEAR),
    Rule(rf"{VIS}\.patch_embed\.proj\.bias", "visual.patch_embed.proj.bias"),
    Rule(rf"{VIS}\.pos_embed\.weight", "visual.pos_embed.embedding"),
    Rule(rf"{VIS}\.blocks\.(\d+)\.(norm[12])\.weight", r"visual.blocks.\1.\2.scale"),
    Rule(rf"{VIS}\.blocks\.(\d+)\.(norm[12])\.bias", r"visual.blocks.\1.\2.bias"),
    Rule(rf"{VIS}\.blocks\.(\d+)\.(attn\.qkv|attn\.proj)\.weight", r"visual.blocks.\1.\2.kernel", L),
    Rule(rf"{VIS}\.blocks\.(\d+)\.(attn\.qkv|attn\.proj)\.bias", r"visual.blocks.\1.\2.bias"),
    Rule(rf"{VIS}\.blocks\.(\d+)\.mlp\.linear_fc([12])\.weight", r"visual.blocks.\1.mlp.fc\2.kernel", L),
    Rule(rf"{VIS}\.blocks\.(\d+)\.mlp\.linear_fc([12])\.bias", r"visual.blocks.\1.mlp.fc\2.bias"),
    Rule(rf"{VIS}\.merger\.norm\.weight", "visual.merger.norm.scale"),
    Rule(rf"{VIS}\.merger\.norm\.bias", "visual.merger.norm.bias"),
    Rule(rf"{VIS}\.merger\.linear_fc([12])\.weight", r"visual.merger.mlp.fc\1.kernel", L),
    Rule(rf"{VIS}\.merger\.linear_fc([12])\.bias", r"visual.merger.mlp.fc\1.bias"),
    Rule(rf"{VIS}\.deepstack_merger_list\.(\d+)\.norm\.weight", r"visual.deepstack_mergers.\1.norm.scale"),
    Rule(rf"{VIS}\.deepstack_merger_list\.(\d+)\.norm\.bias", r"visual.deepstack_mergers.\1.norm.bias"),
    Rule(rf"{VIS}\.deepstack_merger_list\.(\d+)\.linear_fc([12])\.weight", r"visual.deepstack_mergers.\1.mlp.fc\2.kernel", L),
    Rule(rf"{VIS}\.deepstack_merger_list\.(\d+)\.linear_fc([12])\.bias", r"visual.deepstack_mergers.\1.mlp.fc\2.bias"),
)  # fmt: skip


def qwen3_vl_name_map(tie_word_embeddings: bool) -> NameMap:
    if tie_word_embeddings:
        return NameMap(RULES, ignored=(r"lm_head\.weight",))
    return NameMap((*RULES, lm_head_rule("")))
