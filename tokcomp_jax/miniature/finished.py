"""A finished miniature run (`scripts/demo.py --out`), read back by the scripts that analyse it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tokcomp_jax.miniature.datasets import load_splits
from tokcomp_jax.miniature.train import load_pretrained


@dataclasses.dataclass
class FinishedRun:
    summary: dict  # its retention.json
    model: object  # its miniature MLLM
    splits: dict[str, list[dict]]  # its data, by split
    head_weights: tuple[float, ...]  # HAWK's, as the run measured them


def read_finished_run(run: Path, config) -> FinishedRun:
    """The run in `run`, made with `config` (a configs/miniature.py variant); SystemExit naming what is
    missing where it is not a finished run, or one from before the demo measured HAWK's head weights."""
    summary_path = run / "retention.json"
    if not summary_path.is_file():
        raise SystemExit(f"--run {run} holds no retention.json: not a finished miniature run")
    summary = json.loads(summary_path.read_text())
    if "hawk_head_weights" not in summary:
        raise SystemExit(f"{summary_path} has no HAWK head weights (a run from before the demo measured them)")
    model = load_pretrained(config.mllm.pretrained or run / "mllm" / "model", config.mllm.model)
    splits = load_splits(config.data.builders, config.data.config, run / "data", seed=config.seed)
    return FinishedRun(summary, model, splits, tuple(summary["hawk_head_weights"]["weights"]))
