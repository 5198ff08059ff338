"""Pictures of per-token scores over an image: relevance heat maps and which tokens were kept."""

from __future__ import annotations

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
