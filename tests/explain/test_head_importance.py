"""Head importance by ablation (explain/head_importance.py): silencing a layer-0 head through the attention
hook is transformers' model with that head's columns of o_proj zeroed, and the weights follow the drops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from conversion.verify import random_batch, torch_forward
from tokcomp_jax.explain import append_answers
from tokcomp_jax.explain.head_importance import head_ablation_drops, head_weights, read_head_weights
from tokcomp_jax.files import CheckpointError
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.prune import Buckets, prepare_pruning

REPO = Path(__file__).resolve().parents[2]

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


def test_label_script_writes_head_weights_that_read_back_for_the_same_model(tmp_path):
    """scripts/label.py --head_importance: the record of the tiny model's heads on 4 scenes, no labels written;
    read_head_weights refuses it for a model of another family or head count."""
    path = tmp_path / "heads.json"
    command = [sys.executable, "scripts/label.py", f"--out={tmp_path / 'labels'}", "--config.count=4",
               "--config.batch_size=2", f"--head_importance={path}"]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(path.read_text())
    heads = Qwen2VLConfig.tiny().text.num_attention_heads
    assert (record["family"], record["heads"], record["samples"], record["layer"]) == ("qwen2_vl", heads, 4, 0)
    assert abs(sum(record["weights"]) - 1) < 1e-5 and min(record["weights"]) >= 0
    assert not (tmp_path / "labels").exists()
    assert read_head_weights(path, "qwen2_vl", heads) == tuple(record["weights"])
    with pytest.raises(CheckpointError, match="'qwen2_vl' model; this model is 'vila' with"):
        read_head_weights(path, "vila", heads)
    with pytest.raises(CheckpointError, match=f"holds {heads} head weights"):
        read_head_weights(path, "qwen2_vl", heads + 1)
