"""Read and validate benchmarks before any model loads: files present, records parse, sample ids
unique, media readable. Every problem of every benchmark is collected and reported at once.

    samples, problems = read_suite([(name, adapter, data_dir), ...])
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from tokcomp_jax.eval.adapters import read_benchmark
from tokcomp_jax.eval.samples import EvalSample, ImageSource

MAX_LISTED = 10  # problems of one kind listed per benchmark before "and N more"


def _image_problem(source: ImageSource) -> str | None:
    """None if the image opens (header and data checked, not decoded into pixels); a PIL image is open."""
    if isinstance(source, Image.Image):
        return None
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.verify()
    except (OSError, ValueError, SyntaxError) as err:
        where = "embedded image bytes" if isinstance(source, bytes) else str(source)
        return f"cannot read image {where}: {err}"
    return None


def _listed(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_LISTED:
        return problems
    return problems[:MAX_LISTED] + [f"... and {len(problems) - MAX_LISTED} more like these"]


def check_samples(name: str, samples: Sequence[EvalSample]) -> list[str]:
    """Problems of one benchmark's samples: duplicate sample ids, unreadable images, missing videos."""
    problems = [f"{name}: sample id {sample_id!r} appears {count} times"
                for sample_id, count in Counter(s.sample_id for s in samples).items() if count > 1]  # fmt: skip
    media = []
    for sample in samples:
        for source in sample.images:
            if (problem := _image_problem(source)) is not None:
                media.append(f"{name} {sample.sample_id}: {problem}")
        if sample.video is not None:
            path = Path(sample.video.path)
            if not (path.is_file() or (path.is_dir() and any(path.iterdir()))):
                media.append(f"{name} {sample.sample_id}: video {path} is missing or an empty directory")
    return _listed(problems) + _listed(media)


def read_suite(benchmarks: Sequence[tuple[str, str, str | Path]]) -> tuple[dict[str, list[EvalSample]], list[str]]:
    """(samples per benchmark name, every problem found) for (name, adapter, data_dir) triples."""
    samples, problems = {}, []
    for name, adapter, data_dir in benchmarks:
        try:
            samples[name] = read_benchmark(adapter, data_dir)
        except ValueError as err:
            problems.append(f"{name}: {err}")
            continue
        problems += check_samples(name, samples[name])
    return samples, problems
