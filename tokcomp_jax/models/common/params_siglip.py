"""Checkpoint names of a SigLIP vision tower -> Flax paths, under any source and target prefix."""

from __future__ import annotations

from tokcomp_jax.models.loading import Rule, Transform

L = Transform.LINEAR


def siglip_rules(source: str, target: str) -> tuple[Rule, ...]:
    """Rules for the tower whose checkpoint names start with regex `source` (e.g.
    r"model\\.vision_tower\\.vision_model\\.") and whose Flax path starts with `target` (e.g. "vision_tower.")."""
    return (
        Rule(rf"{source}embeddings\.patch_embedding\.weight", f"{target}embeddings.patch_embedding.kernel",
             Transform.CONV_AS_LINEAR),
        Rule(rf"{source}embeddings\.patch_embedding\.bias", f"{target}embeddings.patch_embedding.bias"),
        Rule(rf"{source}embeddings\.position_embedding\.weight", f"{target}embeddings.position_embedding.embedding"),
        Rule(rf"{source}encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.weight",
             rf"{target}layers.\1.self_attn.\2_proj.kernel", L),
        Rule(rf"{source}encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.bias",
             rf"{target}layers.\1.self_attn.\2_proj.bias"),
        Rule(rf"{source}encoder\.layers\.(\d+)\.(layer_norm[12])\.weight", rf"{target}layers.\1.\2.scale"),
        Rule(rf"{source}encoder\.layers\.(\d+)\.(layer_norm[12])\.bias", rf"{target}layers.\1.\2.bias"),
        Rule(rf"{source}encoder\.layers\.(\d+)\.mlp\.(fc[12])\.weight", rf"{target}layers.\1.mlp.\2.kernel", L),
        Rule(rf"{source}encoder\.layers\.(\d+)\.mlp\.(fc[12])\.bias", rf"{target}layers.\1.mlp.\2.bias"),
        Rule(rf"{source}post_layernorm\.weight", f"{target}post_layernorm.scale"),
        Rule(rf"{source}post_layernorm\.bias", f"{target}post_layernorm.bias"),
    )  # fmt: skip


def siglip_ignored(source: str) -> tuple[str, ...]:
    """The pooling head (`vision_use_head`) and layers past the ones the MLLM keeps are not loaded."""
    return (rf"{source}head\..*",)
