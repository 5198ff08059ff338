"""VisionZip (prune/visionzip.py) keeps and merges what the official code keeps and merges.

The reference is a PyTorch transcription of the official selection: JIA-Lab-research/VisionZip at
68993a31d4f704498a0cc1f0f026754467be65e2, `Qwen2_5_VL/qwen2_5vl_visionzip.py`,
`Qwen2_5_VLForConditionalGeneration.forward`, the `if select_pixel:` block. It is changed only in
where the counts come from (parameters; the official code hard-codes 0.65 N and 0.05 N) and in taking
one sample's visual tokens as its image tokens (the official code slices them out of inputs_embeds).
Kept sets must be equal (a top-k and an argmax have no tolerance); merged embeddings within 1e-5
(float32 sums in a different order).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from tests.prune.test_diversity import FAMILY_CASES, Layout
from tokcomp_jax.models.common.mllm import TowerAttention
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.prune import PruneConfig, prepare_pruning, prune_embeddings
from tokcomp_jax.prune.select import per_sample_keep
from tokcomp_jax.prune.visionzip import merge_contextual, token_counts, visionzip_scores

# ---------------------------------------------------------------- the official code, transcribed


def official_visionzip(attn_logits, attn_key, image_embeds, dominant_num: int, contextual_num: int):
    """attn_logits [N], attn_key [1, N, d], image_embeds [1, N, D] -> (select_mask [N], the kept tokens'
    embeddings [1, K, D] in sequence order, contextual tokens written into their targets' slots)."""
    topk_values, topk_indices = torch.topk(attn_logits, dominant_num)
    mask = torch.zeros_like(attn_logits, dtype=torch.bool)
    mask[topk_indices] = True
    contextual_mask = ~mask
    metric_filtered = attn_key[:, contextual_mask]
    metric_normalized = metric_filtered / metric_filtered.norm(dim=-1, keepdim=True)
    ## Contextual Visual Tokens
    step = max(1, metric_normalized.shape[1] // contextual_num)
    target_indices = torch.arange(0, metric_normalized.shape[1], step, device=metric_normalized.device)[:contextual_num]
    target_tokens = metric_normalized[:, target_indices, :]
    tokens_to_merge = metric_normalized[
        :, ~torch.isin(torch.arange(metric_normalized.shape[1], device=metric_normalized.device), target_indices), :
    ]
    similarity = torch.bmm(tokens_to_merge, target_tokens.transpose(1, 2))
    assign_one_hot = torch.zeros(
        tokens_to_merge.shape[0], tokens_to_merge.shape[1], contextual_num, dtype=attn_logits.dtype
    )
    assign_one_hot.scatter_(2, similarity.argmax(dim=2).unsqueeze(-1), 1)
    counts = assign_one_hot.sum(dim=1).clamp(min=1).unsqueeze(-1)
    select_mask = torch.zeros_like(attn_logits, dtype=torch.bool)
    select_mask[topk_indices] = True
    false_pos = (~select_mask).nonzero(as_tuple=True)[0]
    select_mask[false_pos[target_indices]] = True
    contexual_input_idx = false_pos[target_indices]
    hidden_states_filtered = image_embeds[:, contextual_mask]
    hidden_to_merge = hidden_states_filtered[
        :, ~torch.isin(torch.arange(hidden_states_filtered.shape[1], device=hidden_states_filtered.device), target_indices), :
    ]  # fmt: skip
    aggregated_hidden = torch.bmm(assign_one_hot.transpose(1, 2), hidden_to_merge) / counts
    target_hidden = hidden_states_filtered[:, target_indices, :]
    contextual_tokens = target_hidden + aggregated_hidden
    image_embeds = image_embeds.clone()
    image_embeds[:, contexual_input_idx] = contextual_tokens
    return select_mask, image_embeds[:, select_mask]


def expected_sample(received: np.ndarray, keys: np.ndarray, visual: np.ndarray, keep: int):
    """The official selection of one sample's n visual tokens: (kept mask [n], kept embeddings [K, D])."""
    dominant, contextual = (int(c) for c in token_counts(jnp.asarray(keep)))
    kept, embeds = official_visionzip(
        torch.tensor(received), torch.tensor(keys)[None], torch.tensor(visual)[None], dominant, contextual
    )
    return kept.numpy(), embeds[0].numpy()


# ---------------------------------------------------------------- per sample, from padded batches


def run_visionzip(embeds, vision: TowerAttention, layout, keep_ratio: float):
    scores = visionzip_scores(vision, layout, keep_ratio)
    return scores, merge_contextual(embeds, vision, scores, layout, keep_ratio)


def random_padded_case(seed: int):
    """3 samples of 1-60 visual tokens among text, padded to one shape; keys in 8 dims, embeddings in 24."""
    rng = np.random.default_rng(seed)
    batch, slots, length = 3, 64, 70
    counts = rng.integers(1, slots - 3, batch)
    counts[0] = min(counts[0], 4) if seed % 4 == 0 else counts[0]  # a few tiny samples
    embeds = rng.normal(size=(batch, length, 24)).astype(np.float32)
    received = rng.random((batch, length)).astype(np.float32)
    keys = rng.normal(size=(batch, length, 8)).astype(np.float32)
    if seed % 3 == 0:  # near-duplicate neighbours, as patches are
        keys[:, 1::2] = keys[:, :-1:2] + 0.05 * rng.normal(size=keys[:, 1::2].shape)
    visual = np.full((batch, slots), -1, np.int32)
    for row, count in enumerate(counts):
        visual[row, :count] = 2 + np.sort(rng.choice(length - 4, count, replace=False))
    return embeds, TowerAttention(received, keys), Layout(visual, np.full((batch, 1), -1, np.int32)), counts


@pytest.mark.parametrize("keep_ratio", [0.111, 0.25, 0.5])
def test_equal_to_the_official_code_on_random_padded_batches(keep_ratio):
    run = jax.jit(
        lambda embeds, received, keys, visual: run_visionzip(
            embeds, TowerAttention(received, keys), Layout(visual, None), keep_ratio
        )
    )
    for seed in range(24):
        embeds, vision, layout, counts = random_padded_case(seed)
        scores, merged = (np.asarray(x) for x in run(embeds, vision.received, vision.keys, layout.visual_positions))
        for row, count in enumerate(counts):
            positions = layout.visual_positions[row, :count]
            keep = int(per_sample_keep(keep_ratio, np.asarray(count)))
            kept, kept_embeds = expected_sample(
                vision.received[row, positions], vision.keys[row, positions], embeds[row, positions], keep
            )
            np.testing.assert_array_equal(scores[row, :count] > 0, kept, err_msg=f"seed {seed} row {row}")
            assert kept.sum() == keep and (scores[row, count:] == 0).all()
            np.testing.assert_allclose(merged[row, positions[kept]], kept_embeds, atol=1e-5, rtol=1e-5)
            untouched = np.setdiff1d(np.arange(embeds.shape[1]), positions[kept])
            np.testing.assert_array_equal(merged[row, untouched], embeds[row, untouched])


def test_counts_are_a_tenth_contextual_and_keep_the_ratio():
    keep = jnp.asarray([0, 1, 5, 10, 19, 50, 288])
    dominant, contextual = (np.asarray(c) for c in token_counts(keep))
    np.testing.assert_array_equal(contextual, [0, 1, 1, 1, 1, 5, 28])
    np.testing.assert_array_equal(dominant + contextual, keep)


# ---------------------------------------------------------------- every family's layout, through the pruner


@pytest.mark.parametrize("family", sorted(FAMILY_CASES))
def test_every_family_keeps_and_merges_what_the_official_code_does(family):
    """Images, video and tiles, one selection per sample; in gather mode the kept tokens keep their
    position ids (M-RoPE (t, h, w) ids for the Qwen families) and Qwen3-VL's DeepStack features merge
    by the same rule as the embeddings they are packed with."""
    make_config, make_batch, buckets = FAMILY_CASES[family]
    config = make_config()
    model = FAMILIES[family].model(config, rngs=nnx.Rngs(0))
    inputs, scoring = prepare_pruning(config, make_batch(config), buckets)
    layout = scoring.layout
    embeds, vision = model.embed(inputs, return_vision_attention=True)
    embeds, received, keys = (np.asarray(x) for x in (embeds, vision.received, vision.keys))
    merged, _, _, selection = prune_embeddings(model, None, inputs, scoring, PruneConfig("visionzip", 0.5, "mask"))
    gathered, positions, mask, _ = prune_embeddings(model, None, inputs, scoring, PruneConfig("visionzip", 0.5))
    merged, kept_slots, valid = (np.asarray(x) for x in (merged, selection.kept_slots, selection.kept_valid))
    original_positions = np.asarray(inputs.position_ids)
    for row, count in enumerate(np.asarray(layout.visual_count)):
        at = np.asarray(layout.visual_positions[row, :count])
        keep = int(per_sample_keep(0.5, np.asarray(count)))
        kept, kept_embeds = expected_sample(received[row, at], keys[row, at], embeds[row, at], keep)
        assert sorted(kept_slots[row][valid[row]].tolist()) == np.flatnonzero(kept).tolist(), row
        np.testing.assert_allclose(merged[row, at[kept]], kept_embeds, atol=1e-5, rtol=1e-5)
        in_gathered = np.flatnonzero(np.isin(np.flatnonzero(np.asarray(selection.keep_position[row])), at[kept]))
        np.testing.assert_allclose(np.asarray(gathered)[row, in_gathered], kept_embeds, atol=1e-5, rtol=1e-5)
        np.testing.assert_array_equal(
            np.asarray(positions)[..., row, in_gathered], original_positions[..., row, at[kept]]
        )
        assert np.asarray(mask)[row, in_gathered].all()
    if family == "qwen3_vl":  # the DeepStack part of a contextual token is merged too
        width = model.language_model.layers.hidden_size
        changed = np.abs(merged - embeds).max(-1) > 0
        assert changed.any() and (np.abs(merged[..., width:] - embeds[..., width:])[changed].max(-1) > 0).all()
