"""The trained miniature MLLM the repository ships, and the manifest that says how it was made.

The full run (`scripts/demo.py --config configs/miniature.py:full`) writes `OUT/mllm/model/` with
a `manifest.json` beside the weights: the command, commit, machine, configs, seed, steps, the
learning curve's last held-out accuracies, and the accuracy on a fixed held-out slice that any
machine can recompute without building the datasets (`slice_accuracy`). `make demo` starts from
the copy in `assets/miniature-mllm/`, so that it shows the method on a competent model in
minutes; `--config.mllm.pretrained=""` retrains from scratch instead.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np
from flax import nnx

from tokcomp_jax.data.cluttered import generate, named_config
from tokcomp_jax.miniature.samples import Samples
from tokcomp_jax.miniature.train import accuracy

SHIPPED = Path(__file__).parents[2] / "assets" / "miniature-mllm"
MANIFEST = "manifest.json"
SLICE = ("validation", 100)  # the first 100 validation images, two questions each


def slice_examples(data_config: str) -> list[dict]:
    split, images = SLICE
    return list(generate(named_config(data_config), split, range(images)))


def slice_accuracy(model, config: ml_collections.ConfigDict, data_config: str) -> dict[str, float]:
    """Accuracy (overall and per kind) on SLICE of the named dataset config, generated on the fly."""
    mllm = config.mllm
    samples = Samples(model.config, slice_examples(data_config))
    return accuracy(model, samples, mllm.text_bucket, mllm.visual_buckets, mllm.eval_batch_size)


def _commit() -> str:
    """HEAD, marked when the work tree differs from it."""
    try:
        git = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout  # noqa: E731
        return git("rev-parse", "HEAD").strip() + (
            " (uncommitted changes)" if git("status", "--porcelain").strip() else ""
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_manifest(model_dir: Path, model, config: ml_collections.ConfigDict, curve: list[dict]) -> dict:
    """manifest.json beside a freshly trained miniature (after its learning curve `curve`)."""
    last = next(record for record in reversed(curve) if any(key.endswith("/accuracy") for key in record))
    manifest = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": _commit(),
        "machine": f"{platform.machine()}, {platform.processor() or 'unknown cpu'}, jax {jax.__version__}",
        "data": {"builders": list(config.data.builders), "config": config.data.config},
        "mllm": config.mllm.to_dict(),
        "seed": config.mllm.seed,
        "steps": config.mllm.num_steps,
        "parameters": int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))),
        "held_out_accuracy": {key: value for key, value in last.items() if "/" in key},
        "slice": {"split": SLICE[0], "images": SLICE[1], "accuracy": slice_accuracy(model, config, config.data.config)},
    }
    (Path(model_dir) / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(model_dir: str | Path) -> dict:
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: a shipped miniature needs the manifest of the run that made it")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
