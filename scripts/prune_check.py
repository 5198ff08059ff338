"""Pruning equivalence figures on the tiny Qwen2-VL preset (random weights): `python scripts/prune_check.py`.

For each scorer and keep ratio: max |logit| difference between the gather and mask modes over
the kept tokens, and between keep_ratio=1 and the unpruned model; plus the number of compiles
for a batch of images of several sizes in one bucket. Prints a markdown table; --json writes it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax

jax.config.update("jax_default_matmul_precision", "highest")

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from tokcomp_jax.benchmark import random_image_batch  # noqa: E402
from tokcomp_jax.mapper import Mapper, MapperConfig  # noqa: E402
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig  # noqa: E402
from tokcomp_jax.prune import (  # noqa: E402
    SCORERS,
    Buckets,
    PruneConfig,
    prepare_pruning,
    prune_embeddings,
    pruned_forward,
)

BUCKETS = Buckets(text=24, visual=64, queries=8)


def real(values, mask) -> np.ndarray:
    return np.asarray(values)[np.asarray(mask).astype(bool)]


def measure(scorers, keep_ratios) -> dict:
    config = Qwen2VLConfig.tiny()
    model = Qwen2VL(config, rngs=nnx.Rngs(0))
    heads = config.text.num_attention_heads
    mapper = Mapper(MapperConfig(layout="grid", num_heads=heads, channels=(8, 16)), rngs=nnx.Rngs(1))
    batch = random_image_batch(config, [(8, 12), (12, 8), (4, 8)], seed=0)
    counts = (batch["input_ids"] == config.image_token_id).sum(1)
    relevance = [np.random.default_rng(i).random(n).astype(np.float32) for i, n in enumerate(counts)]
    inputs, scoring = prepare_pruning(config, batch, BUCKETS, mapper=mapper, relevance=relevance)
    unpruned = model(inputs).logits
    rows = []
    for scorer in scorers:
        for keep_ratio in keep_ratios:
            out = {
                mode: pruned_forward(model, mapper, inputs, scoring, PruneConfig(scorer, keep_ratio, mode, 1))
                for mode in ("mask", "gather")
            }
            diff = np.abs(
                real(out["gather"].logits, out["gather"].attention_mask)
                - real(out["mask"].logits, out["mask"].attention_mask)
            ).max()
            row = {"scorer": scorer, "keep_ratio": keep_ratio, "gather_vs_mask": float(diff)}
            if keep_ratio == 1.0:
                row["keep1_vs_unpruned"] = float(
                    np.abs(
                        real(out["gather"].logits, out["gather"].attention_mask) - real(unpruned, inputs.attention_mask)
                    ).max()
                )
            rows.append(row)

    traces = []

    @nnx.jit
    def counted_forward(model, inputs, scoring):
        traces.append(1)  # runs once per trace, i.e. per compile
        embeds, positions, mask, _ = prune_embeddings(model, None, inputs, scoring, PruneConfig("attention", 0.5))
        return model.forward_embeddings(embeds, positions, mask).logits

    for seed, grids in enumerate([[(8, 8)], [(4, 12)], [(12, 16)], [(6, 10)]]):
        counted_forward(model, *prepare_pruning(config, random_image_batch(config, grids, seed), BUCKETS))
    return {"rows": rows, "compiles_for_4_image_sizes_in_one_bucket": len(traces), "buckets": BUCKETS.__dict__}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    # PyramidDrop needs 4 layers; the tiny model has 2
    parser.add_argument("--scorers", nargs="+", default=[s for s in SCORERS if s != "pdrop"])
    parser.add_argument("--keep", nargs="+", type=float, default=[1.0, 0.5, 0.25, 0.111])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = measure(args.scorers, args.keep)
    print("| scorer | keep | max abs diff gather vs mask | keep=1 vs unpruned |\n|---|---|---|---|")
    for row in results["rows"]:
        print(
            f"| {row['scorer']} | {row['keep_ratio']} | {row['gather_vs_mask']:.2e} | {row.get('keep1_vs_unpruned', float('nan')):.2e} |"
        )
    print(f"compiles for 4 image sizes in one bucket: {results['compiles_for_4_image_sizes_in_one_bucket']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
