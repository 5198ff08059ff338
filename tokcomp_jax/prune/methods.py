"""Every pruning method, registered once: its name, how tables call it, where it acts and what it needs.

An input-level method scores the visual tokens at the LLM input (`score(ScoringContext) -> [B, N]`,
higher = keep; the static top-k selection is shared), and a merging one also folds the tokens it
drops into those it keeps (`merge(ScoringContext, scores) -> embeds`); an in-LLM method prunes inside the decoder
(its rule lives in prune/in_llm.py). Adding a method is its scoring function (prune/scorers.py or
its own module) plus one `Method` entry in METHODS; PruneConfig, pruned_forward, generate, the
eval harness, the scripts' `--scorer` choices and the miniature table all read this registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax

from tokcomp_jax.models.common.mllm import TowerAttention
from tokcomp_jax.prune import budget, diversity, hawk, in_llm, scorers, visionzip

NEEDS = ("mapper", "relevance", "rng", "vision_attention", "keep_ratio", "head_weights")


@dataclasses.dataclass(frozen=True)
class ScoringContext:
    """What an input-level method may read (one jitted batch)."""

    model: object
    mapper: object
    embeds: jax.Array  # [B, T, D]
    vision_attention: TowerAttention | None  # the vision tower's last block ("vision_attention")
    inputs: object  # the family's model inputs (position_ids, attention_mask, ...)
    scoring: scorers.ScoringInputs
    keep_ratio: float
    head_weights: tuple[float, ...] | None = None  # HAWK's, from PruneConfig

    @property
    def args(self) -> tuple:
        return self.embeds, self.inputs.position_ids, self.inputs.attention_mask, self.scoring


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    label: str  # its row in tables
    where: str  # "input": scores at the LLM input; "llm": prunes inside the LLM (prune/in_llm.py)
    needs: frozenset[str] = frozenset()  # of NEEDS: what a caller must provide or compute
    score: Callable[[ScoringContext], jax.Array] | None = None  # input methods only
    merge: Callable[[ScoringContext, jax.Array], jax.Array] | None = None  # embeds [B, T, D] the kept tokens carry
    mass: str | None = None  # its scores as a mass for per-sample budgets (prune/budget.py): "scores" or "softmax"

    def __post_init__(self):
        if self.where not in ("input", "llm") or (self.where == "input") != (self.score is not None):
            raise ValueError(f"method {self.name}: an input method has a score function, an in-LLM one none")
        if self.merge is not None and self.where != "input":
            raise ValueError(f"method {self.name}: only an input method merges tokens")
        if self.mass is not None and (self.where != "input" or self.mass not in budget.MASS_KINDS):
            raise ValueError(f"method {self.name}: a score mass is one of {budget.MASS_KINDS}, of an input method")
        if unknown := set(self.needs) - set(NEEDS):
            raise ValueError(f"method {self.name} needs unknown inputs {sorted(unknown)}; known: {NEEDS}")


MAPPER_PRIORS = {"mapper": "none", "mapper_v2": "attention"}  # each mapper scorer's MapperConfig.prior


def check_mapper_prior(scorer: str, mapper_config) -> None:
    """Refuse a trained mapper made for the other mapper scorer (ValueError naming the one to use)."""
    if mapper_config.prior != MAPPER_PRIORS[scorer]:
        other = next(name for name, prior in MAPPER_PRIORS.items() if prior == mapper_config.prior)
        raise ValueError(f"this mapper was trained for the {other} scorer (prior {mapper_config.prior!r}), "
                         f"not the {scorer} scorer: use --scorer {other}")  # fmt: skip


def _mapper(scorer: str) -> Callable[[ScoringContext], jax.Array]:
    def score(context: ScoringContext) -> jax.Array:
        if context.mapper is None:
            raise ValueError(f"the {scorer} scorer needs a mapper (a trained one: tokcomp_jax.mapper.load_mapper)")
        check_mapper_prior(scorer, context.mapper.config)
        return scorers.mapper_scores(context.model, context.mapper, *context.args)

    return score


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("mapper", "mapper (paper)", "input", frozenset({"mapper"}), _mapper("mapper"), mass="softmax"),
        Method(
            "mapper_v2",
            "mapper v2 (attention prior + per-head CNN)",
            "input",
            frozenset({"mapper"}),
            _mapper("mapper_v2"),
            mass="softmax",
        ),
        Method(
            "attention",
            "layer-1 attention",
            "input",
            score=lambda c: scorers.attention_scores(c.model, *c.args),
            mass="scores",
        ),
        Method(
            "hawk",
            "HAWK (head-weighted layer-1 attention)",
            "input",
            frozenset({"head_weights"}),  # optional: equal weights without them
            lambda c: hawk.hawk_scores(c.model, c.embeds, c.scoring.layout, c.head_weights),
            mass="scores",
        ),
        Method(
            "vision_attention",
            "vision-encoder attention (VisionZip-style)",
            "input",
            frozenset({"vision_attention"}),
            lambda c: scorers.vision_attention_scores(c.vision_attention, c.scoring),
            mass="scores",
        ),
        Method(
            "visionzip",
            "VisionZip (dominant + contextual)",
            "input",
            frozenset({"vision_attention", "keep_ratio"}),
            lambda c: visionzip.visionzip_scores(c.vision_attention, c.scoring.layout, c.keep_ratio),
            merge=lambda c, scores: visionzip.merge_contextual(
                c.embeds, c.vision_attention, scores, c.scoring.layout, c.keep_ratio
            ),
        ),
        Method(
            "dart_input",
            "DART-style duplication at the input",
            "input",
            score=lambda c: scorers.dart_scores(c.embeds, c.model.language_model.layers.hidden_size, c.scoring),
        ),
        Method(
            "divprune",
            "DivPrune (max-min diversity)",
            "input",
            frozenset({"keep_ratio"}),
            lambda c: diversity.divprune_scores(
                c.embeds, c.model.language_model.layers.hidden_size, c.scoring.layout, c.keep_ratio
            ),
        ),
        Method(
            "cdpruner",
            "CDPruner (conditional DPP)",
            "input",
            frozenset({"keep_ratio"}),
            lambda c: diversity.cdpruner_scores(
                c.embeds, c.model.language_model.layers.hidden_size, c.scoring.layout, c.keep_ratio
            ),
        ),
        Method(
            "stride",
            "uniform stride",
            "input",
            frozenset({"keep_ratio"}),
            lambda c: scorers.stride_scores(c.scoring, c.keep_ratio),
        ),
        Method("random", "random", "input", frozenset({"rng"}), lambda c: scorers.random_scores(c.scoring)),
        Method("fastv", "FastV", "llm"),
        Method("pdrop", "PyramidDrop", "llm"),
        Method("dart", "DART", "llm"),
        Method(
            "oracle",
            "explanation oracle (relevance labels)",
            "input",
            frozenset({"relevance"}),
            lambda c: scorers.oracle_scores(c.scoring),
            mass="scores",
        ),
    )  # fmt: skip
}
assert {m.name for m in METHODS.values() if m.where == "llm"} == set(in_llm.METHODS)


def method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown scorer {name!r}; expected one of {tuple(METHODS)}")
    return METHODS[name]


def reads_mapper(name: str) -> bool:
    """Whether the method scores with a trained mapper (the paper's or the v2)."""
    return name in MAPPER_PRIORS


def usable_without_labels() -> list[str]:
    """The methods a run on new data can use (the oracle needs relevance labels of that data)."""
    return [name for name, m in METHODS.items() if "relevance" not in m.needs]
