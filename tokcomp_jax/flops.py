"""Analytic FLOPs of an LLM prefill and of the pruning scorer (matmuls only; 2 FLOPs per MAC).

Elementwise work (norms, RoPE, softmax, gathers) is left out: it is a few percent of a layer's
matmuls at real widths. scripts/bench.py prints these next to XLA's own count of each graph.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokcomp_jax.mapper.model import MapperConfig
from tokcomp_jax.models.common.config import DecoderConfig


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


def staged_prefill_flops(config: DecoderConfig, lengths: Sequence[int], first_layers: Sequence[int]) -> int:
    """A prefill pruned inside the LLM: stage s runs layers [first_layers[s], first_layers[s + 1]) at
    lengths[s] tokens (first_layers[0] = 0; the last stage runs to the last layer)."""
    ends = (*first_layers[1:], config.num_hidden_layers)
    return sum(
        layer_prefill_flops(config, length) * (end - first)
        for length, first, end in zip(lengths, first_layers, ends, strict=True)
    )


def lm_head_flops(config: DecoderConfig, tokens: int = 1) -> int:
    """Logits for `tokens` positions (a prefill needs only the last one)."""
    return 2 * tokens * config.hidden_size * config.vocab_size


def scoring_flops(config: DecoderConfig, length: int, queries: int, visual: int, mapper: MapperConfig | None) -> int:
    """The attention/mapper scorer: layer-1 keys for all `length` tokens, queries for `queries`
    instruction tokens and their scores; with a mapper, its convolutions over `visual` tokens."""
    d, kv = config.hidden_size, config.num_key_value_heads * config.head_dim
    attention = 2 * length * d * kv + 2 * queries * d * d + 2 * queries * length * d
    if mapper is None:
        return attention
    widths = (mapper.in_channels, *mapper.channels)
    convs = sum(
        2 * visual * (mapper.num_taps * c_in + c_in * c_out)
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
    )
    return attention + convs + 2 * visual * widths[-1]
