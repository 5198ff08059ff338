"""Pruned evaluation of the miniature: accuracy, retention, ground-truth recall and FLOPs for the
mapper and every baseline at each keep ratio, through the library's own scorers and selection.

Per bucket, one jitted pass embeds the batch and computes every input-level method's scores;
one jitted pass per keep ratio then selects, gathers and prefills, whichever the scores came
from. The result equals `prune.pruned_forward` for each (scorer, keep ratio) (tested) and
compiles 2 + 2 x |keep ratios| graphs per bucket instead of one per method and ratio.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from tokcomp_jax.flops import prefill_flops
from tokcomp_jax.miniature.samples import Samples, collate, group_indices
from tokcomp_jax.models.layout import Buckets
from tokcomp_jax.prune import in_llm, scorers
from tokcomp_jax.prune.methods import METHODS as REGISTERED
from tokcomp_jax.prune.pruner import PruneConfig, prepare_pruning, scores_and_embeds, select_budget
from tokcomp_jax.prune.select import apply_selection

KEEP_RATIOS = (0.5, 0.25, 0.111)
# Input-level methods: a prune.pruner scorer each, except ground_truth (the oracle scorer fed the
# evidence cells instead of relevance labels). FastV, PyramidDrop and DART prune inside the LLM.
# Every registered method (prune/methods.py, in its order), then the ground-truth cells; the mapper v2
# reads a mapper of its own, so it runs where that mapper is given (the demo's mapper_v2 variant).
METHODS = (*(m for m in REGISTERED if m != "mapper_v2"), "ground_truth")
INPUT_METHODS = tuple(m for m in (*REGISTERED, "ground_truth") if m == "ground_truth" or REGISTERED[m].where == "input")


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    text_bucket: int
    visual_buckets: tuple[int, ...]
    batch_size: int = 16
    keep_ratios: tuple[float, ...] = KEEP_RATIOS
    prune_layer: int = 2  # FastV and DART prune before this layer
    seed: int = 0
    methods: tuple[str, ...] = METHODS
    head_weights: tuple[float, ...] | None = None  # HAWK's (explain.head_importance); None: equal
    # Per-sample budgets (prune/budget.py) besides the fixed one, for every method with a score mass:
    # "method+budget@keep" (keep: the ceiling)
    budgets: tuple[str, ...] = ()


def last_token_answers(logits: jax.Array, attention_mask: jax.Array) -> jax.Array:
    """Greedy next token after the last real token of each right-padded row: [B]."""
    last = jnp.max(jnp.where(attention_mask > 0, jnp.arange(attention_mask.shape[1])[None], 0), axis=-1)
    return jnp.argmax(logits[jnp.arange(logits.shape[0]), last], axis=-1)


@nnx.jit(static_argnames=("methods", "keep_ratios", "head_weights"))
def score_all(model, mapper, inputs, scoring, evidence, methods: tuple[str, ...], keep_ratios: tuple[float, ...],
              head_weights: tuple[float, ...] | None = None):  # fmt: skip
    """Embeddings [B, T, D], unpruned answers [B], scores {method: [B, N]} and, for the methods that
    merge tokens (VisionZip), their embeddings {method: [B, T, D]}; a method whose scores depend on
    the keep ratio (stride) has one entry per ratio, "method@ratio"."""
    embeds, vision_attention = model.embed(inputs, return_vision_attention=True)
    answers = last_token_answers(
        model.forward_embeddings(embeds, inputs.position_ids, inputs.attention_mask).logits, inputs.attention_mask
    )
    scores, merged = {}, {}
    for method in methods:
        if method == "ground_truth":
            scores[method] = scorers.oracle_scores(scoring.replace(relevance=evidence))
            continue
        weights = head_weights if "head_weights" in REGISTERED[method].needs else None
        per_ratio = "keep_ratio" in REGISTERED[method].needs
        for ratio in keep_ratios if per_ratio else keep_ratios[:1]:  # (a ratio the method does not read)
            key = f"{method}@{ratio}" if per_ratio else method
            config = PruneConfig(scorer=method, keep_ratio=ratio, head_weights=weights)
            scores[key], method_embeds = scores_and_embeds(
                model, mapper, embeds, vision_attention, inputs, scoring, config
            )
            if REGISTERED[method].merge is not None:
                merged[key] = method_embeds
    return embeds, answers, scores, merged


@nnx.jit(static_argnames=("keep_ratio", "budget", "mass"))
def answers_after_selection(
    model, embeds, inputs, layout, scores, keep_ratio: float, budget: str = "fixed", mass: str | None = None
):
    """Select each sample's top tokens by `scores` (under `budget`, its scores a `mass`: prune/budget.py),
    gather them, prefill: (answers [B], kept slots, valid)."""
    selection = select_budget(scores, layout, inputs.attention_mask, keep_ratio, budget, mass)
    kept = apply_selection(embeds, inputs.position_ids, selection, "gather", layout.visual_positions.shape[1])
    logits = model.forward_embeddings(*kept).logits
    return last_token_answers(logits, kept[2]), selection.kept_slots, selection.kept_valid


@nnx.jit(static_argnames="pruning")
def in_llm_answers(model, embeds, inputs, layout, pruning: in_llm.LayerPruning):
    """Answers [B] after pruning inside the LLM (prune.in_llm), and the visual slots that reached its last layer."""
    staged = in_llm.staged_prefill(model, embeds, inputs.position_ids, inputs.attention_mask, layout, pruning)
    logits = model.lm_head(staged.hidden, model.language_model.embed_tokens)
    return last_token_answers(logits, staged.attention_mask), staged.selection.kept_slots, staged.selection.kept_valid


def _kept_masks(slots: np.ndarray, valid: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    masks = []
    for row, count in enumerate(counts):
        kept = np.zeros(count, bool)
        kept[slots[row][valid[row]]] = True
        masks.append(kept)
    return masks


def evaluate_split(
    model,
    mapper,
    examples: Sequence[dict],
    oracle: dict[str, np.ndarray] | None,
    settings: EvalSettings,
    desc: str = "eval",
) -> list[dict]:
    """One record per sample: answers unpruned and per (method, keep ratio), and the kept tokens.

    `oracle` maps sample_id -> relevance labels [n] (the explanation oracle); every sample needs one
    (None: no labels, for methods other than the oracle).
    """
    samples = Samples(model.config, examples)
    records = []
    with tqdm(total=len(samples), desc=desc, unit="sample") as progress:
        for group, indices in group_indices(samples.examples, settings.visual_buckets).items():
            buckets = group.buckets(settings.text_bucket)
            for start in range(0, len(indices), settings.batch_size):
                chunk = samples.process([samples.examples[i] for i in indices[start : start + settings.batch_size]])
                records += _evaluate_batch(model, mapper, chunk, oracle, buckets, settings)
                progress.update(len(chunk))
    return records


def merge_records(records: list[dict], extra: list[dict]) -> list[dict]:
    """Records (in place) with the pruned answers and kept tokens of `extra`, another evaluation of the
    same samples in the same order (other methods); their unpruned answers must agree."""
    for record, more in zip(records, extra, strict=True):
        if record["sample_id"] != more["sample_id"] or record["correct"]["unpruned"] != more["correct"]["unpruned"]:
            raise ValueError(f"records of {record['sample_id']} and {more['sample_id']} do not describe one run")
        record["correct"].update({k: v for k, v in more["correct"].items() if k != "unpruned"})
        record["kept"].update(more["kept"])
    return records


def _evaluate_batch(model, mapper, chunk: list[dict], oracle, buckets: Buckets, settings: EvalSettings) -> list[dict]:
    padded = chunk + [chunk[-1]] * (settings.batch_size - len(chunk))  # static batch shape
    missing = [s["sample_id"] for s in padded if oracle is not None and s["sample_id"] not in oracle]
    if missing:
        raise ValueError(f"no oracle relevance labels for samples {missing[:3]}")
    relevance = None if oracle is None else [oracle[s["sample_id"]] for s in padded]
    inputs, scoring = prepare_pruning(
        model.config, collate(padded), buckets, mapper=mapper, relevance=relevance, seed=settings.seed
    )
    evidence = np.zeros((len(padded), buckets.visual), np.float32)
    for row, sample in enumerate(padded):
        evidence[row, : sample["evidence"].size] = sample["evidence"]
    input_methods = tuple(m for m in settings.methods if m in INPUT_METHODS)
    embeds, unpruned, scores, merged = score_all(
        model,
        mapper,
        inputs,
        scoring,
        jnp.asarray(evidence),
        input_methods,
        settings.keep_ratios,
        settings.head_weights,
    )
    counts = np.asarray(scoring.layout.visual_count)
    results: dict[tuple[str, float], tuple[np.ndarray, list[np.ndarray]]] = {}
    for keep in settings.keep_ratios:
        for method in settings.methods:
            if method != "ground_truth" and REGISTERED[method].where == "llm":
                out = in_llm_answers(
                    model, embeds, inputs, scoring.layout, _layer_pruning(model, method, keep, settings)
                )
            else:
                key = f"{method}@{keep}" if f"{method}@{keep}" in scores else method
                out = answers_after_selection(model, merged.get(key, embeds), inputs, scoring.layout, scores[key], keep)
            answers, slots, valid = (np.asarray(x) for x in out)
            results[method, keep] = answers, _kept_masks(slots, valid, counts)
        for budget in settings.budgets:
            for method in (m for m in input_methods if m in REGISTERED and REGISTERED[m].mass is not None):
                out = answers_after_selection(
                    model, embeds, inputs, scoring.layout, scores[method], keep, budget, REGISTERED[method].mass
                )
                answers, slots, valid = (np.asarray(x) for x in out)
                results[f"{method}+{budget}", keep] = answers, _kept_masks(slots, valid, counts)
    unpruned = np.asarray(unpruned)
    text_tokens = np.asarray(inputs.attention_mask).sum(-1) - counts
    records = []
    for row, sample in enumerate(chunk):
        answer = sample["reference_ids"][0]
        record = {
            "sample_id": sample["sample_id"],
            "kind": sample["kind"],
            "visual_tokens": int(counts[row]),
            "text_tokens": int(text_tokens[row]),
            "evidence": sample["evidence"],
            "correct": {"unpruned": bool(unpruned[row] == answer)},
            "kept": {},
        }
        for (method, keep), (answers, kept) in results.items():
            record["correct"][f"{method}@{keep}"] = bool(answers[row] == answer)
            record["kept"][f"{method}@{keep}"] = kept[row]
        records.append(record)
    return records


def retention_error(pruned: np.ndarray, unpruned: np.ndarray) -> float:
    """Standard error (points) of retention = 100 mean(pruned) / mean(unpruned) over paired 0/1
    outcomes of the same samples, by the delta method."""
    n, mean_pruned, mean_unpruned = len(pruned), pruned.mean(), unpruned.mean()
    if n < 2 or mean_unpruned == 0:
        return float("nan")
    ratio = mean_pruned / mean_unpruned
    covariance = np.cov(pruned, unpruned)
    variance = covariance[0, 0] - 2 * ratio * covariance[0, 1] + ratio**2 * covariance[1, 1]
    return float(100.0 * np.sqrt(max(variance, 0.0) / n) / mean_unpruned)


def image_of(sample_id: str) -> str:
    """The image (or clip) a question is about: paired datasets suffix its sample id with -a / -b."""
    head, _, suffix = sample_id.rpartition("-")
    return head if len(suffix) == 1 else sample_id


def records_by_image(records: list[dict]) -> dict[str, list[dict]]:
    """Records grouped by the image (or clip) they ask about, in order of first appearance."""
    by_image: dict[str, list[dict]] = {}
    for record in records:
        by_image.setdefault(image_of(record["sample_id"]), []).append(record)
    return by_image


def paired_coverage(records: list[dict], key: str) -> float:
    """Share of images asked two questions whose kept tokens (under `key`) hold all of each question's
    evidence; nan without paired questions. An instruction-agnostic method keeps the same tokens for
    both, so it must keep both evidence sets at once."""
    pairs = [pair for pair in records_by_image(records).values() if len(pair) == 2]
    if not pairs:
        return float("nan")
    covered = [all(r["kept"][key][r["evidence"]].all() for r in pair) for pair in pairs]
    return float(np.mean(covered))


def summarise(records: list[dict], config, settings: EvalSettings) -> dict:
    """Accuracy, retention (% of unpruned accuracy) with its standard error, ground-truth recall,
    paired-evidence coverage and LLM prefill FLOPs (% of unpruned) per method and keep ratio, plus
    accuracy per question kind."""
    outcomes = np.array([r["correct"]["unpruned"] for r in records], float)
    unpruned = float(outcomes.mean())
    summary = {"samples": len(records), "unpruned_accuracy": unpruned, "methods": {}, "kinds": {}}
    methods = sorted({key.split("@")[0] for key in records[0]["correct"] if "@" in key}, key=_method_order)
    for method in methods:
        rows = {}
        for keep in settings.keep_ratios:
            key = f"{method}@{keep}"
            pruned = np.array([r["correct"][key] for r in records], float)
            with_evidence = [r for r in records if r["evidence"].any()]
            recall = [r["kept"][key][r["evidence"]].mean() for r in with_evidence]
            rows[str(keep)] = {
                "accuracy": float(pruned.mean()),
                "retention": 100.0 * float(pruned.mean()) / max(unpruned, 1e-9),
                "retention_error": retention_error(pruned, outcomes),
                "ground_truth_recall": float(np.mean(recall)) if recall else float("nan"),
                "paired_coverage": paired_coverage(records, key),
                "flops": float(np.mean([_relative_flops(r, key, method, config, settings) for r in records])),
                "kept": float(np.mean([r["kept"][key].mean() for r in records if r["visual_tokens"]])),
            }
        summary["methods"][method] = rows
    for kind in sorted({r["kind"] for r in records}):
        chosen = [r for r in records if r["kind"] == kind]
        summary["kinds"][kind] = {
            "samples": len(chosen),
            "unpruned_accuracy": float(np.mean([r["correct"]["unpruned"] for r in chosen])),
        }
    return summary


def _method_order(method: str) -> tuple[int, str]:
    known = (*REGISTERED, "ground_truth")
    return (known.index(method) if method in known else len(known), method)


def _layer_pruning(model_config_or_model, method: str, keep: float, settings: EvalSettings) -> in_llm.LayerPruning:
    config = getattr(model_config_or_model, "config", model_config_or_model)
    return in_llm.layer_pruning(method, keep, config.text.num_hidden_layers, settings.prune_layer)


def _relative_flops(record: dict, key: str, method: str, config, settings: EvalSettings) -> float:
    """The LLM prefill FLOPs of this sample's pruned run, in % of its unpruned prefill."""
    length = record["text_tokens"] + record["visual_tokens"]
    keep = float(key.split("@")[1])
    if method in REGISTERED and REGISTERED[method].where == "llm":
        pruned = _layer_pruning(config, method, keep, settings).prefill_flops(
            config.text, length, record["visual_tokens"]
        )
    else:  # an input method (under a budget or not): what this sample kept
        pruned = prefill_flops(config.text, length, record["text_tokens"] + int(record["kept"][key].sum()))
    return 100.0 * pruned / prefill_flops(config.text, length)
