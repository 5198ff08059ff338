"""How much the model's own answers need each first-layer attention head: HAWK's head weights, by ablation.

    drops = head_ablation_drops(model, inputs, answer_positions)    # [B, Hd], teacher-forced answers
    weights = head_weights(np.concatenate(all_drops))               # [Hd], for prepare_pruning(head_weights=...)

A head is silenced by zeroing its attention probabilities in layer 0 (its output to o_proj is then 0);
its importance is the drop in the summed log-probability of the answer the unablated model gave, over
the calibration samples. HAWK (arXiv 2604.07812) measures benchmark score drops and releases no code
for it (github.com/peppery77/HAWK at 3af20714 ships one hard-coded vector); the log-probability of the
model's own answer is the continuous version of that drop, needs no reference answers, and one
teacher-forced forward per head gives it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax.explain.relevance import answer_log_probs


def _scale_heads(probs: jax.Array, probe: jax.Array) -> jax.Array:
    """The attention hook: probabilities [B, Hd, T, S] times a per-head factor [Hd]."""
    return probs * probe.astype(probs.dtype)[None, :, None, None]


@nnx.jit
def head_ablation_drops(model, inputs, answer_positions: jax.Array) -> jax.Array:
    """inputs with the answers appended (explain.append_answers), answer positions [B, M] (-1 = none) ->
    [B, Hd]: the answer's log-probability unablated minus with each layer-0 head silenced."""
    embeds = model.embed(inputs)
    layers, heads = len(model.language_model.layers), model.language_model.layers.attention.num_heads

    def answer_log_prob(layer0_heads: jax.Array) -> jax.Array:  # [Hd] factors -> [B]
        probes = jnp.ones((layers, heads), jnp.float32).at[0].set(layer0_heads)
        logits = model.forward_embeddings(
            embeds, inputs.position_ids, inputs.attention_mask, hook=_scale_heads, probes=probes
        ).logits
        return answer_log_probs(logits, inputs.input_ids, answer_positions).sum(-1)

    unablated = answer_log_prob(jnp.ones((heads,), jnp.float32))
    ablated = jax.lax.map(answer_log_prob, 1.0 - jnp.eye(heads, dtype=jnp.float32))  # [Hd, B], one head at a time
    return unablated[:, None] - ablated.T


def head_weights(drops: np.ndarray) -> np.ndarray:
    """Per-sample drops [S, Hd] -> weights [Hd]: the mean drop, negatives clipped to 0 (a head whose
    silence helps is not important), L1-normalised; equal weights if no head matters."""
    mean = np.clip(np.asarray(drops, np.float64).mean(0), 0.0, None)
    total = mean.sum()
    return (mean / total if total > 0 else np.full(mean.shape, 1.0 / mean.size)).astype(np.float32)
