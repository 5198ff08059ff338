"""Per-device bytes of weights + KV cache of a model on a mesh, before anything loads.

    python scripts/memory_plan.py --preset qwen2_vl:7b --mesh 4x8 --batch 8 --sequence 4096 --device-gib 16
    python scripts/memory_plan.py --model /path/to/converted --mesh 1x8

`--preset FAMILY:VARIANT` names a configs/models/<family>.py preset; `--model` reads a converted or
HF directory's config (no weights). Exits 1 when `--device-gib` is given and the plan does not fit.
The same check runs at the start of `scripts/evaluate.py`.
"""

from __future__ import annotations

import argparse
import importlib
import json

from tokcomp_jax.eval.memory import memory_plan
from tokcomp_jax.models.checkpoint import DTYPES, read_model_config


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
    parser.add_argument("--device-gib", type=float, help="memory per device; exit 1 when the plan does not fit")
    args = parser.parse_args(argv)
    try:
        data, model = (int(n) for n in args.mesh.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--mesh {args.mesh!r}: expected DATAxMODEL, e.g. 4x8") from None
    config = preset_config(args.preset) if args.preset else read_model_config(args.model)[1]
    plan = memory_plan(config, data, model, args.dtype, args.batch, args.sequence)
    limit = args.device_gib * 2**30 if args.device_gib else None
    report = {"weights_bytes": plan.weights, "kv_cache_bytes": plan.kv_cache, "total_bytes": plan.total,
              "summary": plan.report(limit)}  # fmt: skip
    print(json.dumps(report, indent=2))
    if limit is not None and not plan.fits(limit):
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    main()
