"""Per-sample budgets against fixed keep ratios on the miniature: retention against mean prefill FLOPs.

    python scripts/budgets.py --run outputs/miniature-demo [--taus 0.3,0.5,0.7,0.8,0.9] [--out budgets.md]

Reads a finished `make demo` / scripts/demo.py run (its data, MLLM, mappers and HAWK's head weights)
and evaluates the paper's mapper, the mapper v2, layer-1 attention and HAWK at keep 0.5 / 0.25 / 0.111, each fixed
(ceil(keep * n) tokens a sample) and under mass budgets (prune/budget.py: the fewest top tokens holding
TAU of the scorer's mass, the keep ratio the ceiling). Chosen on the validation splits, reported on the
test splits: per scorer, the budget with the best validation retention whose mean FLOPs are at most the
fixed keep 0.111's, and the budget with the best gain over the fixed keeps at equal FLOPs (its retention
less the fixed keeps' retention interpolated linearly at its mean FLOPs). Writes both choices and the
Pareto table (every setting's retention and mean FLOPs per split).

    python scripts/budgets.py --summaries budgets.json [--out budgets.md]

writes the tables again from an earlier run's summaries (its --out's .json), without evaluating.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from tokcomp_jax import cli
from tokcomp_jax.mapper.checkpoint import load_mapper
from tokcomp_jax.miniature.evaluate import EvalSettings, evaluate_split, merge_records, summarise
from tokcomp_jax.miniature.finished import read_finished_run
from tokcomp_jax.prune.budget import Budget

SCORERS = ("mapper", "mapper_v2", "attention", "hawk")  # mapper_v2 where the run trained one
KEEP_RATIOS = (0.5, 0.25, 0.111)
TAUS = (0.3, 0.5, 0.7, 0.8, 0.9)
MATCHED = "0.111"  # the fixed keep whose FLOPs a budget must not exceed
VALIDATION = ("validation", "validation_2x", "validation_clips")
TEST = ("test", "test_2x", "test_4x", "test_clips")


def settings_rows(summary: dict) -> dict[str, dict]:
    """Every (scorer, budget, keep) of a split's summary: {"scorer+budget@keep": row}."""
    return {f"{method}@{keep}": row for method, rows in summary["methods"].items() for keep, row in rows.items()}


def choose(validation: list[dict], scorers: tuple[str, ...]) -> dict[str, str]:
    """Per scorer, the budgeted setting with the best mean validation retention at mean FLOPs no more
    than its fixed keep 0.111's (over the validation splits, each weighed by its samples)."""

    def mean(key, field):
        weights = [s["samples"] for s in validation]
        return np.average([settings_rows(s)[key][field] for s in validation], weights=weights)

    chosen = {}
    for scorer in scorers:
        ceiling = mean(f"{scorer}@{MATCHED}", "flops")
        candidates = [k for k in settings_rows(validation[0]) if k.startswith(f"{scorer}+")]
        within = [k for k in candidates if mean(k, "flops") <= ceiling + 1e-9]
        chosen[scorer] = max(within, key=lambda k: mean(k, "retention")) if within else None
    return chosen


def frontier_gain(split: dict, key: str) -> float:
    """Points of retention the setting `key` ("scorer+budget@keep") of a split's summary holds above its
    scorer's fixed keeps, interpolated linearly at its mean FLOPs; nan outside the fixed keeps' FLOPs."""
    rows = settings_rows(split)
    scorer = key.split("+")[0].split("@")[0]
    fixed = sorted((row["flops"], row["retention"]) for k, row in rows.items() if k.split("@")[0] == scorer)
    flops, retention = np.array(fixed).T
    at = rows[key]["flops"]
    return float(rows[key]["retention"] - np.interp(at, flops, retention, left=np.nan, right=np.nan))


def choose_by_gain(validation: list[dict], scorers: tuple[str, ...]) -> dict[str, str | None]:
    """Per scorer, the budgeted setting with the best mean gain over its fixed keeps at equal FLOPs on the
    validation splits (weighed by their samples; a setting outside the fixed keeps' FLOPs on any is out)."""
    weights = [s["samples"] for s in validation]
    chosen = {}
    for scorer in scorers:
        gains = {
            key: np.average([frontier_gain(s, key) for s in validation], weights=weights)
            for key in settings_rows(validation[0])
            if key.startswith(f"{scorer}+")
        }
        gains = {key: gain for key, gain in gains.items() if np.isfinite(gain)}
        chosen[scorer] = max(gains, key=gains.get) if gains else None
    return chosen


def markdown(results: dict[str, dict], chosen: dict[str, str | None], by_gain: dict[str, str | None]) -> str:
    tests = [s for s in TEST if s in results]
    lines = ["### Chosen on validation, against fixed keep 0.111: retention % / mean FLOPs % / kept %", ""]
    lines += ["| scorer | setting | " + " | ".join(tests) + " |", "|---" * (2 + len(tests)) + "|"]
    for scorer, setting in chosen.items():
        for key in filter(None, (f"{scorer}@{MATCHED}", setting)):
            cells = [settings_rows(results[s])[key] for s in tests]
            text = " | ".join(f"{c['retention']:.1f} / {c['flops']:.0f} / {100 * c['kept']:.0f}" for c in cells)
            lines.append(f"| {scorer} | {key.removeprefix(scorer)} | {text} |")
    lines += ["", "### Chosen on validation by gain over the fixed keeps at equal FLOPs: "
              "gain in points (retention % at mean FLOPs %)", ""]  # fmt: skip
    lines += ["| scorer | setting | " + " | ".join(tests) + " |", "|---" * (2 + len(tests)) + "|"]
    for scorer, key in ((scorer, key) for scorer, key in by_gain.items() if key):
        rows = [settings_rows(results[s])[key] for s in tests]
        gains = [frontier_gain(results[s], key) for s in tests]
        text = " | ".join(
            f"{g:+.1f} ({r['retention']:.1f} at {r['flops']:.0f})" for g, r in zip(gains, rows, strict=True)
        )
        lines.append(f"| {scorer} | {key.removeprefix(scorer)} | {text} |")
    for split in tests:
        lines += ["", f"### {split}: every setting by mean FLOPs", "",
                  "| setting | retention % ± s.e. | FLOPs % | kept % |", "|---|---|---|---|"]  # fmt: skip
        rows = sorted(settings_rows(results[split]).items(), key=lambda item: item[1]["flops"])
        lines += [
            f"| {key} | {r['retention']:.1f} ± {r['retention_error']:.1f} | {r['flops']:.1f} | {100 * r['kept']:.1f} |"
            for key, r in rows
        ]
    return "\n".join(lines) + "\n"


def evaluate_run(path: Path, budgets: tuple[str, ...]) -> dict[str, dict]:
    """Every validation and test split's summary (evaluate.summarise) of the finished run in `path`:
    each scorer at every keep ratio, fixed and under each of `budgets` ("mass:TAU")."""
    run = read_finished_run(path)
    config, model, splits = run.config, run.model, run.splits
    mappers = {scorer: path / "mappers" / scorer / "mapper" for scorer in ("mapper", "mapper_v2")}
    mappers = {scorer: load_mapper(directory) for scorer, directory in mappers.items() if directory.is_dir()}
    scorers = tuple(s for s in SCORERS if s in mappers or not s.startswith("mapper"))
    settings = EvalSettings(
        text_bucket=config.mllm.text_bucket, visual_buckets=tuple(config.mllm.visual_buckets),
        batch_size=config.eval.batch_size, keep_ratios=KEEP_RATIOS, seed=config.seed,
        methods=tuple(s for s in scorers if s != "mapper_v2"), head_weights=run.head_weights,
        budgets=budgets,
    )  # fmt: skip
    results = {}
    for name in (s for s in (*VALIDATION, *TEST) if s in splits):
        records = evaluate_split(model, mappers["mapper"], splits[name], None, settings, desc=name)  # no oracle
        if "mapper_v2" in mappers:  # its own mapper, in a second pass
            v2_settings = dataclasses.replace(settings, methods=("mapper_v2",))
            extra = evaluate_split(model, mappers["mapper_v2"], splits[name], None, v2_settings, desc=f"{name} v2")
            merge_records(records, extra)
        results[name] = summarise(records, model.config, settings)
    return results


def read_summaries(path: Path) -> dict[str, dict]:
    """The split summaries an earlier run of this script wrote (its --out's .json)."""
    try:
        return json.loads(path.read_text())["results"]
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(
            f"--summaries {path}: not the .json an earlier scripts/budgets.py --out wrote ({error})"
        ) from None


def main(argv=None) -> str:
    parser = cli.ArgumentParser(__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a finished miniature run (scripts/demo.py --out)")
    source.add_argument("--summaries", type=Path, help="an earlier --out's .json: its tables again")
    parser.add_argument(
        "--taus", default=",".join(map(str, TAUS)), help="the mass budgets' TAUs, comma-separated (with --run)"
    )
    parser.add_argument("--out", type=Path, help="also write the markdown and the summaries (.json) here")
    args = parser.parse_args(argv)
    budgets = tuple(f"mass:{tau}" for tau in args.taus.split(","))
    try:  # the budget's own check of each TAU
        for budget in budgets:
            Budget.parse(budget)
    except ValueError as error:
        parser.error(f"--taus {args.taus!r}: {error}")
    results = evaluate_run(args.run, budgets) if args.run else read_summaries(args.summaries)
    scorers = tuple(s for s in SCORERS if s in next(iter(results.values()))["methods"])
    validation = [results[s] for s in VALIDATION if s in results]
    chosen, by_gain = choose(validation, scorers), choose_by_gain(validation, scorers)
    if args.out:
        summaries = {"chosen": chosen, "chosen_by_gain": by_gain, "results": results}
        args.out.with_suffix(".json").write_text(json.dumps(summaries, indent=1))
    return cli.print_table(markdown(results, chosen, by_gain), args.out)


if __name__ == "__main__":
    cli.run_main(main)
