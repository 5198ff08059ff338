"""HAWK (CVPR 2026, arXiv 2604.07812): first-layer text-to-visual attention, each head weighted by its importance.

github.com/peppery77/HAWK at 3af20714, src/hawk/pruning.py: `compute_hawk_scores` (the scores) and
`prune_qwen_prefill` (which tokens): layer 0's input norm and q/k projections without the rotary
embedding, raw logits q.k / sqrt(d) (no softmax, no causal mask) from the instruction tokens to every
visual token, averaged over the instruction, each head L2-normalised over the visual tokens, then a
weighted sum over heads with the head weights L1-normalised (src/hawk/config.py ships one vector,
Qwen2.5-VL-7B's 28 heads, from an offline head ablation whose code is not released).

Where this departs from the official code, and why:
- The instruction: the layout's query tokens (the text after the last visual token, the template's
  tail included, as every scorer here reads it); HAWK's code takes the span from the last
  <|vision_end|> to the last <|im_end|>.
- Head weights: per model, from `scripts/label.py --head_importance FILE` (explain.head_importance: the
  drop in the answer's log-probability when one layer-0 head is silenced, clipped at 0 and
  L1-normalised), through PruneConfig.head_weights; without them every head weighs the same.
- Every family, any batch (the official code: Qwen2.5-VL-7B, one sample).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tokcomp_jax.models.common.decoder import unpack_deepstack
from tokcomp_jax.models.layout import VisualLayout
from tokcomp_jax.prune.features import grouped_logits, mean_over_queries, take_positions


def logits_to_visual(model, embeds: jax.Array, layout: VisualLayout, tables=None) -> jax.Array:
    """Layer 0's raw attention logits q.k / sqrt(d) from the instruction tokens to the visual tokens, averaged
    over the instruction: embeds [B, T, D] -> [B, Hd, N], 0 at padded slots. `tables`: the rotary (cos, sin)
    [B, T, H] to apply (model.rope); None applies none, as HAWK."""
    stack = model.language_model.layers
    layer = stack[0]
    attention = layer.self_attn
    x = layer.input_layernorm(unpack_deepstack(embeds, stack.hidden_size)[0])
    if tables is None:  # cos 1, sin 0: the rotary embedding is the identity
        cos = jnp.ones((*x.shape[:2], attention.head_dim), x.dtype)
        tables = (cos, jnp.zeros_like(cos))

    def projected(project, positions):
        return project(take_positions(x, positions), *(take_positions(table, positions) for table in tables))

    queries = projected(attention.queries, layout.query_positions).astype(jnp.float32)  # [B, Q, Hd, H]
    keys = projected(attention.keys, layout.visual_positions).astype(jnp.float32)  # [B, N, K, H]
    return mean_over_queries(grouped_logits(queries, keys), layout.query_positions, layout)


def weighted_heads(per_head: jax.Array, head_weights=None) -> jax.Array:
    """[B, Hd, N] -> [B, N]: the sum over heads with the weights [Hd] L1-normalised (None: equal)."""
    heads = per_head.shape[1]
    weights = jnp.ones((heads,), jnp.float32) if head_weights is None else jnp.asarray(head_weights, jnp.float32)
    if weights.shape != (heads,):
        raise ValueError(f"HAWK head weights have shape {weights.shape}; the model's layer 0 has {heads} heads")
    return jnp.einsum("BHN,H->BN", per_head, weights / jnp.maximum(weights.sum(), 1e-12))


def l2_per_head(logits: jax.Array) -> jax.Array:
    """[B, Hd, N] over each head's L2 norm across the visual tokens (torch.nn.functional.normalize's eps)."""
    return logits / jnp.maximum(jnp.sqrt(jnp.square(logits).sum(-1, keepdims=True)), 1e-12)


def hawk_scores(model, embeds: jax.Array, layout: VisualLayout, head_weights=None) -> jax.Array:
    """HAWK's scores [B, N]: per-head logits without RoPE, L2-normalised over a sample's visual tokens,
    summed with the head weights [Hd] (L1-normalised here; None: equal)."""
    return weighted_heads(l2_per_head(logits_to_visual(model, embeds, layout)), head_weights)
