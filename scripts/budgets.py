"""Per-sample budgets against fixed keep ratios on the miniature: retention against mean prefill FLOPs.

    python scripts/budgets.py --run outputs/miniature-demo [--out budgets.md]

Reads a finished `make demo` / scripts/demo.py run (its data, MLLM, mappers and HAWK's head weights)
and evaluates the paper's mapper, the mapper v2, layer-1 attention and HAWK at keep 0.5 / 0.25 / 0.111, each fixed
(ceil(keep * n) tokens a sample) and under mass budgets (prune/budget.py: the fewest top tokens holding
TAU of the scorer's mass, the keep ratio the ceiling). Chosen on the validation splits, reported on the
test splits: per scorer, the budget with the best validation retention whose mean FLOPs are at most the
fixed keep 0.111's. Writes the Pareto table (every setting's retention and mean FLOPs per split) and the
chosen budgets against fixed 0.111.
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


def markdown(results: dict[str, dict], chosen: dict[str, str | None]) -> str:
    tests = [s for s in TEST if s in results]
    lines = ["### Chosen on validation, against fixed keep 0.111: retention % / mean FLOPs % / kept %", ""]
    lines += ["| scorer | setting | " + " | ".join(tests) + " |", "|---" * (2 + len(tests)) + "|"]
    for scorer, setting in chosen.items():
        for key in filter(None, (f"{scorer}@{MATCHED}", setting)):
            cells = [settings_rows(results[s])[key] for s in tests]
            text = " | ".join(f"{c['retention']:.1f} / {c['flops']:.0f} / {100 * c['kept']:.0f}" for c in cells)
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


def main(argv=None) -> str:
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--run", type=Path, required=True, help="a finished miniature run (scripts/demo.py --out)")
    parser.add_argument("--out", type=Path, help="also write the markdown and the summaries (.json) here")
    args = parser.parse_args(argv)
    run = read_finished_run(args.run)
    config, model, splits = run.config, run.model, run.splits
    mappers = {scorer: args.run / "mappers" / scorer / "mapper" for scorer in ("mapper", "mapper_v2")}
    mappers = {scorer: load_mapper(path) for scorer, path in mappers.items() if path.is_dir()}
    scorers = tuple(s for s in SCORERS if s in mappers or not s.startswith("mapper"))
    settings = EvalSettings(
        text_bucket=config.mllm.text_bucket, visual_buckets=tuple(config.mllm.visual_buckets),
        batch_size=config.eval.batch_size, keep_ratios=KEEP_RATIOS, seed=config.seed,
        methods=tuple(s for s in scorers if s != "mapper_v2"), head_weights=run.head_weights,
        budgets=tuple(f"mass:{t}" for t in TAUS),
    )  # fmt: skip
    results = {}
    for name in (s for s in (*VALIDATION, *TEST) if s in splits):
        records = evaluate_split(model, mappers["mapper"], splits[name], None, settings, desc=name)  # no oracle
        if "mapper_v2" in mappers:  # its own mapper, in a second pass
            v2_settings = dataclasses.replace(settings, methods=("mapper_v2",))
            extra = evaluate_split(model, mappers["mapper_v2"], splits[name], None, v2_settings, desc=f"{name} v2")
            merge_records(records, extra)
        results[name] = summarise(records, model.config, settings)
    chosen = choose([results[s] for s in VALIDATION if s in results], scorers)
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps({"chosen": chosen, "results": results}, indent=1))
    return cli.print_table(markdown(results, chosen), args.out)


if __name__ == "__main__":
    cli.run_main(main)
