"""Each family's smallest released size at full width and depth, with random weights, through the
README's journey (issue 38):

    python scripts/released_sizes.py --out outputs/released-sizes                    # all five, smallest first
    python scripts/released_sizes.py --out /tmp/rs --family qwen2_vl --layers 2      # a quick check

Per family: the released config.json (tests/fixtures/released/<family>/; RELEASES says where it is not the
release's own file) -> transformers' model with random weights, saved by `save_pretrained` as 2 GB
safetensors shards in the released dtype, the released tokenizer, chat template, processor and
generation files beside it -> `conversion.convert --verify` (float32 when its estimated peak fits
VERIFY_FLOAT32_GIB, else bfloat16; a float32 run killed for memory runs again in bfloat16) -> a bfloat16
conversion when the verified one was float32 -> the bfloat16 model's load and the compile of its unpruned
prefill, timed here -> `scripts/evaluate.py` with configs/eval/released.py (a released model's buckets)
on the tiny jsonl benchmark (`conversion.tiny --jsonl-sample`, 4 test images) -> `scripts/generate.py`
pruned by raw layer-1 attention (no mapper). Every step is a subprocess: its wall time, exit code and
peak RSS (`os.wait4`'s rusage: file-backed pages of memory-mapped safetensors included) are recorded,
its output logged in OUT/<family>/. `--layers N` gives the LLM N decoder layers (Qwen3-VL at least 3:
DeepStack feeds layers 0-2); the vision tower keeps its depth.

Writes OUT/released_sizes.json (an earlier run's other families kept) and OUT/released_sizes.md. Each
family's checkpoints (several GB) are deleted when it is done, unless --keep-files.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT / "tests" / "fixtures" / "released"
PROMPT = "what colour is the square ?"
IMAGE = "img/4.png"  # of the jsonl sample: 56 x 84 pixels
# --verify in float32 when its measured peak, ~1.65 float32 copies of the weights (conversion: the weights and
# orbax's write buffers; verification: one side's model at a time), stays within this: 24 GB less the machine's
# other use. Above it, bfloat16.
VERIFY_FLOAT32_GIB = 17.0

QWEN_BPE = ("vocab.json", "merges.txt")  # tests/fixtures/released/qwen_bpe/, shared by the Qwen-tokenizer families


def qwen3_vl_2b_sizes(config: dict) -> None:
    """Qwen3-VL-4B-Instruct's config.json (the fixture) resized in place to the 2B preset's sizes."""
    from tokcomp_jax.models.qwen3_vl.config import Qwen3VLConfig

    preset = Qwen3VLConfig.qwen3_vl_2b()
    text, vision = preset.text, preset.vision
    config["text_config"].update(
        hidden_size=text.hidden_size, intermediate_size=text.intermediate_size,
        num_hidden_layers=text.num_hidden_layers, num_attention_heads=text.num_attention_heads,
        num_key_value_heads=text.num_key_value_heads, head_dim=text.head_dim,
        tie_word_embeddings=text.tie_word_embeddings,
    )  # fmt: skip
    config["vision_config"].update(
        depth=vision.depth, hidden_size=vision.embed_dim, intermediate_size=vision.intermediate_size,
        num_heads=vision.num_heads, out_hidden_size=vision.out_hidden_size,
        deepstack_visual_indexes=list(vision.deepstack_visual_indexes),
    )  # fmt: skip


class Release(NamedTuple):
    """What a family's smallest release needs here, beside its fixture folder tests/fixtures/released/<family>/."""

    checkpoint: str  # the released checkpoint's name
    config_note: str  # where its config.json comes from, when not the release's own file
    llm_section: str | None  # the config.json key holding the LLM's num_hidden_layers (None: the top level)
    dtype_key: tuple[str, ...] = ("torch_dtype",)  # the path to the weights' dtype in config.json
    side_files: tuple[str, ...] = QWEN_BPE  # from tests/fixtures/released/qwen_bpe/ beside the tokenizer files
    resize: Callable[[dict], None] | None = None  # sizes applied over the fixture's config.json
    parts: bool = False  # VILA1.5: llm/, vision_tower/, mm_projector/ and no transformers class


# smallest first, the order of a full run
RELEASES = {
    "llava_onevision": Release("llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
                               "config.json rebuilt by the release's conversion script (SOURCES.md)", "text_config"),
    "qwen2_vl": Release("Qwen/Qwen2-VL-2B-Instruct",
                        "config.json of Qwen2-VL-2B (base), the -Instruct values (SOURCES.md)", None),
    "qwen3_vl": Release("Qwen/Qwen3-VL-2B-Instruct",
                        "config.json: Qwen3-VL-4B-Instruct's with the sizes of the 2B preset "
                        "(Qwen3VLConfig.qwen3_vl_2b)",
                        "text_config", dtype_key=("text_config", "dtype"), resize=qwen3_vl_2b_sizes),
    "qwen2_5_vl": Release("Qwen/Qwen2.5-VL-3B-Instruct", "", None),
    "vila": Release("Efficient-Large-Model/VILA1.5-3b",
                    "llm/ and vision_tower/ config.json: transformers' from the released config.json's llm_cfg, "
                    "vision_tower_cfg (SOURCES.md: not found)", "llm_cfg", side_files=(), parts=True),
}  # fmt: skip


def llm_section(family: str, config: dict) -> dict:
    section = RELEASES[family].llm_section
    return config[section] if section else config


# ---------------------------------------------------------------- the checkpoint (run in a subprocess)


def released_config(family: str, layers: int | None) -> dict:
    """The family's released config.json as a dict (Qwen3-VL at the 2B preset's sizes), the LLM at `layers`."""
    config = json.loads((RELEASED / family / "config.json").read_text())
    if RELEASES[family].resize is not None:
        RELEASES[family].resize(config)
    if layers is not None:
        llm_section(family, config)["num_hidden_layers"] = layers
    return config


def copy_released_files(family: str, directory: Path) -> None:
    """The release's side files (every file of its fixture folder but config.json), and the shared ones it needs."""
    source = RELEASED / family
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and relative.name != "config.json" and relative.parts[0] != "earlier":
            (directory / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, directory / relative)
    for name in RELEASES[family].side_files:
        shutil.copyfile(RELEASED / "qwen_bpe" / name, directory / name)


def write_checkpoint(family: str, directory: Path, layers: int | None) -> dict:
    """A random-weight checkpoint of the released size in `directory`, as the release lays it out."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = released_config(family, layers)
    directory.mkdir(parents=True)
    release = RELEASES[family]
    if release.parts:  # no transformers class: its parts, VILA1.5's layout (conversion/verify_vila.py)
        from conversion.verify_vila import save_tiny_vila

        llm = {k: config["llm_cfg"][k] for k in (
            "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings",
            "bos_token_id", "eos_token_id", "pad_token_id", "hidden_act")}  # fmt: skip
        vision = {k: config["vision_tower_cfg"][k] for k in (
            "hidden_size", "image_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
            "patch_size", "layer_norm_eps", "hidden_act")}  # fmt: skip
        torch.set_default_dtype(torch.bfloat16)  # the release's model_dtype; the projector too
        parts = save_tiny_vila(directory, seed=0, llm=llm, vision=vision)
        torch.set_default_dtype(torch.float32)
        parameters = sum(p.numel() for part in parts for p in part.parameters())
        (directory / "llm" / "generation_config.json").unlink(missing_ok=True)  # not the release's (not found)
    else:
        (directory / "config.json").write_text(json.dumps(config, indent=2))
        hf_config = transformers.AutoConfig.from_pretrained(directory)
        dtype = getattr(torch, functools.reduce(dict.get, release.dtype_key, config))
        model = getattr(transformers, config["architectures"][0])._from_config(hf_config, dtype=dtype)
        parameters = sum(p.numel() for p in model.parameters())
        model.save_pretrained(directory, max_shard_size="2GB")
        del model
        (directory / "generation_config.json").unlink(missing_ok=True)  # transformers'; the release's, if any, next
    if layers is None and release.resize is None:  # the released file itself
        shutil.copyfile(RELEASED / family / "config.json", directory / "config.json")
    else:
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    copy_released_files(family, directory)  # VILA1.5: its fixture keeps them in llm/
    return {"parameters": parameters, "llm_layers": llm_section(family, config)["num_hidden_layers"]}


# ---------------------------------------------------------------- load and compile (run in a subprocess)


def load_and_compile(model_dir: Path, image: Path) -> dict:
    """Seconds to load the model, then to lower and compile its unpruned prefill on the prompt and image as
    scripts/generate.py buckets them, and to run it once; the compiled prefill's temporary memory (XLA's
    memory analysis); whether its logits are finite."""
    import dataclasses

    import jax
    import numpy as np
    from flax import nnx

    import tokcomp_jax
    from tokcomp_jax.eval.samples import load_image
    from tokcomp_jax.models.families import family_of
    from tokcomp_jax.prune import prepare_pruning

    start = time.perf_counter()
    model = tokcomp_jax.load(model_dir)
    jax.block_until_ready(nnx.state(model))
    load_s = time.perf_counter() - start
    config, family = model.config, family_of(model.config)
    chat = family.chat(config, family.load_tokenizer(model_dir, None), family.read_side_files(model_dir))
    batch = chat.encode(PROMPT, images=[load_image(image)])
    text, visual = family.token_counts(config, batch)
    round_up = lambda value, multiple: -(-value // multiple) * multiple  # noqa: E731
    buckets = family.buckets(config, batch, round_up(text, 16), round_up(max(visual, 1), 64), 1)
    inputs, _ = prepare_pruning(config, batch, dataclasses.replace(buckets, queries=round_up(text, 16)))
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda state, inputs: nnx.merge(graphdef, state)(inputs).logits)
    start = time.perf_counter()
    lowered = forward.lower(state, inputs)
    lower_s = time.perf_counter() - start
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start - lower_s
    memory = compiled.memory_analysis()
    start = time.perf_counter()
    logits = np.asarray(jax.block_until_ready(compiled(state, inputs)), np.float32)
    return {"load_s": round(load_s, 1), "lower_s": round(lower_s, 1), "compile_s": round(compile_s, 1),
            "prefill_s": round(time.perf_counter() - start, 2), "prefill_tokens": int(inputs.input_ids.shape[1]),
            "prefill_temp_gib": round(memory.temp_size_in_bytes / 2**30, 2) if memory else None,
            "logits_finite": bool(np.isfinite(logits).all())}  # fmt: skip


# ---------------------------------------------------------------- the driver


def run_step(name: str, argv: list[str], log_dir: Path) -> dict:
    """Run `argv` from the repository root, its output into LOG_DIR/NAME.log; exit code, wall seconds,
    peak RSS (GiB, of the process and the children it waited for) and its last stdout line that is JSON."""
    log = log_dir / f"{name}.log"
    print(f"[{name}] {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    with open(log, "w") as out:
        child = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    result = {"exit": child.returncode, "wall_s": round(time.perf_counter() - start, 1),
              "peak_rss_gib": round(usage.ru_maxrss * 1024 / 2**30, 2), "log": str(log)}  # fmt: skip
    lines = log.read_text(errors="replace").splitlines()
    for line in reversed(lines):
        if line.startswith("{") and line.endswith("}"):
            result["json"] = json.loads(line)
            break
    if child.returncode != 0:
        result["error"] = [line for line in lines if line.strip()][-4:]
    print(f"[{name}] exit {result['exit']}, {result['wall_s']} s, peak RSS {result['peak_rss_gib']} GiB", flush=True)
    return result


def verify_dtype(parameters: int, choice: str) -> str:
    if choice != "auto":
        return choice
    return "float32" if 1.65 * 4 * parameters / 2**30 <= VERIFY_FLOAT32_GIB else "bfloat16"


def run_family(family: str, out: Path, data: Path, layers: int | None, dtype_choice: str, keep_files: bool) -> dict:
    """The journey on one family; its record."""
    me, py = [sys.executable, str(Path(__file__).resolve())], sys.executable
    work = out / family
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    hf, model = work / "hf", work / "model-bfloat16"
    record = {"family": family, "model": RELEASES[family].checkpoint, "config_note": RELEASES[family].config_note,
              "date": time.strftime("%Y-%m-%d %H:%M %Z")}  # fmt: skip

    def convert(dtype: str, verify: bool) -> dict:
        argv = [
            py,
            "-m",
            "conversion.convert",
            "--src",
            str(hf),
            "--dst",
            str(work / f"model-{dtype}"),
            "--dtype",
            dtype,
        ]
        return run_step(f"convert-{dtype}" + ("-verify" if verify else ""), argv + ["--verify"] * verify, work)

    try:
        write = ["--write-checkpoint", family, "--dst", str(hf)] + ([] if layers is None else ["--layers", str(layers)])
        record["write"] = run_step("write", me + write, work)
        if record["write"]["exit"]:
            return record
        record |= record["write"].pop("json")
        dtype = verify_dtype(record["parameters"], dtype_choice)
        record["convert"] = convert(dtype, verify=True)
        if dtype == "float32" and record["convert"]["exit"] < 0:  # killed, out of memory: verify in bfloat16
            record["convert_float32_killed"] = record.pop("convert")
            dtype, record["convert"] = "bfloat16", convert("bfloat16", verify=True)
        record["verify_dtype"], record["verify"] = dtype, record["convert"].pop("json", None)
        if dtype == "float32":
            remove_checkpoints(work, "model-float32")
            record["convert_bf16"] = convert("bfloat16", verify=False)
        if not (model / "tokcomp_model.json").is_file():
            return record
        record["load_compile"] = run_step("load-compile", me + ["--load-compile", str(model), "--image",
                                                                str(data / IMAGE)], work)  # fmt: skip
        record |= record["load_compile"].pop("json", {})
        evaluate = [
            py, "scripts/evaluate.py", "--config", "configs/eval/released.py:test.jsonl", "--data_dir", str(data),
            "--model", str(model), "--scorer", "attention", "--keep", "0.5", "--out", str(work / "eval"),
        ]  # fmt: skip
        generate = [py, "scripts/generate.py", "--model", str(model), "--image", str(data / IMAGE), "--prompt", PROMPT,
                    "--scorer", "attention", "--keep", "0.5", "--max-new-tokens", "8"]  # fmt: skip
        # killed for memory (exit -9): again in float32 with the decoder's layers scanned. XLA's CPU backend computes
        # bfloat16 dots in float32 and holds a float32 copy of every bfloat16 weight, the stacked ones of a scan
        # included (eval.memory.prefill_memory: Qwen2-VL-2B's prefill temporaries 5.9 GiB in bfloat16, 0.2 in
        # float32), so on a CPU float32 weights take less memory than bfloat16 ones.
        for name, argv, scan in (("evaluate", evaluate, "--scan_layers"), ("generate", generate, "--scan_layers")):
            record[name] = run_step(name, argv, work)
            if record[name]["exit"] < 0:
                if name == "evaluate":
                    shutil.rmtree(work / "eval", ignore_errors=True)
                record[f"{name}_float32"] = run_step(f"{name}-float32", argv + [scan, "--dtype", "float32"], work)
        if (results := work / "eval" / "results.json").is_file():
            rows = json.loads(results.read_text())["rows"]
            record["evaluated"] = [{k: row[k] for k in ("run", "score", "flops_pct", "wall_s")} for row in rows]
        for log in ("generate", "generate-float32"):
            lines = (
                (work / f"{log}.log").read_text(errors="replace").splitlines() if (work / f"{log}.log").exists() else []
            )
            if "{" in lines:  # its report: the last lines, from a line "{"
                record["generated"] = json.loads("\n".join(lines[len(lines) - 1 - lines[::-1].index("{") :]))
        return record
    finally:
        if not keep_files:
            remove_checkpoints(work, "hf", "model-*", ".model-*")


def remove_checkpoints(work: Path, *patterns: str) -> None:
    for pattern in patterns:
        for path in work.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)


def cost(step: dict | None) -> str:
    return "-" if not step else f"{step['wall_s']:.0f} s / {step['peak_rss_gib']:.1f} GiB"


def row(r: dict) -> str:
    """One family's line of the table."""
    if "parameters" not in r:
        return f"| {r['family']} | writing the checkpoint failed: {' / '.join(r['write'].get('error', []))} |"
    verify = r.get("verify") or {}
    diff = lambda key: f"{verify[key]:.2e}" if key in verify else "-"  # noqa: E731
    logit = f" ({verify['logits_max_abs']:.1f})" if "logits_max_abs" in verify else ""
    passed = {True: ", pass", False: ", FAIL"}.get(verify.get("passed"), "")
    if rounding := verify.get("rounding"):  # a bfloat16 verify beyond its tolerance, judged by rounding
        ours, theirs = rounding["ours_vs_float32"][0], rounding["transformers_bfloat16_vs_float32"][0]
        passed += f" by rounding (logits from float32: ours {ours:.2e}, transformers' bfloat16 {theirs:.2e})"

    def exit_of(name: str) -> str:
        if name not in r:
            return "-"
        again = [
            ("float32, layers scanned: ", r.get(f"{name}_float32")),
            ("layers scanned: ", r.get(f"{name}_scanned")),
        ]
        return f"{r[name]['exit']} ({cost(r[name])})" + "".join(
            f"; {how}{step['exit']} ({cost(step)})" for how, step in again if step
        )  # _scanned: bfloat16 scanned, the retry of runs before float32 retries

    first = r.get("convert_float32_killed")
    killed = f"float32 killed ({cost(first)}); " if first else ""
    cells = [
        f"{r['family']} ({r['model'].split('/')[-1]})", r.get("llm_layers", "-"), f"{r['parameters'] / 1e9:.2f}B",
        r.get("verify_dtype", "-"), killed + f"{cost(r.get('convert'))}, exit {r.get('convert', {}).get('exit', '-')}",
        diff("logits_max_abs_diff") + logit, diff("attn1_max_abs_diff") + passed, cost(r.get("convert_bf16")),
        r.get("load_s", "-"), f"{r.get('compile_s', '-')} / {r.get('prefill_temp_gib', '-')} ({r.get('prefill_tokens', '-')})",
        exit_of("evaluate"),
        exit_of("generate"),
    ]  # fmt: skip
    return "| " + " | ".join(map(str, cells)) + " |"


def markdown(records: dict[str, dict]) -> str:
    lines = [
        "| family (released size) | LLM layers | parameters | verify dtype | convert + verify: time / peak RSS | "
        "logits max abs diff (max abs logit) | layer-1 attention max abs diff | bf16 convert: time / peak RSS | "
        "load s | prefill compile s / XLA temp GiB (tokens) | evaluate exit (time / peak RSS) | generate exit (time / peak RSS) |",
        "|---" * 12 + "|",
    ]
    lines += [row(records[family]) for family in RELEASES if family in records]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="results and (while a family runs) its checkpoints")
    parser.add_argument("--family", action="append", choices=list(RELEASES), help="repeat for several (default: all)")
    parser.add_argument("--layers", type=int, help="LLM decoder layers instead of the released depth (quick check)")
    parser.add_argument("--verify-dtype", choices=("auto", "float32", "bfloat16"), default="auto")
    parser.add_argument("--keep-files", action="store_true", help="keep each family's checkpoints")
    parser.add_argument("--write-checkpoint", choices=list(RELEASES), help=argparse.SUPPRESS)  # a step's subprocess
    parser.add_argument("--dst", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--load-compile", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.layers is not None and args.layers < 1:
        parser.error("--layers must be at least 1")
    if args.write_checkpoint:
        layers = args.layers if args.write_checkpoint != "qwen3_vl" or args.layers is None else max(args.layers, 3)
        print(json.dumps(write_checkpoint(args.write_checkpoint, args.dst, layers)))
        return {}
    if args.load_compile:
        print(json.dumps(load_and_compile(args.load_compile, args.image)))
        return {}
    if args.out is None:
        parser.error("--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "data"
    if not (data / "test.jsonl").is_file():
        run_step("jsonl-sample", [sys.executable, "-m", "conversion.tiny", "--dst", str(data), "--jsonl-sample"],
                 args.out)  # fmt: skip
    results = args.out / "released_sizes.json"
    records = json.loads(results.read_text()) if results.is_file() else {}
    for family in args.family or list(RELEASES):
        records[family] = run_family(family, args.out, data, args.layers, args.verify_dtype, args.keep_files)
        records[family]["machine"] = f"{os.cpu_count()} cores, {_memory_gib():.0f} GiB"
        results.write_text(json.dumps(records, indent=2) + "\n")
        (args.out / "released_sizes.md").write_text(markdown(records))
    print(markdown(records), end="")
    return records


def _memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashed step writes no multi-GB core file
    main()
