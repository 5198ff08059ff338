"""Checkpoint names of the shared Qwen2/Llama decoder -> Flax paths, under any source prefix."""

from __future__ import annotations

from tokcomp_jax.models.loading import Rule, Transform

L = Transform.LINEAR


def decoder_rules(source: str) -> tuple[Rule, ...]:
    """Rules for a decoder whose checkpoint names start with regex `source` (e.g. r"model\\.language_model\\.")."""
    return (
        Rule(rf"{source}embed_tokens\.weight", "language_model.embed_tokens.embedding"),
        Rule(rf"{source}layers\.(\d+)\.self_attn\.([qkvo])_proj\.weight", r"language_model.layers.\1.self_attn.\2_proj.kernel", L),
        Rule(rf"{source}layers\.(\d+)\.self_attn\.([qkv])_proj\.bias", r"language_model.layers.\1.self_attn.\2_proj.bias"),
        Rule(rf"{source}layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight", r"language_model.layers.\1.mlp.\2_proj.kernel", L),
        Rule(rf"{source}layers\.(\d+)\.(input_layernorm|post_attention_layernorm)\.weight", r"language_model.layers.\1.\2.scale"),
        Rule(rf"{source}layers\.(\d+)\.self_attn\.([qk]_norm)\.weight", r"language_model.layers.\1.self_attn.\2.scale"),  # Qwen3
        Rule(rf"{source}norm\.weight", "language_model.norm.scale"),
    )  # fmt: skip


def lm_head_rule(source: str) -> Rule:
    """The untied LM head, `<source>lm_head.weight`."""
    return Rule(rf"{source}lm_head\.weight", "lm_head.proj.kernel", L)
