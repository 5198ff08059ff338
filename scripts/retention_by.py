"""Retention and evidence recall of a finished miniature run, slice by slice (issue 41's diagnosis):

    python scripts/retention_by.py --run outputs/miniature-demo [--by kind,position,length]
        [--methods mapper,mapper_v2,oracle,attention] [--keep 0.25,0.111] [--out slices.md]

Reads only the run's records-SPLIT.jsonl (every question's answers, kept tokens and evidence cells)
and prints, per test split and slice, retention % and evidence recall % of each method: by question
kind, by where the evidence sits in the visual sequence (thirds; the instruction follows the image),
and by the number of visual tokens (terciles of the split).
"""

from __future__ import annotations

import json
from pathlib import Path

from tokcomp_jax import cli
from tokcomp_jax.miniature import report
from tokcomp_jax.miniature.slices import evidence_position, length_terciles, question_kind, slice_markdown, slice_rows

SLICES = {"kind": "question kind", "position": "evidence position", "length": "visual tokens"}


def read_records(run: Path, split: str) -> list[dict]:
    path = run / f"records-{split}.jsonl"
    if not path.is_file():
        raise SystemExit(f"--run {run} has no {path.name}: not a finished miniature run, or no split {split!r}")
    return [report.record_from_json(json.loads(line)) for line in path.read_text().splitlines()]


def main(argv=None) -> str:
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--run", type=Path, required=True, help="a finished miniature run (scripts/demo.py --out)")
    parser.add_argument("--split", action="append", help="repeat for several (default: every split the run has)")
    parser.add_argument("--by", default="kind,position,length", help=f"comma-separated, of {', '.join(SLICES)}")
    parser.add_argument("--methods", default="mapper,mapper_v2,oracle,attention", help="comma-separated methods")
    parser.add_argument("--keep", default="0.25,0.111", help="comma-separated keep ratios the run evaluated")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    by = args.by.split(",")
    if unknown := set(by) - set(SLICES):
        parser.error(f"--by: unknown slices {sorted(unknown)}; choose from {list(SLICES)}")
    methods, keeps = args.methods.split(","), [float(k) for k in args.keep.split(",")]
    splits = args.split or [p.name[len("records-") : -len(".jsonl")] for p in sorted(args.run.glob("records-*.jsonl"))]
    tables = []
    for split in splits:
        records = read_records(args.run, split)
        missing = {f"{m}@{k}" for m in methods for k in keeps} - set(records[0]["correct"])
        if missing:
            parser.error(f"{split}: the run did not evaluate {sorted(missing)}")
        slicers = {"kind": question_kind, "position": evidence_position, "length": length_terciles(records)}
        for name in by:
            rows = slice_rows(records, slicers[name], methods, keeps)
            tables.append(slice_markdown(rows, methods, keeps, f"{split}, by {SLICES[name]}"))
    return cli.print_table("\n".join(tables), args.out)


if __name__ == "__main__":
    cli.run_main(main)
