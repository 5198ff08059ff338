"""Retention and evidence recall over slices of a miniature run's records (issue 41's diagnosis).

A slice groups a split's questions by one property of the record: its question kind, where its
evidence sits in the visual sequence (the instruction follows the image, so the last third is nearest
the text), or how many visual tokens it has (terciles of the split). Records are those of
`report.record_from_json` (boolean `evidence` and `kept` masks over the visual tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

POSITIONS = ("first third", "middle third", "last third")


def question_kind(record: dict) -> str:
    return record["kind"].split("/")[-1]


def evidence_position(record: dict) -> str:
    """Which third of the visual sequence holds the mean index of the record's evidence tokens."""
    count = record["visual_tokens"]
    where = np.flatnonzero(record["evidence"]).mean() / max(count - 1, 1)
    return POSITIONS[min(int(where * 3), 2)]


def length_terciles(records: Sequence[dict]) -> Callable[[dict], str]:
    """A slice by visual-token count: the split's terciles, each named by its range of counts."""
    counts = np.array([r["visual_tokens"] for r in records])
    edges = np.quantile(counts, (1 / 3, 2 / 3))
    bins = np.digitize(counts, edges, right=True)
    ranges = {b: (counts[bins == b].min(), counts[bins == b].max()) for b in np.unique(bins)}
    names = {b: f"{low} tokens" if low == high else f"{low}-{high} tokens" for b, (low, high) in ranges.items()}

    def length(record: dict) -> str:
        return names[int(np.digitize(record["visual_tokens"], edges, right=True))]

    return length


def slice_rows(
    records: Sequence[dict], slice_of: Callable[[dict], str], methods: Sequence[str], keep_ratios: Sequence[float]
) -> list[dict]:
    """One row per slice (thirds in order, others sorted), among the records with evidence:
    {"slice", "samples", "unpruned": accuracy %, then per "method@keep": (retention %, recall %)}.

    Retention is pruned correct over unpruned correct within the slice, as the run's own tables."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        if record["evidence"].any():
            groups.setdefault(slice_of(record), []).append(record)
    rows = []
    for name in sorted(groups, key=_slice_order):
        chosen = groups[name]
        unpruned = np.array([r["correct"]["unpruned"] for r in chosen], float)
        row = {"slice": name, "samples": len(chosen), "unpruned": 100 * unpruned.mean()}
        for method in methods:
            for keep in keep_ratios:
                key = f"{method}@{keep}"
                pruned = np.array([r["correct"][key] for r in chosen], float)
                recall = np.mean([r["kept"][key][r["evidence"]].mean() for r in chosen])
                row[key] = (100 * pruned.sum() / max(unpruned.sum(), 1), 100 * recall)
        rows.append(row)
    return rows


def _slice_order(name: str) -> tuple:
    """Thirds in sequence order, token ranges by their first count, anything else by name."""
    if name in POSITIONS:
        return (0, POSITIONS.index(name), name)
    first = name.split("-")[0].split(" ")[0]
    return (1, int(first), name) if first.isdigit() else (2, 0, name)


def slice_markdown(rows: list[dict], methods: Sequence[str], keep_ratios: Sequence[float], title: str) -> str:
    """A table of slice_rows: one line per slice, one column per method, cells 'retention (recall)' at each keep."""
    keeps = " / ".join(str(k) for k in keep_ratios)
    lines = [
        f"#### {title}: retention % (evidence recall %) at keep {keeps}",
        "",
        "| slice | n | unpruned % | " + " | ".join(methods) + " |",
        "|---" * (3 + len(methods)) + "|",
    ]
    for row in rows:
        cells = [
            " / ".join(f"{row[f'{m}@{k}'][0]:.0f} ({row[f'{m}@{k}'][1]:.0f})" for k in keep_ratios) for m in methods
        ]
        lines.append(f"| {row['slice']} | {row['samples']} | {row['unpruned']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
