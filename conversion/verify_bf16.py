"""bfloat16 parity of every family: the port in bf16 against transformers (or VILA1.5's reference)
in bf16, and each side's own bf16 rounding against the float32 reference.

    python -m conversion.verify_bf16            # a markdown table over the five families' tiny checkpoints

Three max abs differences of logits and first-layer attention per family, on the media
conversion.references generates:
- `bf16_vs_bf16`: both sides in bfloat16 (what `conversion.convert --verify --dtype bfloat16` checks);
- `ours_vs_f32`: the port in bfloat16 against the float32 reference (the port's rounding);
- `reference_vs_f32`: the reference in bfloat16 against the port in float32, which equals the float32
  reference within 1e-6 (the reference's own rounding, the yardstick for the line above).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava_onevision", "vila")


def bf16_parity(family: str, directory: str | os.PathLike) -> dict[str, dict[str, float]]:
    """The three comparisons of a new tiny checkpoint of `family` written to `directory`."""
    import jax

    from conversion.references import reference_diffs
    from conversion.tiny import save_tiny_checkpoint
    from tokcomp_jax import load

    jax.config.update("jax_default_matmul_precision", "highest")
    directory = Path(directory)
    save_tiny_checkpoint(family, directory)
    bf16, f32 = load(directory, dtype="bfloat16"), load(directory, dtype="float32")
    return {
        "bf16_vs_bf16": reference_diffs(bf16, directory, "bfloat16"),
        "ours_vs_f32": reference_diffs(bf16, directory, "float32"),
        "reference_vs_f32": reference_diffs(f32, directory, "bfloat16"),
    }


def markdown(results: dict[str, dict[str, dict[str, float]]]) -> str:
    comparisons = ("bf16_vs_bf16", "ours_vs_f32", "reference_vs_f32")
    lines = [
        "| family | max abs logit | " + " | ".join(f"{c} logits | {c} attention" for c in comparisons) + " |",
        "|---" * (2 + 2 * len(comparisons)) + "|",
    ]
    for family, result in results.items():
        cells = [family, f"{result['ours_vs_f32']['logits_max_abs']:.2f}"]
        for comparison in comparisons:
            cells += [f"{result[comparison][key]:.1e}" for key in ("logits_max_abs_diff", "attn1_max_abs_diff")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        results = {family: bf16_parity(family, Path(scratch) / family) for family in FAMILIES}
    print(markdown(results), end="")


if __name__ == "__main__":
    main()
