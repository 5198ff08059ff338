"""The tokcomp_jax model for lmms-eval (a "simple" model): a converted or HF checkpoint of any
family, unpruned or pruned by any registered method, run by the project's own batched runner.

    lmms-eval --model tokcomp_jax --batch_size 8 --tasks TASK \\
        --model_args pretrained=DIR,scorer=mapper,mapper=MAPPER_DIR,keep=0.25

Model args: `pretrained` (directory); `scorer` (a registered method, "none" for the unpruned model)
with `keep` (its keep ratio), `mapper` (the mapper scorers' trained mapper), `head_weights` (HAWK's
file), `budget` ("fixed" or "mass:TAU[:MIN]"); `dtype`; `attention` (IMPLEMENTATIONS); `frames` (per
video); `max_new_tokens` (where a task sets none); `text_buckets` / `visual_buckets` ("64-128-256");
`mesh_model` (devices per model copy: the model is sharded over this host's devices).

- generate_until: each request's context is the user turn under the family's chat template, with
  its visuals (PIL images; a video path gives `frames` frames); greedy decoding by
  tokcomp_jax.eval.runner.generate_records (buckets, one compiled graph per bucket, `batch_size`
  rows); `max_new_tokens` from the task, the reply cut at the first of its `until` strings. Sampling
  kwargs are not honoured: replies are greedy (a warning says so, once).
- loglikelihood: the continuation's tokens teacher-forced after the prompt (after the assistant
  turn's start), pruned as generation prunes but in mask mode (every position in place; the same
  values as gather mode); the result is the continuation's negative log-likelihood summed over its
  tokens (lmms-eval picks the choice with the smallest) and whether greedy decoding gives it.
- Each logged sample's `token_counts` carries its prefill tokens (prompt, and as pruned), its
  visual tokens and those kept, and its prefill FLOPs as a percentage of the unpruned prefill's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from lmms_eval.api.instance import GenerationResult, TokenCounts
from lmms_eval.api.model import lmms
from PIL import Image
from tqdm import tqdm

import tokcomp_jax
from tokcomp_jax.eval.codecs import ChatCodec
from tokcomp_jax.eval.runner import RunSettings, generate_records, prepared_batches
from tokcomp_jax.eval.samples import Prompt, VideoClip
from tokcomp_jax.eval.sharding import make_mesh, place_batch, shard_model
from tokcomp_jax.explain.head_importance import read_head_weights
from tokcomp_jax.explain.relevance import answer_log_probs, append_answers
from tokcomp_jax.mapper import load_mapper
from tokcomp_jax.models.common.attention import configure_attention
from tokcomp_jax.models.families import family_of
from tokcomp_jax.prune import PruneConfig, pruned_forward
from tokcomp_jax.prune.methods import method, reads_mapper

log = logging.getLogger(__name__)

SAMPLING_KWARGS = ("do_sample", "temperature", "top_p", "top_k", "num_beams")


@dataclasses.dataclass
class PrefillCounts(TokenCounts):
    """lmms-eval's per-sample token counts, with what the prefill kept (tokcomp_jax's generation record)."""

    prefill_tokens: int = 0
    unpruned_tokens: int = 0
    visual_tokens: int = 0
    visual_kept: int | None = None  # input-level methods: this sample's count; in-LLM: differs per stage
    flops_pct: float = 100.0

    def to_dict(self) -> dict:
        return {**super().to_dict(), **{f.name: getattr(self, f.name) for f in dataclasses.fields(PrefillCounts)}}


def buckets_arg(value, name: str) -> tuple[int, ...]:
    """ "64-128-256" (lmms-eval's --model_args split on commas) or one number -> (64, 128, 256)."""
    try:
        sizes = tuple(sorted(int(size) for size in str(value).split("-")))
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected sizes joined by '-', e.g. 64-128-256") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"{name}={value!r}: sizes must be positive")
    return sizes


class TokcompJax(lmms):
    is_simple = True

    def __init__(
        self,
        pretrained: str,
        scorer: str = "none",
        keep: float | None = None,
        mapper: str | None = None,
        head_weights: str | None = None,
        budget: str = "fixed",
        dtype: str | None = None,
        attention: str = "auto",
        frames: int = 8,
        max_new_tokens: int = 128,
        text_buckets="64-128-256-512",
        visual_buckets="64-256-1024-4096",
        batch_size: int | str = 8,
        mesh_model: int = 1,
        **unused,
    ):
        super().__init__()
        if unused:
            log.warning("tokcomp_jax ignores the model args %s", sorted(unused))
        check_pruning_args(scorer, keep, mapper)  # before anything loads
        self.jax_model = tokcomp_jax.load(pretrained, dtype=dtype)
        configure_attention(self.jax_model, attention)
        config = self.jax_model.config
        self.family = family_of(config)
        self.tokenizer = self.family.load_tokenizer(pretrained)
        self.codec = ChatCodec(config, self.tokenizer, pretrained)
        self.prune = self._prune_config(scorer, keep, budget, head_weights)
        self.mapper = load_mapper(mapper) if self.prune is not None and reads_mapper(scorer) else None
        self.settings = RunSettings(
            batch_size=int(batch_size), text_buckets=buckets_arg(text_buckets, "text_buckets"),
            visual_buckets=buckets_arg(visual_buckets, "visual_buckets"), max_new_tokens=int(max_new_tokens),
            prune=self.prune,
        )  # fmt: skip
        self.frames = int(frames)
        devices = jax.local_devices()  # this host's: one process, one model copy per `mesh_model` devices
        self.mesh = make_mesh(model=int(mesh_model), devices=devices) if len(devices) > 1 else None
        self.place = None if self.mesh is None else functools.partial(place_batch, self.mesh)
        if self.mesh is not None:
            shard_model(self.jax_model, self.mesh)
            if self.mapper is not None:
                shard_model(self.mapper, self.mesh)
        scored = self.prune if self.prune is None else dataclasses.replace(self.prune, mode="mask")
        self._logits = nnx.jit(functools.partial(_logits, prune=scored))
        self._warned_sampling = False

    def _prune_config(self, scorer: str, keep, budget: str, head_weights) -> PruneConfig | None:
        if scorer == "none":
            return None
        weights = None
        if head_weights is not None:
            config = self.jax_model.config
            weights = read_head_weights(head_weights, self.family.name, config.text.num_attention_heads)
        return PruneConfig(scorer, float(keep), budget=budget, head_weights=weights)

    def _on_mesh(self):
        return contextlib.nullcontext() if self.mesh is None else jax.set_mesh(self.mesh)

    def _prompt(self, sample_id: str, context: str, visuals) -> Prompt:
        """lmms-eval's context and doc_to_visual output (None, or a list of PIL images / video paths)."""
        images, videos = [], []
        for visual in visuals or []:
            if isinstance(visual, Image.Image):
                images.append(visual)
            elif isinstance(visual, str | Path):
                videos.append(VideoClip(Path(visual), num_frames=self.frames))
            else:
                raise ValueError(
                    f"sample {sample_id}: a visual of type {type(visual).__name__} (images and video paths only)"
                )
        if len(videos) > 1 or (videos and images):
            raise ValueError(
                f"sample {sample_id}: one video alone, or images; got {len(videos)} videos, {len(images)} images"
            )
        return Prompt(sample_id, context, images=tuple(images), video=videos[0] if videos else None)

    def _request(self, request, index: int) -> tuple[Prompt, object]:
        """(the request's Prompt, its second argument: generation kwargs or a continuation)."""
        context, second, doc_to_visual, doc_id, task, split = request.args
        doc = self.task_dict[task][split][doc_id]
        visuals = doc_to_visual(doc) if doc_to_visual is not None else None
        second = second(doc) if callable(second) else second
        return self._prompt(str(index), context, visuals), second

    def generate_until(self, requests) -> list[GenerationResult]:
        prompts, groups = [], {}
        for index, request in enumerate(requests):
            prompt, gen_kwargs = self._request(request, index)
            prompts.append(prompt)
            self._warn_sampling(gen_kwargs)
            until = gen_kwargs.get("until") or []
            key = (
                int(gen_kwargs.get("max_new_tokens", self.settings.max_new_tokens)),
                tuple([until] if isinstance(until, str) else until),
            )
            groups.setdefault(key, []).append(index)
        results: list[GenerationResult | None] = [None] * len(requests)
        progress = tqdm(total=len(requests), desc="tokcomp_jax generate_until", disable=self.rank != 0)
        for (max_new_tokens, until), indices in groups.items():
            settings = dataclasses.replace(self.settings, max_new_tokens=max_new_tokens)
            with self._on_mesh():
                batches = generate_records(self.jax_model, [prompts[i] for i in indices], self.codec, settings,
                                           mapper=self.mapper, place=self.place)  # fmt: skip
                for pairs in batches:
                    for prompt, record in pairs:
                        counts = {k: v for k, v in record.items() if k != "reply"}
                        results[int(prompt.sample_id)] = GenerationResult(
                            text=cut_at(record["reply"], until),
                            token_counts=PrefillCounts(input_tokens=record["unpruned_tokens"], **counts),
                        )
                    progress.update(len(pairs))
        progress.close()
        return results

    def loglikelihood(self, requests) -> list[GenerationResult]:
        """Per request (negative log-likelihood of its continuation, whether it is the greedy one),
        wrapped as lmms-eval 0.7.3 passes a GenerationResult's text through untouched (a bare tuple
        it would turn into a string). Batched by the runner's prepared_batches, as generation is."""
        prompts, continuations = [], {}
        for index, request in enumerate(requests):
            prompt, continuation = self._request(request, index)
            ids = self.tokenizer.encode(continuation, add_special_tokens=False)
            if not ids:
                raise ValueError(f"request {index}: the continuation {continuation!r} encodes to no token")
            prompts.append(prompt)
            continuations[prompt.sample_id] = ids
        forced = TeacherForced(self.codec, continuations)
        settings = dataclasses.replace(self.settings, max_new_tokens=1)  # positions checked as for one more token
        mapper_config = None if self.mapper is None else self.mapper.config
        results = [None] * len(requests)
        progress = tqdm(total=len(requests), desc="tokcomp_jax loglikelihood", disable=self.rank != 0)
        for batch, inputs, scoring in prepared_batches(self.jax_model.config, prompts, forced, settings, mapper_config):
            spans = [forced.spans[prompt.sample_id] for prompt in batch]
            positions = np.full((inputs.input_ids.shape[0], max(map(len, spans))), -1, np.int32)  # padding rows: none
            for row, span in enumerate(spans):
                positions[row, : len(span)] = span
            if self.place is not None:
                inputs, scoring = self.place(inputs, scoring)
            with self._on_mesh():
                logits = self._logits(self.jax_model, self.mapper, inputs, scoring)
            log_probs = np.asarray(answer_log_probs(logits, inputs.input_ids, positions))
            greedy = np.asarray(is_greedy(logits, inputs.input_ids, positions))
            for row, prompt in enumerate(batch):
                results[int(prompt.sample_id)] = GenerationResult(
                    text=(-float(log_probs[row].sum()), bool(greedy[row]))
                )
            progress.update(len(batch))
        progress.close()
        return results

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("tokcomp_jax answers single-round tasks (generate_until, loglikelihood)")

    def _warn_sampling(self, gen_kwargs: dict) -> None:
        sampling = gen_kwargs.get("do_sample") or float(gen_kwargs.get("temperature") or 0) > 0
        if sampling and not self._warned_sampling:
            log.warning("tokcomp_jax decodes greedily; the task's sampling kwargs %s are not honoured",
                        {k: gen_kwargs[k] for k in SAMPLING_KWARGS if k in gen_kwargs})  # fmt: skip
            self._warned_sampling = True

    def clean(self):
        """lmms-eval's clean-up drops torch modules; this model holds none, and keeps its compiled graphs."""


@dataclasses.dataclass
class TeacherForced:
    """A codec whose rows carry each prompt's continuation after it (append_answers), for the runner's
    prepared_batches; `spans` collects each encoded prompt's continuation positions, by sample id."""

    codec: ChatCodec
    continuations: dict[str, list[int]]
    spans: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def encode(self, prompt: Prompt) -> dict[str, np.ndarray]:
        row, positions = append_answers(self.codec.encode(prompt), [self.continuations[prompt.sample_id]])
        self.spans[prompt.sample_id] = positions[0]
        return row


def check_pruning_args(scorer: str, keep, mapper) -> None:
    """Refuse model args that cannot make a run, naming the one to add or drop."""
    if scorer == "none":
        if keep is not None:
            raise ValueError("keep is a pruning ratio: give a scorer with it (scorer=mapper, attention, ...)")
        return
    method(scorer)  # an unknown name: refused, naming the registered ones
    if keep is None:
        raise ValueError(f"scorer={scorer} needs keep=RATIO (the share of visual tokens kept, in (0, 1])")
    if reads_mapper(scorer) and mapper is None:
        raise ValueError(f"scorer={scorer} needs mapper=DIR (a trained mapper), or choose a baseline scorer")


def _logits(model, mapper, inputs, scoring, prune: PruneConfig | None):
    """Logits [B, T, V] of a teacher-forced batch, every position in place (pruned in mask mode)."""
    if prune is None:
        return model(inputs).logits
    return pruned_forward(model, mapper, inputs, scoring, prune).logits


def is_greedy(logits, input_ids, positions):
    """[B]: whether every continuation token at `positions` [B, M] (-1: none) is its position's argmax."""
    predicted = np.asarray(logits).argmax(-1)
    ids = np.asarray(input_ids)
    rows = np.arange(ids.shape[0])[:, None]
    before = np.maximum(positions - 1, 0)
    hits = (predicted[rows, before] == ids[rows, np.maximum(positions, 0)]) | (positions < 0)
    return hits.all(-1)


def cut_at(reply: str, until: tuple[str, ...]) -> str:
    """The reply up to the first of the stop strings (as transformers' stop strings end a generation)."""
    ends = [reply.find(stop) for stop in until if stop and stop in reply]
    return reply[: min(ends)] if ends else reply
