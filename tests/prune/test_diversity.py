"""DivPrune and CDPruner (prune/diversity.py) keep what the official selection code keeps.

The references below are PyTorch transcriptions of the official functions, changed only in where the
count comes from (a parameter) and in taking one sample's real tokens:
- DivPrune: github.com/vbdi/divprune at 799e2d950aa01ba7860907f5a6d86061f885dca6,
  LLaVA/llava/model/llava_arch.py, `pairwise_cosine_similarity` and `DivPrune` (L147-171).
- CDPruner: github.com/Theia-4869/CDPruner at 9541616c40fcd5625de1cdb8ea6c33c129eb7864,
  llava/model/llava_arch.py, `encode_images` (relevance, kernel and the fast MAP loop).
Kept index sets must be equal: a greedy argmax has no tolerance (float32 on both sides; JAX at the
highest matmul precision).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch
from flax import nnx

from conversion.verify import random_batch
from tests.prune.test_family_pipeline import CASES
from tests.prune.test_pruning import BUCKETS as PRUNING_BUCKETS
from tests.prune.test_pruning import ROWS
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.models.layout import keep_count
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.prune import PruneConfig, prepare_pruning, pruned_forward
from tokcomp_jax.prune.diversity import cdpruner_relevance, cdpruner_scores, divprune_scores
from tokcomp_jax.prune.features import visual_embeddings
from tokcomp_jax.prune.select import per_sample_keep

# ---------------------------------------------------------------- the official code, transcribed


def official_divprune(visual_feature_vectors: torch.Tensor, threshold_terms: int) -> torch.Tensor:
    def pairwise_cosine_similarity(matrix):
        norm_matrix = matrix / matrix.norm(dim=1, keepdim=True)
        return torch.mm(norm_matrix, norm_matrix.t())

    cosine_matrix = 1.0 - pairwise_cosine_similarity(visual_feature_vectors)
    s = torch.empty(threshold_terms, dtype=torch.long)
    for i in range(threshold_terms):
        if i == 0:
            m2 = cosine_matrix
        else:
            m2 = torch.index_select(cosine_matrix, 0, torch.index_select(s, 0, torch.arange(0, i)))
        if i == 0:
            scores = torch.topk(m2, 2, dim=0, largest=False).values[1, :]
        else:
            scores = torch.min(m2, dim=0).values
        s[i] = torch.argmax(scores)
    return s


def official_cdpruner(image_features: torch.Tensor, relevance: torch.Tensor, visual_token_num: int) -> torch.Tensor:
    """encode_images from its cosine similarity on: image_features [B, N, D] (projected), relevance [B, N]."""
    B, N, _ = image_features.shape
    image_normalized = image_features / image_features.norm(dim=-1, keepdim=True)
    similarity = torch.matmul(image_normalized.float(), image_normalized.float().transpose(1, 2))
    kernel = relevance.unsqueeze(2) * similarity * relevance.unsqueeze(1)
    cis = torch.zeros((visual_token_num, B, N))
    di2s = torch.diagonal(kernel, dim1=1, dim2=2).clone()
    select_idx = torch.empty((visual_token_num, B), dtype=torch.long)
    for i in range(visual_token_num):
        j = torch.argmax(di2s, dim=-1)
        select_idx[i] = j
        eis = (
            kernel[torch.arange(B), j] - torch.einsum("tb,tbn->bn", cis[:i, torch.arange(B), j], cis[:i])
        ) / torch.sqrt(di2s[torch.arange(B), j]).unsqueeze(-1)
        cis[i, :, :] = eis
        di2s -= torch.square(eis)
        di2s[torch.arange(B), j] = -float("inf")
    return torch.sort(select_idx.t()).values


def official_relevance(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """encode_images' relevance: image_embeds [B, N, C], text_embeds [M, C] -> [B, N]."""
    image_embeds = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
    text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
    relevance = torch.matmul(image_embeds, text_embeds.t())
    relevance = (-relevance).mean(dim=-1)
    return (relevance - relevance.min() + 1e-6) / (relevance.max() - relevance.min())


# ---------------------------------------------------------------- per sample, from padded batches


def expected_kept(method: str, visual: np.ndarray, count: int, keep: int, instruction: np.ndarray) -> list[int]:
    """The official selection of one sample's `count` real visual tokens [count, D]: sorted kept indices."""
    tokens = torch.tensor(visual[:count])
    if method == "divprune":
        return sorted(official_divprune(tokens, keep).tolist())
    relevance = official_relevance(tokens[None], torch.tensor(instruction))
    return official_cdpruner(tokens[None], relevance, keep)[0].tolist()


def kept_of_scores(scores: np.ndarray, count: int, keep: int) -> list[int]:
    """What the shared selection keeps of a sample's scores: its top `keep` real slots."""
    return sorted(np.argsort(-scores[:count], kind="stable")[:keep].tolist())


class Layout:  # what the scorers read of a VisualLayout
    def __init__(self, visual_positions, query_positions):
        self.visual_positions, self.query_positions = visual_positions, query_positions

    @property
    def visual_mask(self):
        return self.visual_positions >= 0

    @property
    def visual_count(self):
        return self.visual_mask.sum(-1)


def random_padded_case(seed: int):
    """3 samples of 2-40 visual tokens (the official DivPrune fails on one) and 1-6 instruction tokens, padded to
    one shape (one compile for every case). Width 32 > the largest keep count (20): a DPP kernel's rank is at most
    the width, and past it every gain is rounding noise, in the official code as here."""
    rng = np.random.default_rng(seed)
    batch, width, slots, query_slots = 3, 32, 48, 6
    counts, queries = rng.integers(2, 41, batch), rng.integers(1, query_slots + 1, batch)
    embeds = rng.normal(size=(batch, slots + query_slots + 3, width)).astype(np.float32)
    if seed % 3 == 0:  # near-duplicate tokens, as neighbouring patches are
        embeds[:, 1::2] = embeds[:, :-1:2] + 0.05 * rng.normal(size=embeds[:, 1::2].shape)
    visual = np.full((batch, slots), -1, np.int32)
    query = np.full((batch, query_slots), -1, np.int32)
    for row in range(batch):
        visual[row, : counts[row]] = 2 + np.arange(counts[row])
        query[row, : queries[row]] = 2 + counts[row] + np.arange(queries[row])
    return embeds, Layout(visual, query), counts


@pytest.mark.parametrize("method", ["divprune", "cdpruner"])
@pytest.mark.parametrize("keep_ratio", [0.111, 0.25, 0.5])
def test_equal_to_the_official_code_on_random_padded_batches(method, keep_ratio):
    score = divprune_scores if method == "divprune" else cdpruner_scores
    scored = jax.jit(lambda embeds, visual, query: score(embeds, embeds.shape[-1], Layout(visual, query), keep_ratio))
    for seed in range(24):
        embeds, layout, counts = random_padded_case(seed)
        scores = np.asarray(scored(embeds, layout.visual_positions, layout.query_positions))
        visual = np.asarray(visual_embeddings(embeds, embeds.shape[-1], layout.visual_positions))
        instruction = np.asarray(visual_embeddings(embeds, embeds.shape[-1], layout.query_positions))
        for row, count in enumerate(counts):
            keep = int(per_sample_keep(keep_ratio, np.asarray(count)))
            queries = instruction[row][layout.query_positions[row] >= 0]
            assert kept_of_scores(scores[row], count, keep) == expected_kept(
                method, visual[row], int(count), keep, queries
            ), (seed, row)
            assert (scores[row][count:] == 0).all()  # padded slots never picked


def test_cdpruner_relevance_is_the_official_formula():
    embeds, layout, counts = random_padded_case(5)
    visual = visual_embeddings(embeds, embeds.shape[-1], layout.visual_positions)
    instruction = visual_embeddings(embeds, embeds.shape[-1], layout.query_positions)
    relevance = np.asarray(cdpruner_relevance(visual, layout.visual_mask, instruction, layout.query_positions >= 0))
    for row, count in enumerate(counts):
        queries = np.asarray(instruction[row])[layout.query_positions[row] >= 0]
        expected = official_relevance(torch.tensor(np.asarray(visual[row, :count]))[None], torch.tensor(queries))
        np.testing.assert_allclose(relevance[row, :count], expected[0].numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("score", [divprune_scores, cdpruner_scores])
def test_a_single_token_is_kept(score):
    embeds, layout, _ = random_padded_case(2)
    layout.visual_positions[:, 1:] = -1
    assert (np.asarray(score(embeds, embeds.shape[-1], layout, 0.5))[:, 0] > 0).all()


def test_the_greedy_order_nests():
    """The first picks at a small ratio are the picks at a larger one: one loop serves every per-sample count."""
    embeds, layout, counts = random_padded_case(7)
    small, large = (np.asarray(divprune_scores(embeds, embeds.shape[-1], layout, r)) for r in (0.25, 0.5))
    for row, count in enumerate(counts):
        keep = keep_count(0.25, int(count))
        assert kept_of_scores(small[row], count, keep) == kept_of_scores(large[row], count, keep)


# ---------------------------------------------------------------- every family's layout, through pruned_forward

FAMILY_CASES = {
    **CASES,  # Qwen2.5-VL and Qwen3-VL (image, video), LLaVA-OneVision (tiled images), VILA1.5 (one and two images)
    "qwen2_vl": (Qwen2VLConfig.tiny, lambda c: random_batch(c, ROWS, seed=3, text_length=5), PRUNING_BUCKETS),
}


@pytest.mark.parametrize("family", sorted(FAMILY_CASES))
def test_every_family_keeps_what_the_official_code_keeps(family):
    make_config, make_batch, buckets = FAMILY_CASES[family]
    config = make_config()
    model = FAMILIES[family].model(config, rngs=nnx.Rngs(0))
    inputs, scoring = prepare_pruning(config, make_batch(config), buckets)
    layout = scoring.layout
    hidden = model.language_model.layers.hidden_size
    embeds = model.embed(inputs)
    visual = np.asarray(visual_embeddings(embeds, hidden, layout.visual_positions))
    instruction = np.asarray(visual_embeddings(embeds, hidden, layout.query_positions))
    counts, queries = np.asarray(layout.visual_count), np.asarray(layout.query_positions) >= 0
    for method in ("divprune", "cdpruner"):
        selection = pruned_forward(model, None, inputs, scoring, PruneConfig(method, 0.5)).selection
        slots, valid = np.asarray(selection.kept_slots), np.asarray(selection.kept_valid)
        for row, count in enumerate(counts):
            keep = int(per_sample_keep(0.5, np.asarray(count)))
            expected = expected_kept(method, visual[row], int(count), keep, instruction[row][queries[row]])
            assert sorted(slots[row][valid[row]].tolist()) == expected, (method, row)
