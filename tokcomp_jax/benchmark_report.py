"""`make bench`'s report: bench.json (scripts/bench.py) rendered as the markdown of bench.md."""

from __future__ import annotations


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"Machine: {env['cpu']}, {env['cpu_count']} cores; {env['device']}; {env['dtype']}, attention {env['attention']}, "
        f"bf16 peak {env['peak_tflops']} TFLOP/s; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        "",
        f"Attention checks against the reference (random operands, {env['dtype']}; the run's attention: "
        f"{env['attention']}):",
        "",
        *(
            f"- {site}, {check['tokens']} positions: {check['kernel']}, "
            + (f"failed: {check['error']}" if "error" in check else f"max abs diff {check['max_abs_diff']:.1e}")
            for site, check in report["attention_checks"].items()
        ),
        "",
    ]
    for result in report["results"]:
        lines += [
            f"### {result['case']} ({result['visual_tokens']} visual tokens; buckets {result['buckets']})",
            "",
            "Attention where no probabilities are read: "
            + ", ".join(f"{where} {kernel}" for where, kernel in result["attention_kernels"].items()),
            "",
            "| step | tokens | median ms | speedup | FLOPs-ideal | % of ideal | analytic GFLOP | XLA GFLOP | MFU % |"
            " compile s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in result["rows"]:
            cells = [row["step"], row.get("tokens", ""), f"{row['median_ms']:.1f}"]
            cells += [
                _fmt(row.get("speedup"), ".2f"),
                _fmt(row.get("ideal"), ".2f"),
                _fmt(row.get("pct_of_ideal"), ".0f"),
            ]
            cells += [
                _fmt(row["analytic_gflops"], ".2f"),
                _fmt(row["xla_gflops"], ".2f"),
                _fmt(row.get("mfu_pct"), ".1f"),
            ]
            cells.append(f"{row['compile_s']:.1f}")
            if "pct_of_unpruned" in row:
                cells[3] = f"{row['pct_of_unpruned']:.2f}% of unpruned"
            lines.append("| " + " | ".join(map(str, cells)) + " |")
        lines += ["", "| KV cache | KV MiB | decode tokens/s |", "|---|---|---|"]
        lines += [f"| {d['cache']} | {d['kv_mib']:.1f} | {d['tokens_per_s']:.1f} |" for d in result["decode"]]
        if "parts" in result["torch"]:
            lines += [
                "",
                "| part | JAX ms | transformers ms | transformers / JAX | per round, min-max |",
                "|---|---|---|---|---|",
            ]
            for row in result["torch"]["parts"]:
                low, high = row["torch_over_jax_rounds"]
                lines.append(
                    f"| {row['part']} | {row['jax_ms']:.1f} | {row['torch_ms']:.1f} | {row['torch_over_jax']:.2f} "
                    f"| {low:.2f}-{high:.2f} |"
                )
        if "last_logit_max_abs_diff" in result["torch"]:
            diff = result["torch"]["last_logit_max_abs_diff"]
            lines += ["", f"Same weights and inputs: the last-token logits differ by at most {diff:.1e}."]
        lines.append("")
    lines += throughput_markdown(report["config"], report["throughput"])
    targets = report["targets"]
    lines += [f"### Targets ({targets['case']})", "", "| target | measured | holds |", "|---|---|---|"]
    lines.append(
        f"| scoring <= 3% of unpruned prefill | {targets['scoring_pct_of_unpruned']:.2f}% | {targets['scoring_ok']} |"
    )
    for keep, share in targets["pct_of_ideal"].items():
        holds = share["measured"] >= share["min"]
        lines.append(
            f"| keep {keep} >= {share['min']:.0f}% of FLOPs-ideal speedup | {share['measured']:.0f}% | {holds} |"
        )
    if "whole_forward_torch_over_jax" in targets:
        lines.append(
            f"| JAX whole forward >= 1.0x transformers | {targets['whole_forward_torch_over_jax']:.2f}x "
            f"| {targets['whole_forward_ok']} |"
        )
    lines.append(
        f"| compiles = buckets {targets['expected_compiles']} | {targets['compiles']} | {targets['compiles_ok']} |"
    )
    return "\n".join(lines) + "\n"


def throughput_markdown(config: dict, rows: list[dict]) -> list[str]:
    spec = config["throughput"]
    names = list(rows[0]["samples_per_s"])
    lines = [
        f"### Eval-runner throughput, samples/s ({spec['image'][0]}x{spec['image'][1]} images, "
        f"{spec['decode_tokens']} greedy tokens each, {spec['batches']} batches per batch size)",
        "",
        "| batch | "
        + " | ".join(names)
        + (" | JAX / transformers | equal replies % |" if "jax_over_torch" in rows[0] else " |"),
        "|---" * (len(names) + 1 + 2 * ("jax_over_torch" in rows[0])) + "|",
    ]
    for row in rows:
        cells = [str(row["batch"])] + [f"{row['samples_per_s'][name]:.2f}" for name in names]
        if "jax_over_torch" in row:
            cells += [f"{row['jax_over_torch']:.2f}", _fmt(row.get("replies_equal_pct"), ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)
