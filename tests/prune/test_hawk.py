"""HAWK's scores (prune/hawk.py) equal its official `compute_hawk_scores` on the same first layer.

The reference is a PyTorch transcription of github.com/peppery77/HAWK at
3af20714738cb339f687fd9d110a39b257418104, src/hawk/pruning.py: `prune_qwen_prefill`'s projections
(input norm, q_proj, k_proj, repeat_kv; no rotary embedding) and `compute_hawk_scores` (l2
normalisation, the default), run on transformers' layer 0 of the tiny Qwen2.5-VL (the family HAWK
ships) and of the tiny Qwen2-VL, one sample at a time with that sample's instruction and visual
positions. Scores within 1e-5 (float32, highest matmul precision: summation order), kept sets equal.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import repeat_kv

from conversion.verify import random_batch
from tokcomp_jax.prune import Buckets, PruneConfig, prepare_pruning, pruned_forward
from tokcomp_jax.prune.hawk import hawk_scores
from tokcomp_jax.prune.select import per_sample_keep

ROWS = [[("image", 84, 168)], [("video", 2, 56, 84)], [("image", 56, 56), ("image", 56, 84)]]
BUCKETS = Buckets(text=20, visual=40, queries=8)


def official_hawk_scores(layer0, inputs_embeds, queries, visual_indices, head_weights, config) -> torch.Tensor:
    """prune_qwen_prefill's projections and compute_hawk_scores (normalization "l2") for one sample."""
    num_heads, num_kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = config.hidden_size // num_heads
    attention = layer0.self_attn
    normalized = layer0.input_layernorm(inputs_embeds)
    batch_size, q_len, _ = normalized.shape
    query_states = attention.q_proj(normalized)
    key_states = attention.k_proj(normalized)
    query_states = query_states.view(batch_size, q_len, num_heads, head_dim).transpose(1, 2)
    key_states = key_states.view(batch_size, q_len, num_kv_heads, head_dim).transpose(1, 2)
    key_states = repeat_kv(key_states, num_heads // num_kv_heads)
    text_queries = query_states.index_select(2, queries)
    visual_keys = key_states.index_select(2, visual_indices)

    scores = torch.matmul(text_queries, visual_keys.transpose(2, 3))
    scores = scores / math.sqrt(head_dim)
    scores = scores.mean(dim=2)
    scores = torch.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)
    scores = F.normalize(scores, p=2, dim=-1).float()
    weights = head_weights.to(device=scores.device, dtype=torch.float32).view(1, -1, 1)
    return (scores * weights).sum(dim=1).squeeze(0)


@pytest.mark.parametrize("weighted", [False, True], ids=["equal heads", "head weights"])
@pytest.mark.parametrize("fixture", ["tiny_qwen2_5_vl", "tiny_qwen2vl"])  # Qwen3-VL: q/k norms HAWK's code lacks
def test_equal_to_the_official_scores(request, fixture, weighted):
    _, torch_model, model = request.getfixturevalue(fixture)
    config = model.config
    inputs, scoring = prepare_pruning(config, random_batch(config, ROWS, seed=1, text_length=5), BUCKETS)
    heads = config.text.num_attention_heads
    weights = np.random.default_rng(0).random(heads).astype(np.float32) if weighted else np.ones(heads, np.float32)
    embeds = model.embed(inputs)
    ours = np.asarray(hawk_scores(model, embeds, scoring.layout, weights if weighted else None))
    layer0 = torch_model.model.language_model.layers[0]
    layout = scoring.layout
    for row in range(len(ROWS)):
        visual = np.asarray(layout.visual_positions[row])
        queries = np.asarray(layout.query_positions[row])
        visual, queries = visual[visual >= 0], queries[queries >= 0]
        with torch.no_grad():
            expected = official_hawk_scores(
                layer0, torch.tensor(np.asarray(embeds[row : row + 1])), torch.tensor(queries),
                torch.tensor(visual), torch.tensor(weights / weights.sum()), torch_model.config.text_config,
            ).numpy()  # fmt: skip
        np.testing.assert_allclose(ours[row, : visual.size], expected, atol=1e-5, rtol=1e-5)
        keep = int(per_sample_keep(0.25, np.asarray(visual.size)))
        assert set(np.argsort(-ours[row, : visual.size])[:keep]) == set(np.argsort(-expected)[:keep])


def test_pruned_forward_keeps_the_top_scores_of_the_configured_head_weights(tiny_qwen2_5_vl):
    """PruneConfig carries the head weights to the registered hawk method; weighing one head alone makes
    the kept tokens that head's own top tokens."""
    _, _, model = tiny_qwen2_5_vl
    config = model.config
    inputs, scoring = prepare_pruning(config, random_batch(config, ROWS[:1], seed=2, text_length=5), BUCKETS)
    heads = config.text.num_attention_heads
    one_head = tuple(float(h == 1) for h in range(heads))
    kept = pruned_forward(model, None, inputs, scoring, PruneConfig("hawk", 0.25, head_weights=one_head)).selection
    scores = np.asarray(hawk_scores(model, model.embed(inputs), scoring.layout, one_head))[0]
    count = int(scoring.layout.visual_count[0])
    keep = int(per_sample_keep(0.25, np.asarray(count)))
    kept_slots = np.asarray(kept.kept_slots[0])[np.asarray(kept.kept_valid[0])]
    assert set(kept_slots) == set(np.argsort(-scores[:count])[:keep])
    with pytest.raises(ValueError, match="head weights have shape"):
        hawk_scores(model, model.embed(inputs), scoring.layout, (1.0,) * (heads + 1))
    with pytest.raises(ValueError, match="head weights are HAWK's"):
        PruneConfig("attention", 0.25, head_weights=one_head)
