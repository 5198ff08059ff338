"""One call from a model directory to pruned answers.

    pipe = tokcomp_jax.Pipeline.from_pretrained("checkpoints/qwen2-vl-2b")     # converted or HF directory
    answer = pipe.generate("What is in the picture?", images=["cat.jpg"], keep=0.25)
    answer.text, answer.visual_tokens_kept, answer.visual_tokens
    answers = pipe.generate(["Which colour?", "How many?"], images=[["a.png"], ["b.png"]])  # one batch

The model's own chat template, image and video processors and stop tokens come from the directory
(tokcomp_jax.models.common.released). Prompts are padded to power-of-two buckets, so a second call of
a similar size reuses the compiled graphs. The scorer is the mapper when one is given, else raw
first-layer attention (no training needed); `keep=1.0` answers unpruned. The lower-level API
(`tokcomp_jax.load`, `Family.chat`, `prepare_pruning`, `generate`) stays for everything else.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tokcomp_jax.eval.runner import RunSettings, plan_batches
from tokcomp_jax.eval.samples import load_image, rgb8
from tokcomp_jax.generate import Generator, check_positions
from tokcomp_jax.mapper.checkpoint import check_mapper_family, read_mapper_config
from tokcomp_jax.models.families import family_of
from tokcomp_jax.prune import PruneConfig, prepare_pruning
from tokcomp_jax.prune.methods import reads_mapper

DEFAULT_SCORER = "attention"  # raw layer-1 text-to-visual attention: training-free, strong (docs/results.md)


@dataclasses.dataclass(frozen=True)
class Answer:
    text: str
    visual_tokens: int  # the prompt's prunable visual tokens
    visual_tokens_kept: int  # of them, those the LLM's last layer read (all of them unpruned)
    prefill_tokens: int  # tokens the LLM's last layer prefilled
    tokens: np.ndarray  # [M] generated ids, up to and including the stop token


def as_pixels(image) -> np.ndarray:
    """An image as RGB uint8 [H, W, 3]: a path, encoded bytes, a PIL image or an array."""
    if isinstance(image, str | os.PathLike | bytes):
        return load_image(Path(image) if not isinstance(image, bytes) else image)
    if isinstance(image, Image.Image):
        return rgb8(image)
    return np.asarray(image)


def powers_of_two(smallest: int, largest: int) -> tuple[int, ...]:
    """Buckets smallest, 2 * smallest, ... up to the first at least `largest`."""
    buckets = [smallest]
    while buckets[-1] < largest:
        buckets.append(buckets[-1] * 2)
    return tuple(buckets)


class Pipeline:
    """A model, its chat (tokenizer, processors, stop ids) and optionally a trained mapper."""

    def __init__(self, model, chat, mapper=None, head_weights: tuple[float, ...] | None = None):
        self.model, self.chat, self.mapper, self.head_weights = model, chat, mapper, head_weights
        self.family = family_of(model.config)
        if mapper is not None:
            check_mapper_family(mapper.config, self.family.name, "given", "the model")
        self._generators: dict[bool, Generator] = {}

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike,
        mapper: str | os.PathLike | None = None,
        dtype: str | None = None,
        head_weights: str | os.PathLike | None = None,
    ) -> Pipeline:
        """The model of a converted or HF directory with its released side files, the mapper of a
        mapper directory (scripts/train_mapper.py's WORKDIR/mapper) if given, and HAWK's head weights
        (scripts/label.py --head_importance) if given: both are checked against the model's config
        before any weight is read."""
        from tokcomp_jax.explain.head_importance import read_head_weights
        from tokcomp_jax.mapper import load_mapper
        from tokcomp_jax.models.checkpoint import load, read_model_config

        family, config, _ = read_model_config(directory)
        if mapper is not None:
            check_mapper_family(read_mapper_config(mapper), family.name, mapper, directory)
        if head_weights is not None:
            head_weights = read_head_weights(head_weights, family.name, config.text.num_attention_heads)
        model = load(directory, dtype=dtype)
        tokenizer = family.load_tokenizer(directory)
        chat = family.chat(model.config, tokenizer, family.read_side_files(directory))
        return cls(model, chat, load_mapper(mapper) if mapper is not None else None, head_weights)

    def generate(
        self,
        prompts: str | Sequence[str],
        images=None,
        video=None,
        video_fps: float | None = None,
        *,
        keep: float = 0.5,
        scorer: str | None = None,
        layer: int = 2,
        max_new_tokens: int = 32,
    ) -> Answer | list[Answer]:
        """Greedy answers, pruned to `keep` of the visual tokens by `scorer` (default: the mapper if
        the pipeline has one, else raw first-layer attention; FastV / PyramidDrop / DART prune from
        decoder `layer`). One prompt: `images` a list of images, `video` [F, H, W, C] frames taken at
        `video_fps`. Several prompts (one batch): `images` / `video` / `video_fps` one entry per prompt."""
        single = isinstance(prompts, str)
        prompts = [prompts] if single else list(prompts)
        images, videos, rates = (
            ([images or ()], [video], [video_fps])
            if single
            else self._per_prompt(len(prompts), images, video, video_fps)
        )
        rows = [
            self.chat.encode(prompt, images=[as_pixels(i) for i in media], video=clip, video_fps=rate)
            for prompt, media, clip, rate in zip(prompts, images, videos, rates, strict=True)
        ]
        prune = self._prune_config(keep, scorer, layer)
        answers = self._answer(rows, prune, max_new_tokens)
        return answers[0] if single else answers

    @staticmethod
    def _per_prompt(count: int, images, video, video_fps) -> tuple[list, list, list]:
        """Per-prompt media lists for a batch of `count` prompts, each checked to have one entry per prompt."""
        media = {"images": images, "video": video, "video_fps": video_fps}
        for name, value in media.items():
            if value is not None and len(value) != count:
                raise ValueError(f"{name} must hold one entry per prompt ({count}), got {len(value)}")
        return (
            [list(i or ()) for i in images or [()] * count],
            list(video or [None] * count),
            list(video_fps or [None] * count),
        )

    def _prune_config(self, keep: float, scorer: str | None, layer: int) -> PruneConfig | None:
        if keep == 1.0 and scorer is None:
            return None
        scorer = scorer or ("mapper" if self.mapper is not None else DEFAULT_SCORER)
        if reads_mapper(scorer) and self.mapper is None:
            raise ValueError(f"scorer {scorer!r} needs a mapper: Pipeline.from_pretrained(directory, mapper=DIR)")
        weights = self.head_weights if scorer == "hawk" else None
        return PruneConfig(scorer=scorer, keep_ratio=keep, layer=layer, head_weights=weights)

    def _answer(self, rows: list[dict], prune: PruneConfig | None, max_new_tokens: int) -> list[Answer]:
        config = self.model.config
        limit = config.text.max_position_embeddings
        settings = RunSettings(
            batch_size=len(rows), text_buckets=powers_of_two(64, limit), visual_buckets=powers_of_two(64, limit),
            max_new_tokens=max_new_tokens, prune=prune,
        )  # fmt: skip
        mapper = self.mapper if prune is not None and reads_mapper(prune.scorer) else None
        answers: list[Answer | None] = [None] * len(rows)
        for buckets, indices in plan_batches(config, rows, settings):
            batch_rows = [rows[i] for i in indices]
            batch = self.family.collate(batch_rows)
            inputs, scoring = prepare_pruning(config, batch, buckets, mapper=None if mapper is None else mapper.config)
            check_positions(config, inputs.position_ids, inputs.attention_mask, max_new_tokens)
            run = self._generators.setdefault(mapper is not None, Generator(self.model, mapper))
            out = run(inputs, max_new_tokens=max_new_tokens, eos_token_id=self.chat.eos_token_id, scoring=scoring,
                      prune=prune)  # fmt: skip
            lengths, prefilled = np.asarray(out.lengths), np.asarray(out.prefill_length)
            real, visual = np.asarray(inputs.attention_mask).sum(-1), np.asarray(scoring.layout.visual_count)
            for row, index in enumerate(indices):
                tokens = np.asarray(out.tokens[row, : int(lengths[row])])
                dropped = int(real[row] - prefilled[row])  # pruned at the input or by the last layer
                answers[index] = Answer(
                    text=self.chat.decode(tokens), visual_tokens=int(visual[row]),
                    visual_tokens_kept=int(visual[row]) - dropped, prefill_tokens=int(prefilled[row]), tokens=tokens,
                )  # fmt: skip
        return answers
