"""Pictures of per-token scores over an image: relevance heat maps, which tokens were kept, and the
kept-token figure of an answered prompt (question, answer, count, legend, one panel per image or
video step)."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image


def _upsample(grid_values: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """[rows, cols] float -> [H, W] by nearest-neighbour resizing."""
    scaled = Image.fromarray(grid_values.astype(np.float32), mode="F")
    return np.asarray(scaled.resize((size_hw[1], size_hw[0]), Image.NEAREST))


def heatmap_overlay(image: np.ndarray, scores: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """Image [H, W, 3] uint8 with per-token scores [rows * cols] tinted red (min-max normalised)."""
    heat = scores.reshape(grid_hw).astype(np.float32)
    heat = (heat - heat.min()) / max(float(np.ptp(heat)), 1e-12)
    overlay = _upsample(heat, image.shape[:2])
    tinted = image.astype(np.float32) * 0.5
    tinted[..., 0] += overlay * 127.5
    return tinted.clip(0, 255).astype(np.uint8)


def kept_overlay(image: np.ndarray, kept: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """Image [H, W, 3] uint8 with pruned tokens (kept [rows * cols] False) greyed out."""
    keep = _upsample(kept.reshape(grid_hw).astype(np.float32), image.shape[:2]) > 0.5
    grey = np.full_like(image, 200)
    return np.where(keep[..., None], image, (image * 0.25 + grey * 0.75).astype(np.uint8))


def save_panels(panels: list[np.ndarray], path: str | Path) -> Path:
    """Save images of equal height side by side as one PNG."""
    Image.fromarray(np.concatenate(panels, axis=1)).save(path)
    return Path(path)


# --- the kept-token figure of one answered prompt (scripts/generate.py --picture) ------------------

TOKEN_PIXELS = 24  # drawing size of one visual token's cell
KEPT_EDGE, PRUNED_GREY = (0.1, 0.6, 0.2), 200


@dataclasses.dataclass(frozen=True)
class Panel:
    title: str
    image: np.ndarray  # [H, W, 3] uint8, the medium as the model saw it (resized to its token grid)
    kept: np.ndarray | None  # [rows, cols] bool over the image, or None where tokens do not tile it


def media_panels(
    family, config, batch: dict, images, video, kept_slots: np.ndarray, total: int
) -> tuple[list[Panel], str]:
    """Panels of a one-prompt batch's images, then its video's temporal steps, with the kept tokens
    marked where the family's tokens tile them in reading order (Qwen families, VILA1.5); else the
    media unmarked and a note on why (LLaVA-OneVision's anyres tokens form no single grid).
    kept_slots: indices among the prompt's `total` prunable visual tokens."""
    try:
        grids = family.token_grids(config, batch, np.array([total]), "grid")[0]
    except ValueError as err:
        media = [(f"image {i + 1}", image) for i, image in enumerate(images)]
        media += [] if video is None else [(f"video frame {i + 1}", frame) for i, frame in enumerate(video[:8])]
        return [Panel(title, np.asarray(image), None) for title, image in media], str(err).split(":")[0]
    cells = [(int(rows), int(cols)) for frames, rows, cols in grids for _ in range(int(frames))]
    steps = len(cells) - len(images)
    frames = [] if video is None else [video[i] for i in np.linspace(0, len(video) - 1, steps).round().astype(int)]
    titles = [f"image {i + 1}" for i in range(len(images))] + [f"video, step {t + 1} of {steps}" for t in range(steps)]
    kept = np.zeros(sum(rows * cols for rows, cols in cells), bool)
    kept[kept_slots[kept_slots < kept.size]] = True
    panels, start = [], 0
    for title, image, (rows, cols) in zip(titles, [*images, *frames], cells, strict=True):
        mask = kept[start : start + rows * cols]
        mask = mask.reshape(cols, rows).T if family.tokens_by_column else mask.reshape(rows, cols)
        resized = np.asarray(Image.fromarray(np.asarray(image)).resize((cols * TOKEN_PIXELS, rows * TOKEN_PIXELS)))
        panels.append(Panel(title, resized, mask))
        start += rows * cols
    return panels, ""


def save_kept_figure(
    panels: list[Panel], question: str, answer: str, kept: int, total: int, path: str | Path, note: str = ""
) -> Path:
    """One PNG: the question and answer, the kept count, a legend, and each panel with its pruned
    tokens greyed out and its kept tokens outlined."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    columns = min(len(panels), 4) or 1
    rows = -(-len(panels) // columns) or 1
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.2 * rows + 1.4), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, panel in zip(axes.flat, panels, strict=False):
        shown = panel.image if panel.kept is None else kept_overlay(panel.image, panel.kept, panel.kept.shape)
        axis.imshow(shown)
        axis.set_title(panel.title, fontsize=10)
        if panel.kept is not None:
            cell_h, cell_w = panel.image.shape[0] / panel.kept.shape[0], panel.image.shape[1] / panel.kept.shape[1]
            for r, c in zip(*np.nonzero(panel.kept), strict=True):
                axis.add_patch(Rectangle((c * cell_w, r * cell_h), cell_w, cell_h, fill=False, lw=1.2, ec=KEPT_EDGE))
    share = 100.0 * kept / total if total else 100.0
    lines = [
        f"Q: {question}",
        f"A: {answer or '(an empty reply)'}",
        f"kept {kept} of {total} visual tokens ({share:.0f}%)",
    ]
    figure.suptitle("\n".join(textwrap.shorten(line, 110) for line in lines), fontsize=11, x=0.02, ha="left")
    if any(panel.kept is not None for panel in panels):
        legend = [
            Patch(fc="white", ec=KEPT_EDGE, label="kept token"),
            Patch(fc=(0.78, 0.78, 0.78), label="pruned token"),
        ]
        figure.legend(handles=legend, loc="lower center", ncol=2, frameon=False, fontsize=9)
    if note:  # in the legend's place: nothing is marked
        figure.text(0.5, 0.01, textwrap.fill(note, 60 * columns), ha="center", va="bottom", fontsize=8, style="italic")
    figure.tight_layout(rect=(0, 0.06, 1, 0.9))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)
