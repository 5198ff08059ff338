"""Batched, resumable evaluation of one model on one benchmark's samples, pruned or not.

Samples are grouped by (text, visual) bucket in their given order and run `batch_size` at a time
(the last batch of a bucket is filled with copies of its last row, which are dropped), so the
generate graph compiles once per bucket. The host encodes the next batch while the device runs
the current one. Each finished batch is appended to a ResultsFile before the next starts; a run
started again on the same file skips the samples already there.

    records = evaluate(model, samples, codec, RunSettings(prune=PruneConfig("mapper", 0.5)),
                       ResultsFile("out/gqa.jsonl"), mapper=mapper)
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from tokcomp_jax.eval.metrics import score_reply
from tokcomp_jax.eval.results import ResultsFile
from tokcomp_jax.eval.samples import EvalSample, Prompt
from tokcomp_jax.eval.sharding import fetch
from tokcomp_jax.fields import check_field_types
from tokcomp_jax.flops import prefill_flops
from tokcomp_jax.generate import Generator, check_positions
from tokcomp_jax.mapper.inputs import choose_bucket
from tokcomp_jax.models.families import family_of
from tokcomp_jax.prune import Buckets, PruneConfig, prepare_pruning

PLAN_WINDOW = 16  # batches encoded and bucketed together


@dataclasses.dataclass(frozen=True)
class RunSettings:
    batch_size: int = 8
    text_buckets: tuple[int, ...] = (64, 128, 256, 512)
    visual_buckets: tuple[int, ...] = (64, 256, 1024, 4096)
    max_new_tokens: int = 16
    prune: PruneConfig | None = None  # None: the unpruned model

    def __post_init__(self):
        check_field_types(self)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


def plan_batches(config, encoded: Sequence[dict], settings: RunSettings) -> list[tuple[Buckets, list[int]]]:
    """Indices of `encoded` grouped by bucket, in order of first appearance, `batch_size` at a time.
    The family sizes what else a batch holds (Qwen2-VL: one block of vision patches per image /
    frame group; LLaVA-OneVision, VILA1.5: the batch's tiles)."""
    family = family_of(config)
    groups: dict[Buckets, list[int]] = {}
    for index, row in enumerate(encoded):
        text, visual = family.token_counts(config, row)
        text_bucket = choose_bucket(text, settings.text_buckets, "text tokens")
        visual_bucket = choose_bucket(max(visual, 1), settings.visual_buckets)
        buckets = family.buckets(config, row, text_bucket, visual_bucket, settings.batch_size)
        groups.setdefault(buckets, []).append(index)
    size = settings.batch_size
    return [(b, indices[i : i + size]) for b, indices in groups.items() for i in range(0, len(indices), size)]


def prepared_batches(
    config, samples: Sequence[EvalSample], codec, settings: RunSettings, mapper_config=None
) -> Iterator:
    """(samples, model inputs, ScoringInputs) per batch. Samples are encoded a window of
    PLAN_WINDOW batches at a time (bounded memory) and bucketed within it."""
    window = settings.batch_size * PLAN_WINDOW
    for start in range(0, len(samples), window):
        chunk = samples[start : start + window]
        encoded = [codec.encode(sample) for sample in chunk]
        for buckets, indices in plan_batches(config, encoded, settings):
            rows = [encoded[i] for i in indices]
            rows += [rows[-1]] * (settings.batch_size - len(rows))  # a full batch: one compile per bucket
            batch = family_of(config).collate(rows)
            inputs, scoring = prepare_pruning(config, batch, buckets, mapper=mapper_config)
            names = [chunk[i].sample_id for i in indices] + [chunk[indices[-1]].sample_id] * settings.batch_size
            check_positions(config, inputs.position_ids, inputs.attention_mask, settings.max_new_tokens, names)
            yield [chunk[i] for i in indices], inputs, scoring


def prefetch(iterator: Iterator, depth: int = 2) -> Iterator:
    """Run `iterator` on a background thread, `depth` items ahead; its exceptions surface here."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def fill():
        try:
            for item in iterator:
                items.put(item)
            items.put(done)
        except BaseException as err:  # handed to the consumer, raised there
            items.put(err)

    threading.Thread(target=fill, daemon=True).start()
    while (item := items.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def generate_records(
    model, samples: Sequence[EvalSample | Prompt], codec, settings: RunSettings, *, mapper=None, place=None
) -> Iterator[list[tuple[EvalSample | Prompt, dict]]]:
    """Generate a reply to every sample, a batch at a time: per batch, (sample, generation record)
    pairs in the batch's order (the reply, and the prefill's tokens, visual tokens kept and FLOPs:
    generation_record). `place(inputs, scoring)` puts a batch on devices (tokcomp_jax.eval.sharding)."""
    config = model.config
    if settings.prune is not None:  # an in-LLM method on a decoder too shallow for it: refused before compiling
        settings.prune.check_depth(config.text.num_hidden_layers)
    mapper_config = None if mapper is None else mapper.config  # the thread reads the config, never the module
    run = Generator(model, mapper if settings.prune is not None else None)
    for batch_samples, inputs, scoring in prefetch(prepared_batches(config, samples, codec, settings, mapper_config)):
        real_lengths = np.asarray(inputs.attention_mask).sum(-1)
        visual_counts = np.asarray(scoring.layout.visual_count)
        if place is not None:
            inputs, scoring = place(inputs, scoring)
        generation = run(
            inputs, max_new_tokens=settings.max_new_tokens, eos_token_id=codec.eos_token_id, scoring=scoring,
            prune=settings.prune,
        )  # fmt: skip
        generation = fetch(generation)
        yield [
            (
                sample,
                generation_record(
                    config, codec, generation, row, int(real_lengths[row]), int(visual_counts[row]), settings.prune
                ),
            )  # fmt: skip
            for row, sample in enumerate(batch_samples)
        ]


def evaluate(
    model,
    samples: Sequence[EvalSample],
    codec,
    settings: RunSettings,
    results: ResultsFile,
    *,
    mapper=None,
    place=None,
    stop_after_batches: int | None = None,
) -> list[dict]:
    """Replies and scores for every sample not yet in `results`; returns all records of the file
    that belong to `samples`, in sample order. `place` as in generate_records; `stop_after_batches`
    ends early, as a killed run would. Sample ids must be unique (results are kept by id): repeated
    ones are refused, as the CLIs refuse them."""
    repeated = sorted(sample_id for sample_id, count in Counter(s.sample_id for s in samples).items() if count > 1)
    if repeated:
        raise ValueError(f"sample ids must be unique; repeated: {repeated[:10]}")
    finished = results.finished_ids()
    todo = [sample for sample in samples if sample.sample_id not in finished]
    run_name = "unpruned" if settings.prune is None else settings.prune.run_name
    progress = tqdm(total=len(todo), desc=f"{samples[0].benchmark if samples else 'eval'} {run_name}", unit="sample")
    batches = generate_records(model, todo, codec, settings, mapper=mapper, place=place)
    for number, pairs in enumerate(batches):
        if stop_after_batches is not None and number >= stop_after_batches:
            break
        records = [_scored(sample, record) for sample, record in pairs]
        results.append(records)
        progress.update(len(records))
    progress.close()
    order = {sample.sample_id: position for position, sample in enumerate(samples)}
    return sorted((r for r in results.read() if r["sample_id"] in order), key=lambda r: order[r["sample_id"]])


def generation_record(config, codec, generation, row: int, length: int, visual: int, prune) -> dict:
    """Row `row` of a generation: the reply and what its prefill cost (tokens, visual tokens kept by
    an input-level method, FLOPs as a share of the unpruned prefill's)."""
    tokens = np.asarray(generation.tokens[row, : int(generation.lengths[row])])
    prefilled = int(generation.prefill_length[row])  # by the last layer
    if prune is not None and prune.inside_llm:
        flops = prune.layer_pruning(config.text.num_hidden_layers).prefill_flops(config.text, length, visual)
        visual_kept = None  # different at each stage
    else:
        flops = prefill_flops(config.text, prefilled)
        visual_kept = visual - (length - prefilled)
    return {
        "reply": codec.decode(tokens),
        "prefill_tokens": prefilled,
        "unpruned_tokens": length,
        "visual_tokens": visual,
        **({} if visual_kept is None else {"visual_kept": visual_kept}),  # input-level pruning: this sample's count
        "flops_pct": 100.0 * flops / prefill_flops(config.text, length),
    }


def _scored(sample: EvalSample, record: dict) -> dict:
    """A results-file record: the sample's identity and references, its generation record, the reply's score."""
    return {
        "sample_id": sample.sample_id,
        "benchmark": sample.benchmark,
        "reply": record["reply"],
        "score": score_reply(sample.metric, record["reply"], sample.answers, dict(sample.options)),
        "answers": list(sample.answers),
        "category": sample.category,
        "group": sample.group,
        **{key: value for key, value in record.items() if key != "reply"},
    }
