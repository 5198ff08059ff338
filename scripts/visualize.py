"""Relevance heat map and kept tokens over an image: `python scripts/visualize.py --config configs/label/tiny.py`.

Labels one sample of the labelling config's source (its greedy answer, teacher-forced relevance)
and writes a PNG of three panels: the image, the relevance heat map, and the tokens a top-k by
relevance keeps at --keep (pruned tokens greyed out).

Flags use underscores; a mistake is one `error:` line and exit status 2 (--debug: the traceback).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from flax import nnx

import tokcomp_jax
from tokcomp_jax import cli
from tokcomp_jax.data.scenes import scene_samples
from tokcomp_jax.explain.label_writer import LabelSettings, label_batch
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig
from tokcomp_jax.models.layout import Buckets, keep_count
from tokcomp_jax.visualize import heatmap_overlay, kept_overlay, save_panels


def load_config(path: str):
    """get_config() of an ml_collections config file."""
    spec = importlib.util.spec_from_file_location("label_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def main(argv=None) -> dict:
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--config", default="configs/label/tiny.py", help="labelling config (its model and scenes)")
    parser.add_argument("--sample", type=int, default=2, help="which scene of the config's source to label")
    parser.add_argument("--keep", type=cli.ratio, default=0.25, help="fraction of visual tokens kept by relevance")
    parser.add_argument("--out", type=Path, default=Path("outputs/relevance.png"), help="the PNG to write")
    args = parser.parse_args(argv)
    if problem := cli.keep_ratio_problem(args.keep):
        raise SystemExit(f"--keep {args.keep}: {problem}")
    if not Path(args.config).is_file():
        raise SystemExit(f"--config {args.config} does not exist; give a labelling config (e.g. configs/label/tiny.py)")
    config = load_config(args.config)
    model = (
        tokcomp_jax.load(config.model)
        if config.model
        else Qwen2VL(Qwen2VLConfig.tiny(), rngs=nnx.Rngs(config.model_seed))
    )
    sample = scene_samples(model.config, args.sample + 1, [tuple(s) for s in config.sizes], seed=config.seed)[-1]
    settings = LabelSettings(
        buckets=Buckets(**config.buckets),
        batch_size=1,
        method=config.method,
        max_new_tokens=config.max_new_tokens,
        eos_token_id=config.eos_token_id,
    )
    example = label_batch(model, [sample], settings)[0]
    ((_, rows, cols),) = example["token_grid_thw"]
    scores = example["relevance"]
    kept = np.zeros(scores.size, bool)
    kept[np.argsort(-scores, kind="stable")[: keep_count(args.keep, scores.size)]] = True
    image = sample["image"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_panels(
        [image, heatmap_overlay(image, scores, (rows, cols)), kept_overlay(image, kept, (rows, cols))], args.out
    )
    report = {
        "sample_id": sample["sample_id"],
        "tokens": int(scores.size),
        "kept": int(kept.sum()),
        "png": str(args.out),
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    cli.run_main(main)
