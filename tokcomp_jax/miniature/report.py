"""The miniature's outputs: the retention table (markdown) and kept-token pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tokcomp_jax.data import vqa
from tokcomp_jax.miniature.evaluate import METHODS
from tokcomp_jax.visualize import kept_overlay

LABELS = {
    "mapper": "mapper (paper)",
    "attention": "layer-1 attention",
    "vision_attention": "vision-encoder attention (VisionZip-style)",
    "dart": "DART-style duplication",
    "stride": "uniform stride",
    "random": "random",
    "fastv": "FastV (K=2)",
    "oracle": "explanation oracle (relevance labels)",
    "ground_truth": "ground-truth evidence cells",
}


def retention_table(summary: dict, keep_ratios) -> str:
    """One split: rows = methods; per keep ratio, retention % (ground-truth recall %, LLM FLOPs %)."""
    header = "| method | " + " | ".join(f"keep {keep}" for keep in keep_ratios) + " |"
    lines = [header, "|---" * (len(keep_ratios) + 1) + "|"]
    lines.append(
        "| unpruned | " + " | ".join(f"100 (acc {100 * summary['unpruned_accuracy']:.1f})" for _ in keep_ratios) + " |"
    )
    for method in METHODS:
        cells = []
        for keep in keep_ratios:
            row = summary["methods"][method][str(keep)]
            cells.append(f"**{row['retention']:.1f}** ({100 * row['ground_truth_recall']:.0f}, {row['flops']:.0f})")
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def retention_markdown(results: dict, keep_ratios, title: str) -> str:
    parts = [
        f"# {title}",
        "",
        "Retention = pruned accuracy / unpruned accuracy, in %; in brackets the recall of the "
        "ground-truth evidence cells among the kept tokens (%) and the LLM prefill FLOPs (% of unpruned).",
    ]
    for split, summary in results.items():
        parts += [
            "",
            f"## {split}: {summary['samples']} samples, unpruned accuracy {100 * summary['unpruned_accuracy']:.1f}%",
            "",
        ]
        parts.append(retention_table(summary, keep_ratios))
        kinds = ", ".join(f"{kind} {100 * v['unpruned_accuracy']:.0f}%" for kind, v in summary["kinds"].items())
        parts += ["", f"Unpruned accuracy per question kind: {kinds}."]
    return "\n".join(parts) + "\n"


def _titled(panel: np.ndarray, title: str, height: int = 14) -> np.ndarray:
    canvas = Image.new("RGB", (panel.shape[1], panel.shape[0] + height), (255, 255, 255))
    canvas.paste(Image.fromarray(panel), (0, height))
    ImageDraw.Draw(canvas).text((2, 1), title, fill=(0, 0, 0))
    return np.asarray(canvas)


def kept_pictures(record: dict, example: dict, keep: float, methods, path: Path) -> Path:
    """The image, then one panel per method with its pruned tokens greyed out; evidence cells framed red."""
    image = example["image"]
    grid = (image.shape[0] // vqa.CELL, image.shape[1] // vqa.CELL)
    framed = image.copy()
    for index in np.flatnonzero(record["evidence"]):
        top, left = (index // grid[1]) * vqa.CELL, (index % grid[1]) * vqa.CELL
        framed[top : top + vqa.CELL, [left, left + vqa.CELL - 1]] = (255, 0, 0)
        framed[[top, top + vqa.CELL - 1], left : left + vqa.CELL] = (255, 0, 0)
    width = max(image.shape[1], 96)
    pad = lambda panel: np.pad(panel, ((0, 0), (0, width - panel.shape[1]), (0, 0)), constant_values=255)  # noqa: E731
    panels = [_titled(pad(framed), "evidence")]
    for method in methods:
        key = f"{method}@{keep}"
        mark = "ok" if record["correct"][key] else "wrong"
        panels.append(_titled(pad(kept_overlay(image, record["kept"][key], grid)), f"{method} {mark}"))
    strip = np.concatenate([np.pad(p, ((0, 0), (0, 4), (0, 0)), constant_values=255) for p in panels], axis=1)
    caption = f"{example['question']}  answer: {example['answer']}  keep {keep}"
    Image.fromarray(_titled(strip, caption)).save(path)
    return path
