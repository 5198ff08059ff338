"""Peak memory of the relevance computation against sequence length, hooked vs naive:
`python scripts/relevance_memory.py [--lengths 256 512] [--heads 8] [--layers 4]`.

Compiles (never runs) `relevance` for text-only inputs of T tokens with a random decoder of the
given shape and reads XLA's memory analysis: hooked materialises O(layers * T^2), naive
O(layers * heads * T^2). Prints a markdown table; --json writes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax.explain import relevance
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig, prepare_inputs
from tokcomp_jax.models.layout import VisualLayout


def compiled_bytes(model, length: int, answers: int, method: str) -> dict[str, int]:
    config = model.config
    ids = np.random.default_rng(0).integers(0, config.image_token_id, (1, length))
    inputs = prepare_inputs(config, ids)
    answer_positions = jnp.arange(length - answers, length)[None]
    layout = VisualLayout(visual_positions=jnp.arange(length // 2)[None], query_positions=jnp.zeros((1, 1), int))
    graphdef, state = nnx.split(model)

    def explain(state, inputs, answer_positions, layout):
        return relevance(nnx.merge(graphdef, state), inputs, answer_positions, layout, method)

    analysis = jax.jit(explain).lower(state, inputs, answer_positions, layout).compile().memory_analysis()
    return {"temp_bytes": int(analysis.temp_size_in_bytes), "output_bytes": int(analysis.output_size_in_bytes)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--answers", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    tiny = Qwen2VLConfig.tiny()
    text = dataclasses.replace(
        tiny.text, num_attention_heads=args.heads, num_key_value_heads=2, hidden_size=16 * args.heads,
        num_hidden_layers=args.layers,
    )  # fmt: skip
    vision = dataclasses.replace(tiny.vision, out_hidden_size=text.hidden_size)
    model = Qwen2VL(dataclasses.replace(tiny, text=text, vision=vision), rngs=nnx.Rngs(0))
    rows = []
    for length in args.lengths:
        for method in ("gradient", "gradient_naive"):
            rows.append({"T": length, "method": method, **compiled_bytes(model, length, args.answers, method)})
    print(
        f"decoder: {args.layers} layers, {args.heads} heads, {args.answers} answer tokens, float32; XLA {jax.devices()[0].platform}"
    )
    print("| T | method | temp MiB | ratio naive / hooked |\n|---|---|---|---|")
    for hooked, naive in zip(rows[::2], rows[1::2], strict=True):
        for row in (hooked, naive):
            ratio = naive["temp_bytes"] / hooked["temp_bytes"] if row is naive else 1.0
            print(f"| {row['T']} | {row['method']} | {row['temp_bytes'] / 2**20:.1f} | {ratio:.2f} |")
    results = {"heads": args.heads, "layers": args.layers, "answers": args.answers, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
