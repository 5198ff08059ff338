"""Evaluate a model on a suite of benchmarks, unpruned and pruned, in jit-compiled batches:

    python scripts/evaluate.py --config configs/eval/images.py --data_dir /data/benchmarks \\
        --model checkpoints/qwen2-vl-2b --mapper outputs/mapper/mapper --keep 0.5 --scorer mapper

For each benchmark of the suite (adapters: tokcomp_jax.eval.adapters) it runs the unpruned model
and the scorer at each keep ratio, appending every batch's replies to OUT/<benchmark>/<run>.jsonl;
run the same command again and it continues where it stopped. Writes OUT/results.json and
OUT/results.md (score, retention = pruned / unpruned score, LLM prefill FLOPs as % of unpruned,
wall time of this invocation) and prints the table.

Devices: with several local devices the model is sharded over a (data, model) mesh
(`--mesh_model` devices per model copy). On a TPU VM pod, run the same command on every host with
`--distributed`. `--mesh host` (default): each host has its own mesh of its local devices, takes
every n-th sample and writes its own results files; host 0 writes the report after all are done.
`--mesh global`: one mesh over every host's devices, so a model larger than one host fits; all
hosts run every batch together and host 0 keeps the results (see README, "Evaluating on a TPU pod").

The flags are checked first (--keep, --out: a new or empty directory, or one an earlier run made),
then every benchmark is read and checked (files, records, unique ids, readable media) before the
model loads, and all problems are reported at once; `--check_data` stops there. `--rescore`
recomputes an earlier run's results in --out from its stored replies, without a model (e.g. after a
scoring fix), once every run's replies are whole and made from the same benchmark samples;
scripts/score.py scores replies produced anywhere.

Flags use underscores and the suite's fields are --config.<field>; a mistake is one `error:` line and
exit status 2 (--debug: the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import time
import warnings
from pathlib import Path

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

import tokcomp_jax
from tokcomp_jax import cli
from tokcomp_jax.eval.check import read_suite
from tokcomp_jax.eval.codecs import ChatCodec, MiniatureCodec
from tokcomp_jax.eval.memory import image_patches, memory_plan, plan_kernel
from tokcomp_jax.eval.metrics import benchmark_score
from tokcomp_jax.eval.results import HostZeroResults, ResultsFile, data_fingerprint
from tokcomp_jax.eval.runner import RunSettings, evaluate
from tokcomp_jax.eval.scoring import reply_records
from tokcomp_jax.eval.sharding import make_mesh, param_sharding, place_batch, shard_model
from tokcomp_jax.explain.head_importance import read_head_weights
from tokcomp_jax.files import CheckpointError, write_text_atomically
from tokcomp_jax.hosts import barrier, join
from tokcomp_jax.mapper import check_mapper_family, load_mapper, read_mapper_config
from tokcomp_jax.models.checkpoint import DTYPES, read_model_config
from tokcomp_jax.models.common.attention import IMPLEMENTATIONS, configure_attention
from tokcomp_jax.models.common.config import PositionWarning
from tokcomp_jax.models.families import family_of
from tokcomp_jax.prune import PruneConfig
from tokcomp_jax.prune.methods import check_mapper_prior, reads_mapper, usable_without_labels
from tokcomp_jax.runs import RunConflict, check_run_directory, claim, exclusive, model_digest

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "suite config, e.g. configs/eval/images.py", lock_config=False
)
_MODEL = flags.DEFINE_string("model", None, "orbax model directory (conversion) or HF directory")
_MAPPER = flags.DEFINE_string("mapper", None, "trained mapper directory (scorer mapper)")
_TOKENIZER = flags.DEFINE_string("tokenizer", None, "tokenizer directory for chat models (default: --model)")
_PROCESSOR = flags.DEFINE_string("processor", None, "directory with preprocessor_config.json (default: --model)")
_DATA_DIR = flags.DEFINE_string("data_dir", ".", "root of the benchmarks' local copies")
_KEEP = flags.DEFINE_list("keep", ["0.5"], "keep ratios, comma-separated")
_SCORER = flags.DEFINE_enum("scorer", "mapper", usable_without_labels(), "scorer")
_LAYER = flags.DEFINE_integer("prune_layer", 2, "FastV and DART prune before this decoder layer")
_BUDGET = flags.DEFINE_string(
    "budget", "fixed",
    "per-sample keep counts: fixed (ceil(keep * n) each) or mass:TAU[:MIN] (the fewest top tokens holding TAU of "
    "the scorer's mass, at least MIN * n, at most keep * n: --keep sets the static slots)",
)  # fmt: skip
_OUT = flags.DEFINE_string("out", "outputs/eval", "results directory")
_MESH_MODEL = flags.DEFINE_integer("mesh_model", 1, "devices per model copy (the mesh's model axis)")
_MESH = flags.DEFINE_enum(
    "mesh", "host", ["host", "global"],
    "with --distributed: host = a mesh per host, samples split over hosts; global = one mesh over all hosts' devices",
)  # fmt: skip
_SCAN_LAYERS = flags.DEFINE_bool(
    "scan_layers", False, "run the decoder layers by lax.scan over stacked weights (faster compiles, slower steps)"
)
_ATTENTION = flags.DEFINE_enum(
    "attention", "auto", IMPLEMENTATIONS,
    "where no probabilities are read (auto: tiled on CPU, splash on TPU, fused on GPUs: cuDNN's flash attention "
    "where it applies)",
)  # fmt: skip
_DTYPE = flags.DEFINE_enum(
    "dtype", None, sorted(DTYPES),
    "compute in this dtype (default: a converted model's own, float32 for a HF directory). On a CPU, float32 "
    "takes less memory than bfloat16: XLA's CPU backend holds a float32 copy of every bfloat16 weight as it runs",
)  # fmt: skip
_HEAD_WEIGHTS = flags.DEFINE_string(
    "head_weights", None, "--scorer hawk: the model's layer-0 head weights (scripts/label.py --head_importance)"
)
_CHECK_DATA = flags.DEFINE_bool("check_data", False, "only read and validate every benchmark, then stop")
_RESCORE = flags.DEFINE_bool("rescore", False, "recompute --out's results from its stored replies (no model)")
_DEVICE_GIB = flags.DEFINE_float(
    "device_memory_gib",
    None,
    "memory per device for the plan checked before loading (default: what the device reports)",
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "start over the runs in --out that another model/config/data made")


def make_codec(config, model):
    if config.codec == "miniature":
        return MiniatureCodec(model.config)
    family = family_of(model.config)
    tokenizer = family.load_tokenizer(_PROCESSOR.value or _MODEL.value, _TOKENIZER.value)
    return ChatCodec(model.config, tokenizer, _PROCESSOR.value or _MODEL.value)


def check_memory_plan(config, pruned: bool) -> None:
    """Refuse, before any weight loads, a model whose weights + KV cache + attention working set per
    device (tokcomp_jax.eval.memory; the first layer's read probabilities counted when a run is
    `pruned`: a pruning method may read them) exceed the device memory (--device_memory_gib, or what the device
    reports; CPUs report none: nothing checked)."""
    _, model_config, stored_dtype = read_model_config(_MODEL.value)
    limit = (
        _DEVICE_GIB.value * 2**30
        if _DEVICE_GIB.value
        else (jax.local_devices()[0].memory_stats() or {}).get("bytes_limit")
    )
    if not limit:
        return
    sequence = max(config.text_buckets) + max(config.visual_buckets) + config.max_new_tokens
    model_axis, devices = _MESH_MODEL.value, len(mesh_devices())
    dtype = _DTYPE.value or stored_dtype or "float32"
    kernel = plan_kernel(model_config, _ATTENTION.value, dtype, sequence)
    # one segment as large as the largest visual bucket: an upper bound for samples of several images or frames
    patches = image_patches(model_config, max(config.visual_buckets))
    plan = memory_plan(model_config, max(devices // model_axis, 1), model_axis, dtype, config.batch_size, sequence,
                       kernel, patches, reads_first_layer=pruned)  # fmt: skip
    if not plan.fits(limit):
        raise app.UsageError(
            f"{_MODEL.value}: {plan.report(limit)} at batch {config.batch_size} x {sequence} tokens, vision blocks of "
            f"{patches} patches; use a larger --mesh_model, a smaller --config.batch_size, a bfloat16 conversion or "
            "another --attention"
        )


def mesh_devices() -> list:
    """The devices of the model's mesh: this host's (--mesh host) or every host's (--mesh global)."""
    return jax.devices() if _MESH.value == "global" else jax.local_devices()


def run_settings(config, prune: PruneConfig | None) -> RunSettings:
    return RunSettings(
        batch_size=config.batch_size, text_buckets=tuple(config.text_buckets),
        visual_buckets=tuple(config.visual_buckets), max_new_tokens=config.max_new_tokens, prune=prune,
    )  # fmt: skip


def summarise(name: str, metric: str, runs: dict[str, dict]) -> list[dict]:
    """Table rows of one benchmark: every run's score, retention against the unpruned run, FLOPs."""
    unpruned = benchmark_score(metric, runs["unpruned"]["records"])["score"]
    rows = []
    for run, result in runs.items():
        score = benchmark_score(metric, result["records"])
        rows.append({
            "benchmark": name, "run": run, "metric": metric, "samples": len(result["records"]),
            "score": score["score"], "retention": 100.0 * score["score"] / unpruned if unpruned else None,
            "flops_pct": float(np.mean([r["flops_pct"] for r in result["records"]])),
            "keep_pct": visual_kept_pct(result["records"]), "wall_s": result["wall_s"], "details": score,
        })  # fmt: skip
    return rows


def visual_kept_pct(records: list[dict]) -> float | None:
    """The mean share of its visual tokens a sample kept, %; None without visual tokens (or for
    records made before `visual_kept` was recorded)."""
    shares = [
        100.0 * r["visual_kept"] / r["visual_tokens"] for r in records if r.get("visual_tokens") and "visual_kept" in r
    ]
    return float(np.mean(shares)) if shares else None


def figure(value: float | None, digits: int, missing: str = "n/a") -> str:
    """A table cell: the value to `digits` decimals, `missing` where it is undefined (None)."""
    return missing if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict]) -> str:
    """The results table; retention is n/a where the unpruned score is 0, wall time where the run's
    records were all made earlier (reused) or only rescored."""
    lines = [
        "| benchmark | run | metric | score | retention % | visual tokens kept % | LLM prefill FLOPs % | samples | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['benchmark']} | {r['run']} | {r['metric']} | {r['score']:.2f} | {figure(r['retention'], 1)} | "
            f"{figure(r.get('keep_pct'), 1)} | {r['flops_pct']:.1f} | {r['samples']} | {figure(r['wall_s'], 0, 'reused')} |"
        )
    return "\n".join(lines) + "\n"


def read_data(config) -> dict:
    """Every benchmark of the suite, read and checked before any model loads; all problems at once."""
    suite = [(b.name, b.adapter, Path(_DATA_DIR.value) / b.data_dir) for b in config.benchmarks]
    samples, problems = read_suite(suite)
    if len(problems) == 1:
        raise app.UsageError(f"1 problem in the benchmark data: {problems[0]}")
    if problems:
        raise app.UsageError(f"{len(problems)} problems in the benchmark data:\n  " + "\n  ".join(problems))
    return samples


def check_model_and_mapper(runs: dict[str, PruneConfig | None]) -> None:
    """The model's and the mapper's configs, before any weight is read: a mapper of another family or
    of none, and an in-LLM method on a decoder too shallow for it, are refused."""
    family, model_config, _ = read_model_config(_MODEL.value)
    if reads_mapper(_SCORER.value):
        mapper_config = read_mapper_config(_MAPPER.value)
        check_mapper_family(mapper_config, family.name, _MAPPER.value, _MODEL.value)
        check_mapper_prior(_SCORER.value, mapper_config)
    for run, prune in runs.items():
        if prune is not None:
            try:
                prune.check_depth(model_config.text.num_hidden_layers)
            except ValueError as err:
                raise app.UsageError(f"run {run} of {_MODEL.value}: {err}") from None


def weigh_heads(runs: dict[str, PruneConfig | None]) -> dict[str, PruneConfig | None]:
    """--head_weights, read and checked against the model's config before any weight is read, in the hawk runs."""
    if not _HEAD_WEIGHTS.value:
        return runs
    family, model_config, _ = read_model_config(_MODEL.value)
    try:
        weights = read_head_weights(_HEAD_WEIGHTS.value, family.name, model_config.text.num_attention_heads)
    except (CheckpointError, FileNotFoundError) as err:
        raise app.UsageError(f"--head_weights: {err}") from None
    return {name: prune and dataclasses.replace(prune, head_weights=weights) for name, prune in runs.items()}


def stored_runs(out: Path, name: str) -> dict[str, list[Path]]:
    """run name -> its hosts' results files, for a benchmark of an earlier run in `out`."""
    runs: dict[str, list[Path]] = {}
    for path in sorted((out / name).glob("*.host*.jsonl")):
        runs.setdefault(path.name.rsplit(".host", 1)[0], []).append(path)
    return runs


def rescore(config, samples: dict, out: Path) -> list[dict]:
    """Table rows of an earlier run recomputed from its stored replies, by today's scoring rules.
    Refused unless every results file was made from these benchmark samples (its fingerprint's data),
    every line is a whole record and every sample has a reply."""
    rows = []
    for benchmark in config.benchmarks:
        runs = stored_runs(out, benchmark.name)
        if "unpruned" not in runs:
            raise app.UsageError(f"{out / benchmark.name} holds no unpruned run to rescore")
        per_run = {}
        for run, paths in runs.items():
            replies = {}
            for path in paths:
                check_rescored_data(path, benchmark, samples[benchmark.name])
                try:
                    stored = ResultsFile(path).read_whole(("sample_id", "reply", "flops_pct"))
                except ValueError as err:
                    raise app.UsageError(str(err)) from None
                replies |= {r["sample_id"]: r for r in stored if r["sample_id"] not in replies}
            try:
                records = reply_records(samples[benchmark.name], {i: r["reply"] for i, r in replies.items()})
            except ValueError as err:
                raise app.UsageError(
                    f"{out / benchmark.name} {run}: {err}; finish the run (the same command without --rescore)"
                ) from None
            for record in records:
                record["flops_pct"] = replies[record["sample_id"]]["flops_pct"]
            per_run[run] = {"records": records, "wall_s": None}  # rescored, not run
        rows += summarise(benchmark.name, samples[benchmark.name][0].metric, per_run)
    return rows


def check_rescored_data(path: Path, benchmark, samples) -> None:
    """Refuse to rescore a results file made from other benchmark samples (ids, prompts, answers) or
    another adapter than `benchmark`'s, as its fingerprint records them; moving the data is allowed."""
    record = path.with_suffix(".fingerprint.json")
    try:
        made_from = json.loads(record.read_text())
        hosts, host = int(made_from["hosts"]), int(path.name.rsplit(".host", 1)[1].split(".")[0])
        stored = made_from["data"]
        share = samples[host % hosts :: hosts]
        expected = data_fingerprint(benchmark.adapter, Path(_DATA_DIR.value, benchmark.data_dir), share)
        differ = [key for key in ("adapter", "samples") if stored[key] != expected[key]]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        raise app.UsageError(
            f"{record} is missing or unreadable: there is no record of the benchmark data {path.name} was made "
            "from, so it cannot be rescored; evaluate again (--overwrite)"
        ) from None
    if differ:
        raise app.UsageError(
            f"{path} was made from other benchmark data than {benchmark.name} under --data_dir ({' and '.join(differ)} "
            f"differ from {record.name}); rescore with the data it was made from, or evaluate again"
        )


def _claim_run(results: ResultsFile, made_from: dict, benchmark, samples, prune: PruneConfig | None) -> None:
    """Record what a run's results are made from, or check it on resume; results made from something
    else are refused (or, with --overwrite, removed so the run starts over)."""
    fingerprint = made_from | {
        "mapper": made_from["mapper"] if prune is not None and reads_mapper(prune.scorer) else None,
        "prune": dataclasses.asdict(prune) if prune is not None else None,
        "data": data_fingerprint(benchmark.adapter, Path(_DATA_DIR.value, benchmark.data_dir), samples),
    }
    results.path.parent.mkdir(parents=True, exist_ok=True)
    has_outputs = results.path.exists() and results.path.stat().st_size > 0
    fresh = claim(results.path.with_suffix(".fingerprint.json"), fingerprint, _OVERWRITE.value, has_outputs)
    if fresh and results.path.exists():
        results.path.unlink()


def write_report(config, out: Path, rows: list[dict]) -> None:
    write_text_atomically(
        out / "results.json",
        json.dumps({"config": json.loads(config.to_json_best_effort()), "rows": rows}, indent=2, allow_nan=False),
    )
    write_text_atomically(out / "results.md", markdown(rows))
    print(markdown(rows))


def pruning_runs() -> dict[str, PruneConfig | None]:
    """The runs to make, unpruned first then --scorer at each --keep ratio; an empty --keep, a ratio
    that is not a number or one outside (0, 1] is refused before anything is read."""
    if _HEAD_WEIGHTS.value and _SCORER.value != "hawk":
        raise app.UsageError(f"--head_weights are HAWK's; use them with --scorer hawk (not {_SCORER.value})")
    if not _KEEP.value:
        raise app.UsageError("--keep is empty; give keep ratios in (0, 1], comma-separated (e.g. --keep 0.5,0.25)")
    runs: dict[str, PruneConfig | None] = {"unpruned": None}
    for keep in _KEEP.value:
        try:
            ratio = cli.ratio(keep)
        except argparse.ArgumentTypeError as err:
            raise app.UsageError(f"--keep {err} (comma-separated for several)") from None
        if problem := cli.keep_ratio_problem(ratio):
            raise app.UsageError(f"--keep {keep}: {problem}")
        try:
            prune = PruneConfig(_SCORER.value, ratio, layer=_LAYER.value, budget=_BUDGET.value)
        except ValueError as err:
            raise app.UsageError(f"--budget: {err}") from None
        suffix = "" if prune.budget == "fixed" else f"+{prune.budget}"
        runs[f"{_SCORER.value}@{keep}{suffix}"] = prune
    return runs


def main(argv) -> None:
    del argv
    join()  # --distributed: join the other hosts
    config = _CONFIG.value
    if config is None:
        raise app.UsageError("--config is required (e.g. configs/eval/images.py)")
    warnings.simplefilter("ignore", PositionWarning)  # the runner refuses such samples, naming them
    out = Path(_OUT.value)
    runs = pruning_runs()  # the flags first, then the data, then the model
    if not _CHECK_DATA.value:
        if not _MODEL.value and not _RESCORE.value:
            raise app.UsageError("--model is required (except with --check_data or --rescore)")
        if reads_mapper(_SCORER.value) and not _MAPPER.value and not _RESCORE.value:
            raise app.UsageError(f"--scorer {_SCORER.value} needs --mapper DIR (or choose a baseline scorer)")
        try:
            check_run_directory(out)
        except RunConflict as err:
            raise app.UsageError(str(err)) from None
    all_samples = read_data(config)
    if _CHECK_DATA.value:
        count = sum(map(len, all_samples.values()))
        print(f"{len(all_samples)} benchmarks, {count} samples: no problems found")
        return
    if _RESCORE.value:
        write_report(config, out, rescore(config, all_samples, out))
        return
    host, hosts = jax.process_index(), jax.process_count()
    splits = hosts if _MESH.value == "host" else 1  # results files, one per share of the samples
    try:
        runs = weigh_heads(runs)
        check_model_and_mapper(runs)
        check_memory_plan(config, pruned=any(prune is not None for prune in runs.values()))
        mesh = make_mesh(model=_MESH_MODEL.value, devices=mesh_devices()) if len(mesh_devices()) > 1 else None
        # straight into the mesh: no device ever holds the whole model, and on a global mesh each host reads its shards
        model = tokcomp_jax.load(
            _MODEL.value,
            dtype=_DTYPE.value,
            sharding_of=None if mesh is None else functools.partial(param_sharding, mesh),
        )
        mapper = load_mapper(_MAPPER.value) if reads_mapper(_SCORER.value) else None
    except (CheckpointError, FileNotFoundError, ValueError) as err:  # names the file, field or parameter at fault
        raise app.UsageError(str(err)) from None
    codec = make_codec(config, model)
    made_from = {"model": model_digest(model), "codec": config.codec, "tokenizer": _TOKENIZER.value or _MODEL.value,
                 "processor": _PROCESSOR.value or _MODEL.value, "max_new_tokens": config.max_new_tokens, "hosts": splits,
                 "mapper": model_digest(mapper) if mapper is not None else None}  # fmt: skip
    place = None
    if mesh is not None:
        shard_model(model, mesh)  # a HF directory's weights (an orbax directory's are in place already)
        if mapper is not None:
            shard_model(mapper, mesh)
        place = functools.partial(place_batch, mesh)
        print(f"mesh: data {mesh.shape['data']} x model {mesh.shape['model']} over {mesh.devices.size} devices "
              f"of {len({d.process_index for d in mesh.devices.flat})} host(s)")  # fmt: skip
    model.language_model.layers.configure(scan=_SCAN_LAYERS.value)  # after the digest, which names stacked weights
    configure_attention(model, _ATTENTION.value)
    completed, metrics = {}, {}
    # on a mesh, kernels that GSPMD cannot split (splash) run under shard_map over it (models/common/splash.py)
    on_mesh = contextlib.nullcontext() if mesh is None else jax.set_mesh(mesh)
    try:
        with exclusive(out, f".lock.host{host}"), on_mesh:
            for benchmark in config.benchmarks:
                samples = all_samples[benchmark.name]
                metrics[benchmark.name], samples = samples[0].metric, samples[host % splits :: splits]
                completed[benchmark.name] = {}
                for run, prune in runs.items():
                    start = time.perf_counter()
                    path = out / benchmark.name / f"{run}.host{host % splits}.jsonl"
                    results = (
                        ResultsFile(path) if splits == hosts else HostZeroResults(path, [s.sample_id for s in samples])
                    )
                    if host < splits:  # one global mesh: host 0 alone keeps the file and its fingerprint
                        _claim_run(results, made_from, benchmark, samples, prune)
                    fresh = len({s.sample_id for s in samples} - results.finished_ids())
                    evaluate(model, samples, codec, run_settings(config, prune), results, mapper=mapper, place=place)
                    completed[benchmark.name][run] = time.perf_counter() - start if fresh else None  # None: reused
    except RunConflict as err:  # another run holds --out, or made its results from something else
        raise app.UsageError(str(err)) from None
    barrier("evaluation done")
    if host != 0:
        return
    rows = []
    for benchmark in config.benchmarks:
        per_run = {}
        for run in runs:
            records = [
                r for h in range(splits) for r in ResultsFile(out / benchmark.name / f"{run}.host{h}.jsonl").read()
            ]
            per_run[run] = {"records": records, "wall_s": completed[benchmark.name][run]}
        rows += summarise(benchmark.name, metrics[benchmark.name], per_run)
    write_report(config, out, rows)


if __name__ == "__main__":
    cli.run_absl(main)
