"""Head importance by ablation (explain/head_importance.py): silencing a layer-0 head through the attention
hook is transformers' model with that head's columns of o_proj zeroed, and the weights follow the drops."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import torch

from conversion.verify import random_batch, torch_forward
from tokcomp_jax.explain import append_answers
from tokcomp_jax.explain.head_importance import head_ablation_drops, head_weights
from tokcomp_jax.prune import Buckets, prepare_pruning

ROWS = [[("image", 84, 112)], [("video", 2, 56, 84)]]
ANSWERS = [[7, 8, 9], [10, 11]]


def answer_log_prob(logits: np.ndarray, input_ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Summed log p of each row's answer tokens from transformers' logits [B, T, V]."""
    log_probs = torch.log_softmax(torch.from_numpy(logits), dim=-1).numpy()
    return np.array([sum(log_probs[row, p - 1, input_ids[row, p]] for p in positions[row] if p >= 0)
                     for row in range(len(positions))])  # fmt: skip


def test_a_silenced_head_equals_its_output_projection_zeroed(tiny_qwen2vl):
    _, torch_model, model = tiny_qwen2vl
    config = model.config
    taught, positions = append_answers(random_batch(config, ROWS, seed=4, text_length=5), ANSWERS)
    inputs, _ = prepare_pruning(config, taught, Buckets(text=24, visual=40, queries=8))
    drops = np.asarray(head_ablation_drops(model, inputs, jnp.asarray(positions)))
    heads, head_dim = config.text.num_attention_heads, config.text.head_dim
    assert drops.shape == (len(ROWS), heads)

    o_proj = torch_model.model.language_model.layers[0].self_attn.o_proj.weight  # [D, Hd * H]
    unablated = answer_log_prob(torch_forward(torch_model, config, taught)[0], taught["input_ids"], positions)
    for head in range(heads):
        kept = o_proj.data.clone()
        o_proj.data[:, head * head_dim : (head + 1) * head_dim] = 0
        try:
            ablated = answer_log_prob(torch_forward(torch_model, config, taught)[0], taught["input_ids"], positions)
        finally:
            o_proj.data.copy_(kept)
        np.testing.assert_allclose(drops[:, head], unablated - ablated, atol=1e-4)
    assert np.abs(drops).max() > 1e-4  # the heads matter at all: the comparison above is not of zeros


def test_weights_are_the_mean_drop_clipped_and_normalised():
    drops = np.array([[0.4, -0.2, 0.2, 0.0], [0.2, -0.4, 0.4, 0.0]], np.float32)
    np.testing.assert_allclose(head_weights(drops), [0.5, 0.0, 0.5, 0.0], atol=1e-7)
    np.testing.assert_allclose(head_weights(-np.abs(drops)), [0.25] * 4)  # no head matters: equal weights
