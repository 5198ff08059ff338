"""Synthetic scenes VQA: coloured shapes on a grid, questions whose answer rests on one to three cells.

    builder = vqa.build(SyntheticScenesVqa, data_dir, "demo")   # or "full", or a vqa.GridConfig

Each object fills one cell of the merged-token grid, so most visual tokens are background and
irrelevant to a question. Question kinds: the colour of the only object of a shape, the shape
of the only object of a colour, how many objects of a colour, whether a colour-shape pair is
there, and whether one object is left of / above another.
"""

from __future__ import annotations

import functools

import numpy as np

from tokcomp_jax.data import vqa

BACKGROUND = 40
KINDS = ("colour", "shape", "count", "presence", "relation")


@functools.cache
def _shape_mask(shape: str, size: int) -> np.ndarray:
    """bool [size, size] of a shape centred in a cell."""
    y, x = np.mgrid[:size, :size] + 0.5
    centre, radius = size / 2, size * 0.36
    if shape == "square":
        return (abs(y - centre) < radius) & (abs(x - centre) < radius)
    if shape == "circle":
        return (y - centre) ** 2 + (x - centre) ** 2 < radius**2
    if shape == "triangle":
        top, bottom = centre - radius, centre + radius
        return (y > top) & (y < bottom) & (abs(x - centre) < (y - top) / 2)
    if shape == "cross":
        return ((abs(y - centre) < radius / 3) | (abs(x - centre) < radius / 3)) & (
            (abs(y - centre) < radius) & (abs(x - centre) < radius)
        )
    raise ValueError(f"unknown shape {shape!r}")


def render(rows: int, cols: int, objects: list[dict]) -> np.ndarray:
    """[rows * CELL, cols * CELL, 3] uint8: dark background, one shape per object's cell."""
    cell = vqa.CELL
    image = np.full((rows * cell, cols * cell, 3), BACKGROUND, np.uint8)
    for obj in objects:
        mask = _shape_mask(obj["shape"], cell)
        patch = image[obj["row"] * cell : (obj["row"] + 1) * cell, obj["col"] * cell : (obj["col"] + 1) * cell]
        patch[mask] = vqa.COLOURS[obj["colour"]]
    return image


def _unique(objects: list[dict], attribute: str) -> list[dict]:
    values = [obj[attribute] for obj in objects]
    return [obj for obj in objects if values.count(obj[attribute]) == 1]


def _question(kind: str, objects: list[dict], rng: np.random.Generator):
    """(question, answer, evidence objects) of a kind, or None if this scene cannot ask it."""
    colours, shapes = list(vqa.COLOURS), list(vqa.SHAPES)
    if kind == "colour" and (candidates := _unique(objects, "shape")):
        target = candidates[rng.integers(len(candidates))]
        return f"what colour is the {target['shape']} ?", target["colour"], [target]
    if kind == "shape" and (candidates := _unique(objects, "colour")):
        target = candidates[rng.integers(len(candidates))]
        return f"what shape is the {target['colour']} object ?", target["shape"], [target]
    if kind == "count":
        present = sorted({obj["colour"] for obj in objects})
        colour = present[rng.integers(len(present))] if rng.random() < 0.85 else colours[rng.integers(len(colours))]
        matches = [obj for obj in objects if obj["colour"] == colour]
        return f"how many {colour} objects are there ?", str(len(matches)), matches
    if kind == "presence":
        if rng.random() < 0.5:
            target = objects[rng.integers(len(objects))]
            colour, shape = target["colour"], target["shape"]
        else:
            colour, shape = colours[rng.integers(len(colours))], shapes[rng.integers(len(shapes))]
        exact = [obj for obj in objects if obj["colour"] == colour and obj["shape"] == shape]
        evidence = exact or [obj for obj in objects if obj["colour"] == colour or obj["shape"] == shape]
        return f"is there a {colour} {shape} ?", "yes" if exact else "no", evidence
    if kind == "relation" and len(candidates := _unique(objects, "colour")) >= 2:
        first, second = (candidates[i] for i in rng.choice(len(candidates), 2, replace=False))
        axis, word = ("col", "left") if rng.random() < 0.5 else ("row", "above")
        if first[axis] == second[axis]:
            return None
        answer = "yes" if first[axis] < second[axis] else "no"
        return f"is the {first['colour']} object {word} of the {second['colour']} object ?", answer, [first, second]
    return None


class SyntheticScenesVqa(vqa.GridVQABuilder):
    """Coloured shapes, one per cell, on grids of varying size; five grounded question kinds."""

    def make_example(self, rng: np.random.Generator, rows: int, cols: int, split: str, index: int) -> dict:
        cells = rows * cols
        count = int(rng.integers(2, min(6, cells) + 1))
        objects = [
            {
                "row": int(cell // cols),
                "col": int(cell % cols),
                "colour": list(vqa.COLOURS)[rng.integers(len(vqa.COLOURS))],
                "shape": vqa.SHAPES[rng.integers(len(vqa.SHAPES))],
            }
            for cell in rng.choice(cells, count, replace=False)
        ]
        for kind in rng.permutation(KINDS):
            if (asked := _question(str(kind), objects, rng)) is not None:
                break
        else:  # every scene can ask "count"; unreachable
            raise AssertionError("no question for this scene")
        question, answer, evidence = asked
        return {
            "image": render(rows, cols, objects),
            "question": question,
            "answer": answer,
            "kind": str(kind),
            "evidence": [vqa.cell_box(obj["row"], obj["col"]) for obj in evidence],
        }
