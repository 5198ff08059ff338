"""One evaluation sample, whatever benchmark it comes from, and how its prompt and images are made.

Adapters (tokcomp_jax.eval.adapters) turn a benchmark's published files into EvalSamples; images
stay on disk (a path) or in the file (bytes) until a batch needs them.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
from PIL import Image

METRICS = ("vqa", "exact", "choice", "yes_no", "mme")

SHORT_ANSWER = "Answer the question using a single word or phrase."
LETTER_ANSWER = "Answer with the option's letter from the given choices directly."

ImageSource = Path | bytes


@dataclasses.dataclass(frozen=True)
class EvalSample:
    benchmark: str
    sample_id: str
    prompt: str  # the full user turn: question, hint, options and the answer-format instruction
    answers: tuple[str, ...]  # references: human answers (vqa), the answer (exact, yes_no, mme), a letter (choice)
    metric: str  # one of METRICS: how a reply is scored
    images: tuple[ImageSource, ...] = ()
    options: tuple[tuple[str, str], ...] = ()  # (letter, text) for multiple choice
    category: str = ""  # reported per category (MMBench, SEED, MME, POPE split ...)
    group: str = ""  # MME: the image whose two questions make accuracy+

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"{self.benchmark} sample {self.sample_id}: unknown metric {self.metric!r}")
        if not self.prompt.strip():
            raise ValueError(f"{self.benchmark} sample {self.sample_id}: empty prompt")
        if not self.answers:
            raise ValueError(f"{self.benchmark} sample {self.sample_id}: no reference answer")


def choice_prompt(question: str, options: list[tuple[str, str]], hint: str = "") -> str:
    """LLaVA's multiple-choice prompt: hint, question, one "X. option" line each, the letter instruction."""
    lines = ([hint.strip()] if hint and hint.strip() else []) + [question.strip()]
    lines += [f"{letter}. {text}" for letter, text in options]
    return "\n".join(lines + [LETTER_ANSWER])


def load_image(source: ImageSource) -> np.ndarray:
    """RGB uint8 [H, W, 3] from a path or encoded bytes; a clear error names what cannot be read."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as err:
        where = "embedded image bytes" if isinstance(source, bytes) else str(source)
        raise ValueError(f"cannot read image {where}: {err}") from None
