"""Per-device bytes of weights + KV cache + attention working set of a model on a mesh, before
anything loads.

    python scripts/memory_plan.py --preset qwen2_vl:7b --mesh 4x8 --batch 8 --sequence 4096 --device-gib 16
    python scripts/memory_plan.py --preset qwen2_vl:7b --mesh 1x2 --batch 1 --sequence 4176 --patches 16384 \
        --attention splash --device-gib 16
    python scripts/memory_plan.py --model /path/to/converted --mesh 1x8

`--preset FAMILY:VARIANT` names a configs/models/<family>.py preset; `--model` reads a converted or
HF directory's config (no weights). The attention working set is that of the largest attention call
(an LLM prefill of `--sequence` tokens, the first layer's probabilities a pruning method reads, a
vision block of `--patches` patches) under `--attention`'s kernel; a table gives it under every kernel. Exits 1 when
`--device-gib` is given and the plan does not fit. The same check runs at the start of
`scripts/evaluate.py`, with the kernel its `--attention` gives.

With `--keep`, also the measured memory of one sample's LLM prefill at each keep ratio: XLA's
memory analysis of the compiled prefill (abstract weights, layers scanned) of `--text` tokens plus
the kept share of `--visual` visual tokens, into a cache with `--new-tokens` more slots:

    python scripts/memory_plan.py --preset qwen2_vl:7b --keep 1,0.5,0.25,0.111 --visual 4096 --text 64
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json

import jax

from tokcomp_jax.eval.memory import KERNELS, memory_plan, prefill_memory
from tokcomp_jax.models.checkpoint import DTYPES, read_model_config
from tokcomp_jax.models.layout import keep_count


def preset_config(name: str):
    family, _, variant = name.partition(":")
    try:
        presets = importlib.import_module(f"configs.models.{family}").PRESETS
    except ModuleNotFoundError:
        raise SystemExit(f"--preset {name}: no configs/models/{family}.py") from None
    if variant not in presets:
        raise SystemExit(f"--preset {name}: {family} has the variants {sorted(presets)}")
    return presets[variant]()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="FAMILY:VARIANT, e.g. qwen2_vl:7b")
    source.add_argument("--model", help="orbax or HF model directory")
    parser.add_argument("--mesh", default="1x1", help="DATAxMODEL devices, e.g. 4x8")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--sequence", type=int, default=4096, help="KV cache slots per row (prompt + new tokens)")
    parser.add_argument("--patches", type=int, default=0, help="patches per image a vision block attends (0: none)")
    parser.add_argument("--attention", choices=KERNELS, default="xla", help="the attention kernel the plan counts")
    parser.add_argument("--reads-first-layer", action=argparse.BooleanOptionalAction, default=True,
                        help="a pruning method reads the first LLM layer's probabilities (--no-...: unpruned runs)")  # fmt: skip
    parser.add_argument("--device-gib", type=float, help="memory per device; exit 1 when the plan does not fit")
    parser.add_argument("--keep", help="comma-separated keep ratios: measure one sample's prefill at each")
    parser.add_argument("--visual", type=int, default=4096, help="with --keep: visual tokens before pruning")
    parser.add_argument("--text", type=int, default=64, help="with --keep: text tokens (never pruned)")
    parser.add_argument("--new-tokens", type=int, default=16, help="with --keep: cache slots for generated tokens")
    args = parser.parse_args(argv)
    try:
        data, model = (int(n) for n in args.mesh.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--mesh {args.mesh!r}: expected DATAxMODEL, e.g. 4x8") from None
    config = preset_config(args.preset) if args.preset else read_model_config(args.model)[1]
    plan = memory_plan(config, data, model, args.dtype, args.batch, args.sequence, args.attention, args.patches,
                       args.reads_first_layer)  # fmt: skip
    limit = args.device_gib * 2**30 if args.device_gib else None
    report = {"weights_bytes": plan.weights, "kv_cache_bytes": plan.kv_cache, "attention_kernel": plan.kernel,
              "attention_bytes": plan.attention, "total_bytes": plan.total, "summary": plan.report(limit)}  # fmt: skip
    if args.keep:
        report["prefill_per_sample"] = measured_prefills(config, args)
    print(json.dumps(report, indent=2))
    print(kernel_table(args.preset or args.model, args, plan, limit))
    if args.keep:
        print(prefill_table(args.preset or args.model, args, report["prefill_per_sample"]))
    if limit is not None and not plan.fits(limit):
        raise SystemExit(1)
    return report


def measured_prefills(config, args) -> list[dict]:
    """One row per keep ratio: XLA's memory of one sample's prefill at the kept length (tokcomp_jax.eval.memory)."""
    try:
        ratios = [float(ratio) for ratio in args.keep.split(",")]
    except ValueError:
        raise SystemExit(f"--keep {args.keep!r}: expected comma-separated ratios, e.g. 1,0.5,0.25") from None
    try:  # the pruner's own kept count (and its check of the ratio), before anything compiles
        lengths = {ratio: args.text + keep_count(ratio, args.visual) for ratio in ratios}
    except ValueError as error:
        raise SystemExit(f"--keep {args.keep!r}: {error}") from None
    return [
        {"keep_ratio": ratio, **dataclasses.asdict(prefill_memory(config, args.dtype, tokens, args.new_tokens))}
        for ratio, tokens in lengths.items()
    ]


def kernel_table(name: str, args, plan, limit: float | None) -> str:
    """The plan under every attention kernel, as markdown in GiB."""
    gib = lambda size: f"{size / 2**30:.2f}"  # noqa: E731
    lines = [
        f"{name}, {args.dtype}, mesh {args.mesh} (data x model), batch {args.batch}, {args.sequence} tokens, "
        f"vision blocks of {args.patches} patches: per device",
        "",
        "| attention kernel | weights GiB | KV cache GiB | attention GiB | total GiB |" + (" fits |" if limit else ""),
        "|---|---|---|---|---|" + ("---|" if limit else ""),
    ]
    for kernel, size in plan.attention.items():
        total = plan.total_under(kernel)
        fits = f" {'yes' if total <= limit else 'no'} |" if limit else ""
        lines.append(f"| {kernel} | {gib(plan.weights)} | {gib(plan.kv_cache)} | {gib(size)} | {gib(total)} |{fits}")
    return "\n".join(lines)


def prefill_table(name: str, args, rows: list[dict]) -> str:
    """The rows as markdown, in MiB."""
    mib = lambda size: f"{size / 2**20:.1f}"  # noqa: E731
    lines = [
        f"{name}, {args.dtype}, one sample: {args.text} text + kept share of {args.visual} visual tokens,"
        f" {args.new_tokens} new-token slots (XLA memory analysis, {jax.devices()[0].platform})",
        "",
        "| keep | tokens | weights MiB | KV cache MiB | weights + KV MiB | XLA arguments | XLA outputs | XLA temporaries |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['keep_ratio']} | {row['tokens']} | {mib(row['weights'])} | {mib(row['kv_cache'])} | "
            f"{mib(row['weights'] + row['kv_cache'])} | {mib(row['arguments'])} | {mib(row['outputs'])} | "
            f"{mib(row['temporaries'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
