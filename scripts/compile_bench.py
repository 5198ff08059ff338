"""Compile time and XLA memory of the LLM prefill and decode at real sizes, scanned vs unrolled layers.

    python scripts/compile_bench.py --presets 2b 7b --tokens 1024 --json outputs/compile.json

Weights are abstract (`nnx.eval_shape`): nothing is materialised, only lowered and compiled. For
each preset at its full depth and at 2 layers: `jit(prefill).lower(...).compile()` seconds for a
prefill of `--tokens` into a KV cache, the same for the greedy decode loop, and the compiled
prefill's memory analysis (arguments, outputs, temporaries) — with the decoder's layers scanned
and unrolled (LayerStack.configure).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from configs.models.qwen2_vl import PRESETS
from tokcomp_jax.generate import decode, prefill
from tokcomp_jax.models.qwen2_vl.modeling import Qwen2VL

MAX_NEW_TOKENS = 16


def abstract_model(config, dtype) -> nnx.Module:
    return nnx.eval_shape(lambda: Qwen2VL(config, dtype=dtype, rngs=nnx.Rngs(0)))


def compile_case(config, tokens: int, scan: bool, dtype=jnp.bfloat16) -> dict:
    model = abstract_model(config, dtype)
    model.language_model.layers.configure(scan=scan)
    graphdef, state = nnx.split(model)

    def run_prefill(state, embeds, position_ids, attention_mask):
        return prefill(nnx.merge(graphdef, state), embeds, position_ids, attention_mask, max_new_tokens=MAX_NEW_TOKENS)

    def run_decode(state, prefilled):
        return decode(nnx.merge(graphdef, state), prefilled, max_new_tokens=MAX_NEW_TOKENS, eos_token_id=-1)

    embeds = jax.ShapeDtypeStruct((1, tokens, config.text.hidden_size), dtype)
    positions = jax.ShapeDtypeStruct((3, 1, tokens), jnp.int32)
    mask = jax.ShapeDtypeStruct((1, tokens), jnp.int32)
    start = time.perf_counter()
    compiled = jax.jit(run_prefill).lower(state, embeds, positions, mask).compile()
    prefill_s = time.perf_counter() - start
    prefilled = jax.eval_shape(run_prefill, state, embeds, positions, mask)
    start = time.perf_counter()
    jax.jit(run_decode).lower(state, prefilled).compile()
    decode_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    mib = lambda name: round(getattr(memory, name, 0) / 2**20, 1) if memory is not None else None  # noqa: E731
    return {
        "layers": config.text.num_hidden_layers,
        "scan": scan,
        "prefill_compile_s": round(prefill_s, 2),
        "decode_compile_s": round(decode_s, 2),
        "argument_mib": mib("argument_size_in_bytes"),
        "output_mib": mib("output_size_in_bytes"),
        "temp_mib": mib("temp_size_in_bytes"),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["2b", "7b"], choices=sorted(PRESETS))
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for name in args.presets:
        full = PRESETS[name]()
        shallow = dataclasses.replace(full, text=dataclasses.replace(full.text, num_hidden_layers=2))
        for config in (full, shallow):
            for scan in (True, False):
                rows.append({"preset": name, **compile_case(config, args.tokens, scan)})
                print(json.dumps(rows[-1]), flush=True)
    report = {
        "machine": f"{platform.machine()}, {jax.devices()[0].device_kind}, jax {jax.__version__}",
        "tokens": args.tokens,
        "dtype": "bfloat16",
        "rows": rows,
    }
    print(
        "| preset | layers | layers run | prefill compile (s) | decode compile (s) | prefill temp (MiB) | arguments (MiB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['preset']} | {row['layers']} | {'scanned' if row['scan'] else 'unrolled'} | "
            f"{row['prefill_compile_s']} | {row['decode_compile_s']} | {row['temp_mib']} | {row['argument_mib']} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
