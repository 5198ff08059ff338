"""The Family contract: everything a family-specific step needs, answered by the family itself.

Code outside a family's folder never asks which family it holds; it asks the family:

    family = family_of(model.config)                         # tokcomp_jax.models.families
    tokenizer = family.load_tokenizer(checkpoint)        # with the processor's chat template
    chat = family.chat(model.config, tokenizer, family.read_side_files(checkpoint))
    batch = family.collate([chat.encode(prompt, images=[image]) for prompt, image in pairs])
    inputs, layout = family.prepare(model.config, batch, buckets)   # host: padded, jit-ready

A family is one folder (models/<family>/: config, modeling, params, processor, family) and one
entry in `FAMILIES` (models/families.py). Its model inputs carry their own `BATCH_AXES` (field ->
batch axis) for sharding. Its `conversion/` side (the PyTorch reference that
`--verify` compares with) is registered in conversion/references.py.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax.models.common.released import SideFiles, load_tokenizer, read_side_files
from tokcomp_jax.models.layout import Buckets, VisualLayout
from tokcomp_jax.models.loading import NameMap


def tile_bucket(tiles: int, batch_size: int) -> int:
    """The tile bucket of a batch of rows like one of `tiles` tiles (SigLIP families): each row's tiles
    rounded up to a power of two, so a few buckets cover every image size."""
    return batch_size * (1 << max(tiles - 1, 0).bit_length())


class Family(abc.ABC):
    """One MLLM family. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    display_name: ClassVar[str] = ""  # how messages name it where its name is not its release's (VILA1.5)
    hf_model_types: ClassVar[tuple[str, ...]]  # config.json model_type values of its checkpoints
    config_class: ClassVar[type]
    model: ClassVar[type]  # the nnx.Module class
    checkpoint_parts: ClassVar[tuple[str, ...]] = ()  # subdirectories holding the weights ("<part>/" names)
    tokenizer_subdir: ClassVar[str] = ""  # where a HF checkpoint keeps its tokenizer files
    processor_subdirs: ClassVar[tuple[str, ...]] = ("",)  # where it keeps tokenizer and preprocessor files
    tokens_by_column: ClassVar[bool] = False  # whether token_grids' grids hold their tokens column by column

    # --- checkpoints ------------------------------------------------------------------------
    def read_config(self, directory: str | os.PathLike) -> Any:
        """The model config of a HF checkpoint directory (its config.json, as transformers reads it)."""
        return self.config_class.from_hf_config(json.loads((Path(directory) / "config.json").read_text()))

    def config_from_dict(self, data: dict[str, Any]) -> Any:
        """The inverse of `config.to_dict()` (the form stored beside converted checkpoints)."""
        return self.config_class.from_dict(data)

    @abc.abstractmethod
    def name_map(self, config: Any) -> NameMap:
        """Checkpoint tensor names -> Flax paths."""

    def builder(self, config: Any, dtype: jnp.dtype) -> Callable[[], nnx.Module]:
        """A zero-argument constructor (for `nnx.eval_shape`)."""
        return lambda: self.model(config, dtype=dtype, rngs=nnx.Rngs(0))

    # --- prompts and media (host) -----------------------------------------------------------
    def tokenizer_directory(self, checkpoint: str | os.PathLike) -> Path:
        """Where a HF checkpoint keeps its tokenizer: `tokenizer_subdir` when present (VILA1.5: llm/)."""
        inner = Path(checkpoint) / self.tokenizer_subdir
        return inner if self.tokenizer_subdir and inner.is_dir() else Path(checkpoint)

    def load_tokenizer(self, checkpoint: str | os.PathLike, tokenizer_dir: str | os.PathLike | None = None):
        """The checkpoint's tokenizer as transformers' processor holds it: from `tokenizer_dir` (default:
        tokenizer_directory), with the processor's chat template of the checkpoint where it has one."""
        return load_tokenizer(tokenizer_dir or self.tokenizer_directory(checkpoint), template_dir=checkpoint)

    def read_side_files(self, checkpoint: str | os.PathLike | None) -> SideFiles:
        """The checkpoint's preprocessor, video preprocessor and generation configs ({} each it lacks)."""
        return read_side_files(checkpoint)

    @abc.abstractmethod
    def chat(self, config: Any, tokenizer, files: SideFiles | None = None):
        """The family's prompt side: an object with `encode(prompt, images=(), video=None, video_fps=None)
        -> dict` (video_fps: the rate the frames were taken at, None where unknown)
        (a one-row transformers-style batch), `decode(tokens) -> str` and `eos_token_id` (the tuple of
        ids a reply ends with), using the tokenizer's chat template, the image and video processors
        `files` describe and their generation config; the family's defaults where they are silent."""

    @abc.abstractmethod
    def collate(self, rows: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """One-row batches -> one right-padded batch, media packed in row order."""

    @abc.abstractmethod
    def buckets(self, config: Any, row: dict[str, np.ndarray], text: int, visual: int, batch_size: int) -> Buckets:
        """The static sizes of a batch of `batch_size` rows like `row`, given the text and visual
        buckets its token counts fall in (vision-tower blocks or tiles included)."""

    # --- pruning (host) ---------------------------------------------------------------------
    def visual_token_ids(self, config: Any) -> tuple[int, ...]:
        """The input ids that mark visual tokens."""
        return (config.image_token_id, config.video_token_id)

    def token_counts(self, config: Any, row: dict[str, np.ndarray]) -> tuple[int, int]:
        """(tokens never pruned: text and fixed visual tokens, prunable visual tokens) of a one-row batch:
        what its text and visual buckets must hold."""
        ids = np.asarray(row["input_ids"])[0]
        visual = int(np.isin(ids, self.visual_token_ids(config)).sum())
        return len(ids) - visual, visual

    @abc.abstractmethod
    def prepare(self, config: Any, batch: dict[str, np.ndarray], buckets: Buckets) -> tuple[Any, VisualLayout]:
        """(model inputs, VisualLayout) of a batch whose ids are already padded to buckets.sequence.
        The layout leaves out the visual tokens that are never pruned."""

    @abc.abstractmethod
    def token_grids(self, config: Any, batch: dict[str, np.ndarray], counts: np.ndarray, layout: str) -> list:
        """Per sample, the (frames, rows, cols) grids of its prunable visual tokens, in sequence order,
        for a mapper of `layout` ("grid" or "sequence"); counts [B] prunable visual tokens per sample.
        A family whose tokens form grids returns them for either layout; one whose tokens do not
        returns [[1, 1, count]] for "sequence" and refuses "grid"."""
