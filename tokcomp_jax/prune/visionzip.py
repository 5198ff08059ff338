"""VisionZip (Yang et al., CVPR 2025): dominant tokens by vision-encoder attention, plus contextual
tokens that merge the rest.

Official code: JIA-Lab-research/VisionZip (formerly dvlab-research/VisionZip) at 68993a31,
`Qwen2_5_VL/qwen2_5vl_visionzip.py`, `Qwen2_5_VLForConditionalGeneration.forward` (the selection)
and `Qwen2_5_VisionTransformerPretrainedModel.forward` (its inputs); the LLaVA version is
`visionzip/clip_encoder.py`, `CLIPVisionTower_VisionZip.forward`. Per sample:

1. dominant: the top tokens by the attention each received in the vision tower's last block (mean
   over heads, over queries, over the 2x2 merge window: `TowerAttention.received`);
2. targets: every `step`-th of the remaining tokens in sequence order, step = n_rest // contextual;
3. every other remaining token joins the target its key is most similar to (cosine of the last
   block's keys, after rotary, mean over heads and merge window: `TowerAttention.keys`);
4. a contextual token is its target's embedding plus the mean of the embeddings that joined it,
   and takes its target's slot: the same position ids (M-RoPE (t, h, w) for the Qwen families), as
   the official Qwen2.5-VL code slices `position_ids` with the kept-token mask. Qwen3-VL's DeepStack
   features are packed beside each embedding, so they merge by the same rule.

Where this departs from the official code, and why:
- counts: the official Qwen2.5-VL code hard-codes int(0.45 N) dominant + max(int(0.05 N), 1)
  contextual for 50%; here a sample keeps ceil(r * n) tokens as every method does, one tenth of them
  contextual (that 50% split; at least one), so methods compare at equal token counts;
- scope: one selection over all of a sample's visual tokens, images and video frames alike (the
  official Qwen code runs one image at batch size 1; its video path fails);
- the LLaVA code merges vision-tower hidden states before the projector and keeps the [CLS]
  token; here every family merges the LLM-input embeddings (as the Qwen2.5-VL code does), and the
  SigLIP towers have no [CLS].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tokcomp_jax.models.common.mllm import TowerAttention
from tokcomp_jax.models.layout import VisualLayout, keep_count
from tokcomp_jax.prune.features import take_positions
from tokcomp_jax.prune.select import per_sample_keep

CONTEXTUAL_SHARE = 0.1  # of the kept tokens (the official 50% setting: 0.05 N of 0.5 N)
DOMINANT, CONTEXTUAL = 2.0, 1.0  # scores: kept as they are, kept carrying merged tokens; 0: merged away


def token_counts(keep: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Kept tokens per sample [B] -> (dominant, contextual) counts [B]: a tenth contextual, at least one."""
    contextual = jnp.where(keep > 0, jnp.clip(jnp.floor(CONTEXTUAL_SHARE * keep).astype(jnp.int32), 1, keep), 0)
    return keep - contextual, contextual


def visionzip_scores(vision_attention: TowerAttention, layout: VisualLayout, keep_ratio: float) -> jax.Array:
    """[B, N]: DOMINANT at the dominant tokens, CONTEXTUAL at the targets, 0 at the tokens they absorb."""
    mask = layout.visual_mask
    dominant_count, contextual_count = token_counts(per_sample_keep(keep_ratio, layout.visual_count))
    received = take_positions(vision_attention.received, layout.visual_positions)
    order = jnp.argsort(jnp.where(mask, -received, jnp.inf), axis=-1, stable=True)
    rank = jnp.argsort(order, axis=-1)
    dominant = mask & (rank < dominant_count[:, None])
    rest = mask & ~dominant
    index = jnp.cumsum(rest, axis=-1) - 1  # each remaining token's place among the rest
    step = jnp.maximum(rest.sum(-1) // jnp.maximum(contextual_count, 1), 1)[:, None]
    target = rest & (index % step == 0) & (index // step < contextual_count[:, None])
    return jnp.where(dominant, DOMINANT, jnp.where(target, CONTEXTUAL, 0.0))


def merge_contextual(
    embeds: jax.Array, vision_attention: TowerAttention, scores: jax.Array, layout: VisualLayout, keep_ratio: float
) -> jax.Array:
    """Embeds [B, T, D] (whole, DeepStack-packed ones too) with each target's row replaced by its
    contextual token: the target plus the mean of the absorbed tokens most similar to it."""
    mask, positions = layout.visual_mask, layout.visual_positions
    batch, slots = mask.shape
    rows = jnp.arange(batch)[:, None]
    num_targets = max(int(CONTEXTUAL_SHARE * keep_count(keep_ratio, slots)), 1)  # static bound on the targets
    target, absorbed = mask & (scores == CONTEXTUAL), mask & (scores == 0.0)
    _, targets = jax.lax.top_k(jnp.where(target, -jnp.arange(slots)[None], -slots - 1), num_targets)  # ascending
    target_valid = jnp.take_along_axis(target, targets, axis=1)  # [B, C]

    keys = take_positions(vision_attention.keys, positions).astype(jnp.float32)
    keys = keys / jnp.linalg.norm(keys, axis=-1, keepdims=True)
    similarity = jnp.einsum("BNd,BCd->BNC", keys, jnp.take_along_axis(keys, targets[..., None], axis=1))
    joins = jnp.take_along_axis(targets, jnp.argmax(jnp.where(target_valid[:, None], similarity, -jnp.inf), -1), 1)
    joins = jnp.where(absorbed, joins, slots)  # [B, N]: the slot each absorbed token joins; `slots` = none

    visual = take_positions(embeds, positions).astype(jnp.float32)  # [B, N, D]
    total = jnp.zeros_like(visual).at[rows, joins].add(visual, mode="drop")
    count = jnp.zeros((batch, slots), jnp.float32).at[rows, joins].add(1.0, mode="drop")
    contextual = visual + total / jnp.maximum(count, 1.0)[..., None]
    placed_at = jnp.where(target, positions, embeds.shape[1])  # out of range: dropped
    return embeds.at[rows, placed_at].set(contextual.astype(embeds.dtype), mode="drop")
