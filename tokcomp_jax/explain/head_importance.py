"""How much the model's own answers need each first-layer attention head: HAWK's head weights, by ablation.

    drops = head_ablation_drops(model, inputs, answer_positions)    # [B, Hd], teacher-forced answers
    weights = head_weights(np.concatenate(all_drops))               # [Hd], for PruneConfig(head_weights=...)
    record = measure_head_importance(model, samples, settings)      # what scripts/label.py --head_importance writes
    weights = read_head_weights(path, family, heads)                # checked against the model it will weigh

A head is silenced by zeroing its attention probabilities in layer 0 (its output to o_proj is then 0);
its importance is the drop in the summed log-probability of the answer the unablated model gave, over
the calibration samples. HAWK (arXiv 2604.07812) measures benchmark score drops and releases no code
for it (github.com/peppery77/HAWK at 3af20714 ships one hard-coded vector); the log-probability of the
model's own answer is the continuous version of that drop, needs no reference answers, and one
teacher-forced forward per head gives it.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from tokcomp_jax.explain.label_writer import answer_batch
from tokcomp_jax.explain.relevance import answer_log_probs
from tokcomp_jax.files import CheckpointError, read_json_object
from tokcomp_jax.runs import model_digest


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


def head_drops(model, samples, settings) -> np.ndarray:
    """head_ablation_drops over label samples (explain.label_writer's samples and LabelSettings): [S, Hd]."""
    drops = []
    for start in tqdm(range(0, len(samples), settings.batch_size), desc="head importance", unit="batch"):
        chunk = samples[start : start + settings.batch_size]
        answered = answer_batch(model, chunk, settings)
        batch_drops = head_ablation_drops(model, answered.taught_inputs, jnp.asarray(answered.answer_positions))
        drops.append(np.asarray(batch_drops)[: len(chunk)])
    return np.concatenate(drops)


def measure_head_importance(model, samples, settings) -> dict:
    """The JSON record `scripts/label.py --head_importance FILE` writes and read_head_weights reads."""
    drops = head_drops(model, samples, settings)
    return {
        "family": model.config.family,
        "model": model_digest(model),
        "layer": 0,
        "heads": int(drops.shape[1]),
        "samples": int(drops.shape[0]),
        "metric": "drop in the log-probability of the model's own greedy answer with the head silenced",
        "mean_drop": drops.mean(0).tolist(),
        "weights": head_weights(drops).tolist(),
    }


def read_head_weights(path: str | os.PathLike, family: str, heads: int) -> tuple[float, ...]:
    """The weights of a head-importance file, checked against the model they will weigh (family, layer-0 heads)."""
    record = read_json_object(Path(path))
    weights = record.get("weights")
    if not isinstance(weights, list) or not all(isinstance(w, int | float) and w >= 0 for w in weights):
        raise CheckpointError(f"{path}: 'weights' must be a list of non-negative numbers")
    if record.get("family") != family or len(weights) != heads:
        raise CheckpointError(
            f"{path} holds {len(weights)} head weights of a {record.get('family')!r} model; this model is "
            f"{family!r} with {heads} heads in layer 0 (measure its own: scripts/label.py --head_importance)"
        )
    return tuple(float(w) for w in weights)
