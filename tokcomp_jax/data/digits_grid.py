"""Digits grid VQA: real handwritten digits (scikit-learn's bundled `load_digits`) on a grid of cells.

    builder = vqa.build(DigitsGridVqa, data_dir, "demo")

Question kinds: the digit in the (single) red box, how many times a digit appears, and the sum
of the two boxed digits. The held-out splits (test, test_2x) draw their digits from a fifth of
the 1797 scans that the train and validation splits never use.
"""

from __future__ import annotations

import functools

import numpy as np

from tokcomp_jax.data import vqa

KINDS = ("boxed_digit", "count", "sum")
BOX_COLOUR = (230, 40, 40)
HELD_OUT_SPLITS = ("test", "test_2x")


@functools.cache
def _digit_pools() -> dict[bool, tuple[np.ndarray, np.ndarray]]:
    """held_out -> (images [n, 8, 8] in 0..16, labels [n]); every fifth scan is held out."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    held_out = np.arange(len(digits.target)) % 5 == 0
    return {flag: (digits.images[held_out == flag], digits.target[held_out == flag]) for flag in (False, True)}


def render(rows: int, cols: int, cells: dict[int, np.ndarray], boxed: list[int]) -> np.ndarray:
    """[rows * CELL, cols * CELL, 3] uint8: each scan scaled x3 (24 px) in its cell, red frames on `boxed`."""
    cell = vqa.CELL
    image = np.zeros((rows * cell, cols * cell, 3), np.uint8)
    for index, scan in cells.items():
        top, left = (index // cols) * cell + 2, (index % cols) * cell + 2
        pixels = (np.kron(scan, np.ones((3, 3))) * 15).clip(0, 255).astype(np.uint8)
        image[top : top + 24, left : left + 24] = pixels[..., None]
    for index in boxed:
        top, left = (index // cols) * cell, (index % cols) * cell
        frame = image[top : top + cell, left : left + cell]
        frame[:2], frame[-2:], frame[:, :2], frame[:, -2:] = (BOX_COLOUR,) * 4
    return image


class DigitsGridVqa(vqa.GridVQABuilder):
    """Handwritten digits scattered over a grid; questions about boxed cells and digit counts."""

    def make_example(self, rng: np.random.Generator, rows: int, cols: int, split: str, index: int) -> dict:
        images, labels = _digit_pools()[split in HELD_OUT_SPLITS]
        num_cells = rows * cols
        count = int(rng.integers(2, min(8, num_cells) + 1))
        filled = [int(c) for c in rng.choice(num_cells, count, replace=False)]
        scans = rng.integers(len(labels), size=count)
        digit_at = {cell: int(labels[s]) for cell, s in zip(filled, scans, strict=True)}
        kind = KINDS[rng.integers(len(KINDS))]
        if kind == "boxed_digit":
            boxed = filled[:1]
            question, answer, evidence = "which digit is in the box ?", str(digit_at[boxed[0]]), boxed
        elif kind == "sum":
            boxed = filled[:2]
            question, answer, evidence = (
                "what is the sum of the boxed digits ?",
                str(sum(digit_at[c] for c in boxed)),
                boxed,
            )
        else:
            boxed = []
            digit = digit_at[filled[0]] if rng.random() < 0.85 else int(rng.integers(10))
            evidence = [cell for cell in filled if digit_at[cell] == digit]
            question, answer = f"how many {digit} are there ?", str(len(evidence))
        return {
            "image": render(rows, cols, {cell: images[s] for cell, s in zip(filled, scans, strict=True)}, boxed),
            "question": question,
            "answer": answer,
            "kind": kind,
            "evidence": [vqa.cell_box(cell // cols, cell % cols) for cell in evidence],
        }
