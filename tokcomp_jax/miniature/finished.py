"""A finished miniature run (`scripts/demo.py --out`), read back by the scripts that analyse it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import ml_collections

from tokcomp_jax.miniature.datasets import load_splits
from tokcomp_jax.miniature.train import load_pretrained


@dataclasses.dataclass
class FinishedRun:
    summary: dict  # its retention.json
    config: ml_collections.ConfigDict  # the configs/miniature.py config it was made with
    model: object  # its miniature MLLM
    splits: dict[str, list[dict]]  # its data, by split
    head_weights: tuple[float, ...]  # HAWK's, as the run measured them


def read_summary(run: Path) -> dict:
    """The run's retention.json; SystemExit where `run` is not a finished miniature run."""
    summary_path = run / "retention.json"
    if not summary_path.is_file():
        raise SystemExit(f"--run {run} holds no retention.json: not a finished miniature run")
    try:
        summary = json.loads(summary_path.read_text())
    except ValueError as error:
        raise SystemExit(f"{summary_path} is not JSON ({error}): not a finished miniature run's") from None
    if not isinstance(summary, dict) or "config" not in summary:
        raise SystemExit(f"{summary_path} records no config: not a finished miniature run's retention.json")
    return summary


def run_config(summary: dict) -> ml_collections.ConfigDict:
    """The config a run was made with (its variant and every override), as its retention.json records it."""
    return ml_collections.ConfigDict(summary["config"])


def split_data(run: Path, config: ml_collections.ConfigDict) -> dict[str, list[dict]]:
    """The run's exported data, by split, read with the run's own builder config and seed."""
    return load_splits(config.data.builders, config.data.config, run / "data", seed=config.seed)


def read_finished_run(run: Path) -> FinishedRun:
    """The run in `run`, with the config, MLLM and data it was made with; SystemExit naming what is missing
    where it is not a finished run, or one from before the demo measured HAWK's head weights."""
    summary = read_summary(run)
    if "hawk_head_weights" not in summary:
        raise SystemExit(
            f"{run / 'retention.json'} has no HAWK head weights (a run from before the demo measured them)"
        )
    config = run_config(summary)
    model_path = Path(config.mllm.pretrained) if config.mllm.pretrained else run / "mllm" / "model"
    if not model_path.is_dir():
        raise SystemExit(f"the MLLM run {run} was made with, {model_path}, is not there any more")
    model = load_pretrained(model_path, config.mllm.model)
    return FinishedRun(summary, config, model, split_data(run, config), tuple(summary["hawk_head_weights"]["weights"]))
