"""How much of the evidence each explanation method finds, on the shipped miniature (issue 16).

    python scripts/explanation_recall.py --images 150 --keep 0.25

For the test-split questions of the kinds the model answers (boxed_digit, sum) it explains the
reference answer with every relevance method and reports the share of evidence cells among each
method's top `keep` tokens (recall) and the share of questions whose evidence is kept entirely.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from configs.miniature import get_config
from tokcomp_jax.data.cluttered import generate, named_config
from tokcomp_jax.explain.relevance import METHODS, append_answers, relevance
from tokcomp_jax.miniature.samples import Samples, collate, group_indices
from tokcomp_jax.miniature.shipped import SHIPPED
from tokcomp_jax.miniature.train import load_pretrained
from tokcomp_jax.models.layout import keep_count
from tokcomp_jax.prune.pruner import prepare_pruning

KINDS = ("boxed_digit", "sum")
_relevance = nnx.jit(relevance, static_argnames="method")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=150, help="test images (two questions each)")
    parser.add_argument("--keep", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    jax.config.update("jax_default_matmul_precision", "highest")
    config = get_config("demo")
    model = load_pretrained(SHIPPED, config.mllm.model)
    samples = Samples(model.config, list(generate(named_config("full"), "test", range(args.images))))
    methods = [m for m in METHODS if m != "gradient_naive"]  # equal to "gradient" (tests/explain)
    recall = {method: [] for method in methods}
    for group, indices in group_indices(samples.examples, config.mllm.visual_buckets).items():
        buckets = group.buckets(config.mllm.text_bucket)
        buckets = dataclasses.replace(buckets, text=buckets.text + 1)  # room for the taught answer
        for start in range(0, len(indices), args.batch):
            chunk = samples.process([samples.examples[i] for i in indices[start : start + args.batch]])
            padded = chunk + [chunk[-1]] * (args.batch - len(chunk))
            taught, answers = append_answers(collate(padded), [list(s["reference_ids"]) for s in padded])
            inputs, scoring = prepare_pruning(model.config, taught, buckets)
            counts = np.asarray(scoring.layout.visual_count)
            for method in methods:
                scores = np.asarray(_relevance(model, inputs, jnp.asarray(answers), scoring.layout, method=method))
                for row, sample in enumerate(chunk):
                    if sample["kind"].split("/")[1] not in KINDS:
                        continue
                    top = np.argsort(-scores[row, : counts[row]], kind="stable")[: keep_count(args.keep, counts[row])]
                    recall[method].append(np.isin(np.flatnonzero(sample["evidence"]), top).mean())
    report = {
        method: {"evidence_recall": float(np.mean(r)), "all_evidence_kept": float(np.mean(np.array(r) == 1))}
        for method, r in recall.items()
    }
    print(json.dumps({"questions": len(recall[methods[0]]), "keep": args.keep, "methods": report}, indent=2))


if __name__ == "__main__":
    main()
