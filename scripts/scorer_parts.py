"""Which part of a first-layer attention scorer finds the evidence, on the miniature (issue 41's diagnosis).

    python scripts/scorer_parts.py --run outputs/miniature-demo [--split test] [--out parts.md]

Reads a finished `make demo` / scripts/demo.py run (its data, its MLLM and HAWK's head weights in
retention.json) and, per split, the recall of the ground-truth evidence cells among each sample's top
ceil(keep * n) tokens for scorers that differ from the `attention` scorer (layer-0 softmax attention
with the rotary embedding, mean over heads and instruction tokens) in one part at a time: the
rotary embedding, softmax against raw logits with HAWK's per-head L2, the head weighting, each head
alone, and the average over instruction tokens (the last one alone, or the maximum over them). Recall, not accuracy: no pruned forward runs, so a split takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax import cli
from tokcomp_jax.miniature.finished import read_finished_run
from tokcomp_jax.miniature.samples import Samples, collate, group_indices
from tokcomp_jax.models.common.decoder import unpack_deepstack
from tokcomp_jax.prune import prepare_pruning
from tokcomp_jax.prune.features import attention_to_visual
from tokcomp_jax.prune.hawk import l2_per_head, logits_to_visual, weighted_heads
from tokcomp_jax.prune.select import per_sample_keep

KEEP_RATIOS = (0.5, 0.25, 0.111)


@nnx.jit
def per_head_parts(model, inputs, layout) -> dict[str, jax.Array]:
    """Layer 0's per-head maps [B, Hd, N]: softmax probabilities with and without RoPE (with RoPE also from the
    last instruction token alone, and the maximum over instruction tokens), raw logits with and without RoPE."""
    embeds = model.embed(inputs)
    tables = model.rope(inputs.position_ids, embeds.dtype)
    identity = (jnp.ones_like(tables[0]), jnp.zeros_like(tables[1]))
    tokens, _ = unpack_deepstack(embeds, model.language_model.layers.hidden_size)
    layer = model.language_model.layers[0]
    queries = layout.query_positions
    softmax = {
        rope: attention_to_visual(layer, tokens, *t, inputs.attention_mask, queries, layout)
        for rope, t in (("rope", tables), ("no_rope", identity))
    }
    one_query = [  # each instruction token alone (zero where a sample has fewer)
        attention_to_visual(layer, tokens, *tables, inputs.attention_mask, queries[:, q : q + 1], layout)
        for q in range(queries.shape[1])
    ]
    return {
        "softmax_rope": softmax["rope"],
        "softmax_no_rope": softmax["no_rope"],
        "softmax_rope_last_query": attention_to_visual(
            layer, tokens, *tables, inputs.attention_mask, queries.max(1, keepdims=True), layout
        ),
        "softmax_rope_max_query": jnp.stack(one_query).max(0),
        "logits_rope": logits_to_visual(model, embeds, layout, tables),
        "logits_no_rope": logits_to_visual(model, embeds, layout),
    }


def variants(parts: dict[str, jax.Array], head_weights) -> dict[str, jax.Array]:
    """Scores [B, N] of each variant, the `attention` scorer first."""
    heads = parts["softmax_rope"].shape[1]
    scores = {
        "attention (softmax, RoPE, mean over heads)": parts["softmax_rope"].mean(1),
        "softmax, no RoPE, mean over heads": parts["softmax_no_rope"].mean(1),
        "softmax, RoPE, HAWK's head weights": weighted_heads(parts["softmax_rope"], head_weights),
        "softmax, RoPE, mean over heads, last instruction token only": parts["softmax_rope_last_query"].mean(1),
        "softmax, RoPE, mean over heads, max over instruction tokens": parts["softmax_rope_max_query"].mean(1),
        "raw logits, RoPE, per-head L2, equal heads": weighted_heads(l2_per_head(parts["logits_rope"])),
        "raw logits, no RoPE, per-head L2, equal heads": weighted_heads(l2_per_head(parts["logits_no_rope"])),
        "hawk (raw logits, no RoPE, per-head L2, HAWK's head weights)": weighted_heads(
            l2_per_head(parts["logits_no_rope"]), head_weights
        ),
    }
    scores |= {f"softmax, RoPE, head {h} alone": parts["softmax_rope"][:, h] for h in range(heads)}
    return scores


def evidence_recall(scores: np.ndarray, evidence: list[np.ndarray], keep_ratio: float) -> list[float]:
    """Per sample with evidence: the share of its evidence tokens among its top ceil(keep * n) scores."""
    recalls = []
    for row, cells in enumerate(evidence):
        count = cells.size
        if not cells.any():
            continue
        keep = int(per_sample_keep(keep_ratio, np.asarray(count)))
        top = np.argsort(-scores[row, :count], kind="stable")[:keep]
        recalls.append(float(cells[top].sum() / cells.sum()))
    return recalls


def split_recalls(model, examples, config, head_weights) -> dict[str, dict[float, float]]:
    """Mean evidence recall (%) of every variant at every keep ratio over a split."""
    samples = Samples(model.config, examples)
    totals: dict[str, dict[float, list[float]]] = {}
    batch_size = config.eval.batch_size
    for group, indices in group_indices(samples.examples, tuple(config.mllm.visual_buckets)).items():
        buckets = group.buckets(config.mllm.text_bucket)
        for start in range(0, len(indices), batch_size):
            chunk = samples.process([samples.examples[i] for i in indices[start : start + batch_size]])
            padded = chunk + [chunk[-1]] * (batch_size - len(chunk))
            inputs, scoring = prepare_pruning(model.config, collate(padded), buckets)
            parts = per_head_parts(model, inputs, scoring.layout)
            for name, scores in variants(parts, head_weights).items():
                scores = np.asarray(scores)[: len(chunk)]
                for keep in KEEP_RATIOS:
                    recalls = evidence_recall(scores, [s["evidence"] for s in chunk], keep)
                    totals.setdefault(name, {}).setdefault(keep, []).extend(recalls)
    return {name: {keep: 100 * float(np.mean(r)) for keep, r in by_keep.items()} for name, by_keep in totals.items()}


def markdown(results: dict[str, dict[str, dict[float, float]]], counts: dict[str, int]) -> str:
    lines = []
    for split, table in results.items():
        lines += [f"### {split} ({counts[split]} samples): evidence recall %", "",
                  "| scorer | " + " | ".join(f"keep {k}" for k in KEEP_RATIOS) + " |", "|---" * 4 + "|"]  # fmt: skip
        lines += [
            f"| {name} | " + " | ".join(f"{row[k]:.1f}" for k in KEEP_RATIOS) + " |" for name, row in table.items()
        ]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> str:
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--run", type=Path, required=True, help="a finished miniature run (scripts/demo.py --out)")
    parser.add_argument("--split", action="append", help="repeat for several (default: every test split)")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    run = read_finished_run(args.run)
    config, model, splits = run.config, run.model, run.splits
    names = args.split or [name for name in run.summary["results"] if name in splits]
    results = {name: split_recalls(model, splits[name], config, run.head_weights) for name in names}
    return cli.print_table(markdown(results, {name: len(splits[name]) for name in names}), args.out)


if __name__ == "__main__":
    cli.run_main(main)
