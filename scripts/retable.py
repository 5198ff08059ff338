"""The retention tables of a finished miniature run, again, over a subset of question kinds:

    python scripts/retable.py --run outputs/miniature-full --kinds boxed_digit,sum,clip_boxed_digit,clip_sum

reads OUT/retention.json and OUT/records-*.jsonl (every question's answers and kept tokens) and
writes OUT/retention-KINDS.md and .json, with the same columns as the run's own table.
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags

from tokcomp_jax.miniature import report
from tokcomp_jax.miniature.evaluate import EvalSettings, summarise
from tokcomp_jax.miniature.samples import miniature_config

_RUN = flags.DEFINE_string("run", None, "a finished scripts/demo.py output directory", required=True)
_KINDS = flags.DEFINE_list("kinds", None, "question kinds to keep (without the dataset prefix)", required=True)


def main(argv) -> None:
    del argv
    run = Path(_RUN.value)
    summary = json.loads((run / "retention.json").read_text())
    settings = EvalSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in summary["settings"].items()})
    config = miniature_config(**summary["config"]["mllm"]["model"])
    results = {}
    for split in summary["results"]:
        lines = (run / f"records-{split}.jsonl").read_text().splitlines()
        records = [report.record_from_json(json.loads(line)) for line in lines]
        chosen = [r for r in records if r["kind"].split("/")[-1] in _KINDS.value]
        if not chosen:
            raise ValueError(f"{split}: no question of the kinds {_KINDS.value}")
        results[split] = summarise(chosen, config, settings)
    name = "-".join(_KINDS.value)
    title = f"Miniature retention, question kinds {', '.join(_KINDS.value)}"
    table = report.retention_markdown(results, settings.keep_ratios, title)
    (run / f"retention-{name}.md").write_text(table)
    (run / f"retention-{name}.json").write_text(json.dumps({"kinds": _KINDS.value, "results": results}, indent=2))
    print(table)


if __name__ == "__main__":
    app.run(main)
