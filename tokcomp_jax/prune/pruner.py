"""Pruned prefill at the LLM input: host preparation, then one jitted graph per bucket and setting.

inputs, scoring = prepare_pruning(model.config, batch, buckets, mapper=mapper)   # host, numpy
out = pruned_forward(model, mapper, inputs, scoring, PruneConfig(scorer="mapper", keep_ratio=0.5))
"""

from __future__ import annotations

import dataclasses
import logging

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from tokcomp_jax.fields import check_field_types
from tokcomp_jax.mapper.inputs import neighbour_table
from tokcomp_jax.mapper.model import Mapper
from tokcomp_jax.models import families
from tokcomp_jax.models.layout import Buckets, check_keep_ratio, keep_count
from tokcomp_jax.prune import in_llm, scorers
from tokcomp_jax.prune.budget import Budget, budget_keep
from tokcomp_jax.prune.methods import METHODS, ScoringContext, method
from tokcomp_jax.prune.select import Selection, apply_selection, select_count

log = logging.getLogger(__name__)

SCORERS = tuple(METHODS)  # the registered methods (prune/methods.py), at the LLM input or inside it
MODES = ("mask", "gather")


@dataclasses.dataclass(frozen=True)
class PruneConfig:
    """What to prune and how; hashable, so it is a static argument of the jitted functions."""

    scorer: str = "mapper"
    keep_ratio: float = 0.5
    mode: str = "gather"  # "gather": a physically shorter sequence; "mask": full length, pruned tokens masked
    layer: int = 2  # FastV and DART: prune before this layer (PyramidDrop: stages at L/4, L/2, 3L/4)
    head_weights: tuple[float, ...] | None = None  # HAWK: layer-0 head importance (read_head_weights); None: equal
    budget: str = "fixed"  # per-sample keep counts (prune/budget.py): "fixed" or "mass:TAU[:MIN]"

    def __post_init__(self):
        check_field_types(self)
        method(self.scorer)  # raises on an unknown name
        if Budget.parse(self.budget).rule != "fixed" and method(self.scorer).mass is None:
            with_mass = [name for name, m in METHODS.items() if m.mass is not None]
            raise ValueError(f"budget {self.budget!r} needs a score mass; the {self.scorer!r} scorer has none "
                             f"(scorers with one: {with_mass})")  # fmt: skip
        if self.head_weights is not None and "head_weights" not in method(self.scorer).needs:
            raise ValueError(f"head weights are HAWK's; the {self.scorer!r} scorer reads none")
        if self.mode not in MODES:
            raise ValueError(f"unknown pruning mode {self.mode!r}; expected one of {MODES}")
        check_keep_ratio(self.keep_ratio)

    @property
    def run_name(self) -> str:
        """How results files and tables name this setting: "scorer@keep", then "+budget" unless fixed."""
        name = f"{self.scorer}@{self.keep_ratio:g}"
        return name if self.budget == "fixed" else f"{name}+{self.budget}"

    @property
    def inside_llm(self) -> bool:
        return method(self.scorer).where == "llm"

    def layer_pruning(self, num_layers: int) -> in_llm.LayerPruning:
        """The in-LLM method's stages for a decoder of num_layers (keep_ratio is PyramidDrop's lambda)."""
        return in_llm.layer_pruning(self.scorer, self.keep_ratio, num_layers, self.layer)

    def check_depth(self, num_layers: int) -> None:
        """Refuse, where the config meets a model (before anything loads or compiles), an in-LLM method
        whose stages a decoder of num_layers cannot hold (ValueError naming the scorer, the layers it
        needs and the decoder's depth); an input-level method fits any depth."""
        if self.inside_llm:
            self.layer_pruning(num_layers)


@struct.dataclass
class PrunedOutput:
    logits: jax.Array  # [B, L, V] over the returned sequence (L = T in mask mode, shorter in gather mode)
    attention_mask: jax.Array  # [B, L] real (kept) tokens of the returned sequence
    selection: Selection


def prepare_pruning(
    config,
    batch: dict,
    buckets: Buckets,
    *,
    mapper=None,
    relevance: list[np.ndarray] | None = None,
    seed: int = 0,
):
    """Pad a transformers-style batch to the buckets; return (model inputs, ScoringInputs).

    `mapper` (the Mapper or its MapperConfig, for the layout and kernel) builds the conv neighbour
    tables from each sample's token grids; `relevance` (per-sample [n_b] arrays) feeds the oracle
    scorer; `seed` the random one. Pass the MapperConfig when this runs on another thread than the
    model: NNX modules are not to be read while a jitted call on another thread holds them.
    """
    mapper = mapper.config if isinstance(mapper, Mapper) else mapper
    if mapper is not None and mapper.family not in (None, config.family):
        raise ValueError(f"the mapper was trained on {mapper.family!r} attention, not {config.family!r}")
    input_ids = np.asarray(batch["input_ids"])
    attention_mask = np.asarray(batch.get("attention_mask", np.ones_like(input_ids)))
    if input_ids.shape[1] > buckets.sequence:
        raise ValueError(f"sequence of {input_ids.shape[1]} tokens exceeds the bucket {buckets.sequence}")
    pad = ((0, 0), (0, buckets.sequence - input_ids.shape[1]))
    input_ids, attention_mask = np.pad(input_ids, pad), np.pad(attention_mask, pad)
    family = families.family_of(config)
    inputs, layout = family.prepare(config, dict(batch, input_ids=input_ids, attention_mask=attention_mask), buckets)
    if not layout.visual_mask.any():
        log.info("no visual tokens in this batch: pruning keeps every token")
    scoring = scorers.ScoringInputs(layout=layout, rng=jax.random.key(seed))
    counts = np.asarray(layout.visual_count)
    if mapper is not None:
        grids = family.token_grids(config, dict(batch, input_ids=input_ids), counts, mapper.layout)
        tables = [neighbour_table(mapper.layout, g, mapper.kernel_size, buckets.visual) for g in grids]
        scoring = scoring.replace(neighbour_index=jnp.asarray(np.stack(tables)))
    if relevance is not None:
        padded = np.zeros((input_ids.shape[0], buckets.visual), np.float32)
        for row, values in enumerate(relevance):
            if len(values) != counts[row]:
                raise ValueError(f"sample {row}: {len(values)} relevance values for {counts[row]} visual tokens")
            padded[row, : len(values)] = values
        scoring = scoring.replace(relevance=jnp.asarray(padded))
    return inputs, scoring


def visual_scores(
    model, mapper, embeds, vision_attention, inputs, scoring: scorers.ScoringInputs, config: PruneConfig
) -> jax.Array:
    """Scores [B, N] of the configured input-level method (prune/methods.py)."""
    return scores_and_embeds(model, mapper, embeds, vision_attention, inputs, scoring, config)[0]


def scores_and_embeds(
    model, mapper, embeds, vision_attention, inputs, scoring: scorers.ScoringInputs, config: PruneConfig
) -> tuple[jax.Array, jax.Array]:
    """Scores [B, N] of the configured input-level method and the embeds [B, T, D] its kept tokens
    carry: the given ones, or, for a merging method (VisionZip), those with the dropped tokens merged in."""
    chosen = method(config.scorer)
    if chosen.where != "input":
        raise ValueError(f"{config.scorer!r} prunes inside the LLM; it does not score at the LLM input")
    context = ScoringContext(
        model, mapper, embeds, vision_attention, inputs, scoring, config.keep_ratio, config.head_weights
    )
    scores = chosen.score(context)
    return scores, embeds if chosen.merge is None else chosen.merge(context, scores)


def prune_embeddings(model, mapper, inputs, scoring, config: PruneConfig):
    """Embed, score and select; returns (embeds, position ids, attention mask, selection) of the
    sequence the LLM will prefill: full length with pruned tokens masked, or gathered."""
    if "vision_attention" in method(config.scorer).needs:
        embeds, vision_attention = model.embed(inputs, return_vision_attention=True)
    else:
        embeds, vision_attention = model.embed(inputs), None
    return prune_embedded(model, mapper, embeds, vision_attention, inputs, scoring, config)


def prune_embedded(model, mapper, embeds, vision_attention, inputs, scoring, config: PruneConfig):
    """prune_embeddings after the embedding: score and select given embeds [B, T, D] (and, for the
    methods that read it, the vision tower's TowerAttention)."""
    scores, embeds = scores_and_embeds(model, mapper, embeds, vision_attention, inputs, scoring, config)
    selection = select_budget(
        scores, scoring.layout, inputs.attention_mask, config.keep_ratio, config.budget, method(config.scorer).mass
    )
    num_slots = scoring.layout.visual_positions.shape[1]
    return *apply_selection(embeds, inputs.position_ids, selection, config.mode, num_slots), selection


def select_budget(
    scores: jax.Array, layout, attention_mask: jax.Array, keep_ratio: float, budget: str, mass: str | None
) -> Selection:
    """The Selection of each sample's top tokens under `budget` (prune/budget.py; `mass`: how the scores
    are a mass), in the keep ratio's static slots."""
    keep = budget_keep(scores, layout, keep_ratio, Budget.parse(budget), mass)  # fixed: ceil(keep_ratio * n)
    return select_count(scores, layout, attention_mask, keep_count(keep_ratio, scores.shape[1]), keep)


@nnx.jit(static_argnames="config")
def pruned_forward(model, mapper, inputs, scoring, config: PruneConfig) -> PrunedOutput:
    """Logits of the pruned prefill; one compile per (bucket, config)."""
    if config.inside_llm:
        staged = in_llm.staged_prefill(
            model, model.embed(inputs), inputs.position_ids, inputs.attention_mask, scoring.layout,
            config.layer_pruning(len(model.language_model.layers)), mode=config.mode,
        )  # fmt: skip
        logits = model.lm_head(staged.hidden, model.language_model.embed_tokens)
        return PrunedOutput(logits, staged.attention_mask, staged.selection)
    embeds, position_ids, attention_mask, selection = prune_embeddings(model, mapper, inputs, scoring, config)
    logits = model.forward_embeddings(embeds, position_ids, attention_mask).logits
    return PrunedOutput(logits, attention_mask, selection)
