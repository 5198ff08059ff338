"""Scoring replies without a model: replies produced anywhere (this project's runs, a PyTorch
pipeline, a published result file) scored by the same rules as the eval runner's.

    result = score_replies(samples, {"q1": "Yes", ...})   # {"score", per-category parts, "samples"}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tokcomp_jax.eval.metrics import benchmark_score, score_reply
from tokcomp_jax.eval.samples import EvalSample


def sample_record(sample: EvalSample) -> dict:
    """A sample as a jsonl line of its own (`scripts/score.py --list_samples`): media as paths."""
    images = [str(s) if not isinstance(s, bytes) else "<embedded in the benchmark file>" for s in sample.images]
    video = None if sample.video is None else {"path": str(sample.video.path), "num_frames": sample.video.num_frames,
                                               "start": sample.video.start, "end": sample.video.end}  # fmt: skip
    return {"sample_id": sample.sample_id, "prompt": sample.prompt, "options": dict(sample.options),
            "answers": list(sample.answers), "metric": sample.metric, "category": sample.category,
            "group": sample.group, "images": images, "video": video}  # fmt: skip


def reply_records(samples: Sequence[EvalSample], replies: Mapping[str, str]) -> list[dict]:
    """Per-sample records (as the eval runner writes them, scores recomputed) for replies by sample
    id; a sample without a reply or a reply for no sample is an error that lists them."""
    known = {sample.sample_id for sample in samples}
    missing = sorted(known - set(replies))
    unknown = sorted(set(replies) - known)
    if missing or unknown:
        parts = [f"{len(missing)} samples have no reply: {missing[:20]}" if missing else "",
                 f"{len(unknown)} replies name no sample: {unknown[:20]}" if unknown else ""]  # fmt: skip
        raise ValueError("; ".join(part for part in parts if part))
    return [
        {"sample_id": s.sample_id, "reply": replies[s.sample_id], "answers": list(s.answers), "category": s.category,
         "group": s.group, "score": score_reply(s.metric, replies[s.sample_id], s.answers, dict(s.options))}
        for s in samples
    ]  # fmt: skip


def score_replies(samples: Sequence[EvalSample], replies: Mapping[str, str]) -> dict:
    """The benchmark's headline `score`, its parts (per category / split / subtask) and the sample count."""
    if not samples:
        raise ValueError("no samples to score")
    records = reply_records(samples, replies)
    return {**benchmark_score(samples[0].metric, records), "samples": len(records)}
