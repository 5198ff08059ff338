"""Score replies without a model, by the same rules as scripts/evaluate.py:

    python scripts/score.py --benchmark mme --data_dir /data/MME_Benchmark_release_version \\
        --list_samples samples.jsonl                      # the benchmark's samples, one json per line
    python scripts/score.py --benchmark mme --data_dir /data/MME_Benchmark_release_version \\
        --replies replies.jsonl --out result.json         # {"sample_id", "reply"} lines -> the scores

The result holds `score` (the benchmark's headline), the per-category / per-split / per-subtask
scores and `samples`. A sample without a reply, a reply for no sample, or a sample id replied to
twice is an error that lists them.

Flags use underscores; a mistake is one `error:` line and exit status 2 (--debug: the traceback).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tokcomp_jax import cli
from tokcomp_jax.eval.adapters import ADAPTERS
from tokcomp_jax.eval.check import read_suite
from tokcomp_jax.eval.scoring import sample_record, score_replies
from tokcomp_jax.files import read_utf8


def read_replies(path: Path) -> dict[str, str]:
    """{sample_id: reply} of a jsonl file; bad lines, bytes that are not UTF-8 and repeated ids are
    errors naming the line."""
    if not path.is_file():
        raise ValueError(f"--replies {path} is not a file")
    replies: dict[str, str] = {}
    for number, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            sample_id, reply = str(record["sample_id"]), record["reply"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}:{number}: expected a JSON object with sample_id and reply ({err!r})") from None
        if sample_id in replies:
            raise ValueError(f"{path}:{number}: sample {sample_id!r} is replied to twice")
        replies[sample_id] = str(reply)
    return replies


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--benchmark", required=True, choices=sorted(ADAPTERS), help="the benchmark's adapter")
    parser.add_argument("--data_dir", required=True, type=Path, help="the benchmark's local copy (or jsonl file)")
    parser.add_argument("--list_samples", type=Path, help="write the samples here as jsonl")
    parser.add_argument("--replies", type=Path, help="jsonl of {sample_id, reply} to score")
    parser.add_argument("--out", type=Path, help="the scores as JSON (default: printed)")
    args = parser.parse_args(argv)
    if (args.list_samples is None) == (args.replies is None):
        parser.error("give exactly one of --list_samples and --replies")
    for flag, path in (("--list_samples", args.list_samples), ("--out", args.out)):  # before any reading
        if path is not None and (path.is_dir() or not path.absolute().parent.is_dir()):
            parser.error(f"{flag} {path}: " + ("is a directory" if path.is_dir() else "its folder does not exist"))
    suite, problems = read_suite([(args.benchmark, args.benchmark, args.data_dir)])
    if problems:
        print("error: " + "\n  ".join(problems), file=sys.stderr)
        return 2
    samples = suite[args.benchmark]
    if args.list_samples is not None:
        args.list_samples.write_text("".join(json.dumps(sample_record(s)) + "\n" for s in samples))
        print(f"wrote {len(samples)} samples to {args.list_samples}", file=sys.stderr)
        return 0
    try:
        result = score_replies(samples, read_replies(args.replies))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = json.dumps({"benchmark": args.benchmark, **result}, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    cli.run_main(main)
