"""The miniature's outputs: the retention table (markdown) and kept-token pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tokcomp_jax.data import vqa
from tokcomp_jax.prune.methods import METHODS
from tokcomp_jax.visualize import kept_overlay

LABELS = {
    **{name: method.label for name, method in METHODS.items()},
    "mapper_grid": "mapper (heads + grid)",
    "fastv": "FastV (K=2)",
    "pdrop": "PyramidDrop (L/4, L/2, 3L/4; lambda = keep)",
    "dart": "DART (K=2)",
    "ground_truth": "ground-truth evidence cells",
}


def record_to_json(record: dict) -> dict:
    """An evaluation record with its masks as index lists (records-SPLIT.jsonl)."""
    kept = {key: np.flatnonzero(mask).tolist() for key, mask in record["kept"].items()}
    return {**record, "evidence": np.flatnonzero(record["evidence"]).tolist(), "kept": kept}


def record_from_json(line: dict) -> dict:
    """The inverse of record_to_json."""

    def mask(indices):
        values = np.zeros(line["visual_tokens"], bool)
        values[indices] = True
        return values

    return {**line, "evidence": mask(line["evidence"]), "kept": {k: mask(v) for k, v in line["kept"].items()}}


def _cell(row: dict) -> str:
    paired = "–" if np.isnan(row["paired_coverage"]) else f"{row['paired_coverage']:.2f}"
    return (
        f"**{row['retention']:.1f}** ±{row['retention_error']:.1f} "
        f"({100 * row['accuracy']:.1f} / {100 * row['ground_truth_recall']:.0f} / {paired} / {row['flops']:.0f})"
    )


def retention_table(summary: dict, keep_ratios) -> str:
    """One split: rows = methods; per keep ratio, retention % ± its standard error (accuracy % /
    ground-truth recall % / paired coverage / LLM FLOPs %)."""
    header = "| method | " + " | ".join(f"keep {keep}" for keep in keep_ratios) + " |"
    lines = [header, "|---" * (len(keep_ratios) + 1) + "|"]
    lines.append(
        "| unpruned | " + " | ".join(f"100 (acc {100 * summary['unpruned_accuracy']:.1f})" for _ in keep_ratios) + " |"
    )
    for method, rows in summary["methods"].items():
        cells = [_cell(rows[str(keep)]) for keep in keep_ratios]
        lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def matched_flops_table(
    summary: dict,
    keep_ratios,
    compared=("mapper", "mapper_v2", "attention", "hawk", "visionzip", "cdpruner", "divprune"),
) -> str:
    """Each in-LLM (method, keep) beside the input-level keep ratio of nearest measured prefill FLOPs,
    and the `compared` input methods' retention there (the paper's tables compare at equal FLOPs)."""
    methods = summary["methods"]
    inside = [m for m in methods if m in METHODS and METHODS[m].where == "llm"]
    present = [m for m in compared if m in methods]
    if not inside or not present:
        return ""
    header = "| in-LLM method | keep | FLOPs % | retention | input keep (FLOPs %) | " + " | ".join(
        LABELS.get(m, m) for m in present
    )
    lines = [header + " |", "|---" * (5 + len(present)) + "|"]
    for name in inside:
        for keep in keep_ratios:
            row = methods[name][str(keep)]
            nearest = min(keep_ratios, key=lambda k: abs(methods[present[0]][str(k)]["flops"] - row["flops"]))
            matched = methods[present[0]][str(nearest)]
            cells = " | ".join(f"{methods[m][str(nearest)]['retention']:.1f}" for m in present)
            lines.append(
                f"| {LABELS.get(name, name)} | {keep} | {row['flops']:.0f} | {row['retention']:.1f} | "
                f"{nearest} ({matched['flops']:.0f}) | {cells} |"
            )
    return "\n".join(lines)


def retention_markdown(results: dict, keep_ratios, title: str) -> str:
    parts = [
        f"# {title}",
        "",
        "Retention = pruned accuracy / unpruned accuracy, in %, ± its standard error (delta method over "
        "the paired per-question outcomes); in brackets: pruned accuracy (%) / recall of the ground-truth "
        "evidence cells among the kept tokens (%) / paired coverage (share of images whose kept tokens hold "
        "the evidence of both of its questions) / LLM prefill FLOPs (% of unpruned).",
    ]
    for split, summary in results.items():
        parts += [
            "",
            f"## {split}: {summary['samples']} samples, unpruned accuracy {100 * summary['unpruned_accuracy']:.1f}%",
            "",
        ]
        parts.append(retention_table(summary, keep_ratios))
        matched = matched_flops_table(summary, keep_ratios)
        if matched:
            parts += ["", "At matched compute (the input-level keep ratio of nearest prefill FLOPs):", "", matched]
        kinds = ", ".join(f"{kind} {100 * v['unpruned_accuracy']:.0f}%" for kind, v in summary["kinds"].items())
        parts += ["", f"Unpruned accuracy per question kind: {kinds}."]
    return "\n".join(parts) + "\n"


def _titled(panel: np.ndarray, title: str, height: int = 14) -> np.ndarray:
    canvas = Image.new("RGB", (panel.shape[1], panel.shape[0] + height), (255, 255, 255))
    canvas.paste(Image.fromarray(panel), (0, height))
    ImageDraw.Draw(canvas).text((2, 1), title, fill=(0, 0, 0))
    return np.asarray(canvas)


def _kept_strip(record: dict, example: dict, keep: float, methods) -> np.ndarray:
    """The image, the evidence cells alone, then one panel per method with its pruned tokens greyed out."""
    image = example["image"]
    grid = (image.shape[0] // vqa.CELL, image.shape[1] // vqa.CELL)
    width = max(image.shape[1], 96)
    pad = lambda panel: np.pad(panel, ((0, 0), (0, width - panel.shape[1]), (0, 0)), constant_values=255)  # noqa: E731
    panels = [_titled(pad(image), "image"), _titled(pad(kept_overlay(image, record["evidence"], grid)), "evidence")]
    for method in methods:
        key = f"{method}@{keep}"
        mark = "ok" if record["correct"][key] else "wrong"
        panels.append(_titled(pad(kept_overlay(image, record["kept"][key], grid)), f"{method} {mark}"))
    strip = np.concatenate([np.pad(p, ((0, 0), (0, 4), (0, 0)), constant_values=255) for p in panels], axis=1)
    return _titled(strip, f"{example['question']}  answer: {example['answer']}  keep {keep}")


def kept_pictures(records: list[dict], examples: list[dict], keep: float, methods, path: Path) -> Path:
    """One row per question (e.g. both questions of a paired image): the evidence, then what each
    method keeps and whether the answer survived. Clips show their frames stacked vertically."""
    rows = [_kept_strip(record, example, keep, methods) for record, example in zip(records, examples, strict=True)]
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 6), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    Image.fromarray(np.concatenate(rows)).save(path)
    return path
