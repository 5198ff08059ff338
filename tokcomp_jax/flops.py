"""Analytic FLOPs of an LLM prefill (matmuls only: projections, attention, MLP; 2 FLOPs per MAC)."""

from __future__ import annotations

from tokcomp_jax.models.config import DecoderConfig


def layer_prefill_flops(config: DecoderConfig, length: int) -> int:
    """One decoder layer over `length` tokens with full (unmasked-count) attention."""
    d, kv = config.hidden_size, config.num_key_value_heads * config.head_dim
    projections = 2 * length * d * (2 * d + 2 * kv)  # q, o and k, v
    attention = 2 * 2 * length * length * d  # scores and weighted values, every head
    mlp = 2 * length * 3 * d * config.intermediate_size  # gate, up, down
    return projections + attention + mlp


def prefill_flops(config: DecoderConfig, length: int, pruned_length: int | None = None, after_layer: int = 0) -> int:
    """The decoder's prefill FLOPs: `after_layer` layers at `length`, the rest at `pruned_length`."""
    pruned_length = length if pruned_length is None else pruned_length
    full = layer_prefill_flops(config, length) * after_layer
    return full + layer_prefill_flops(config, pruned_length) * (config.num_hidden_layers - after_layer)
