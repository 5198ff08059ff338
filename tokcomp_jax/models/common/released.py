"""A checkpoint's side files as transformers reads them: the tokenizer with the processor's chat
template, the image and video preprocessor configs, and the generation config's stop ids.

A released directory holds more than weights, and what a run reads follows transformers' own
`AutoProcessor.from_pretrained` for the same directory:

- the chat template: the processor's (`chat_template.json`, then `chat_template.jinja`) before the
  tokenizer's (`tokenizer_config.json`); Qwen2.5-VL's tokenizer_config.json holds the text-only
  Qwen2.5 template, its chat_template.json the one that renders images and videos;
- `preprocessor_config.json` for images, `video_preprocessor_config.json` for videos;
- `generation_config.json`'s `eos_token_id` (an id or a list) for when a reply ends.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from tokcomp_jax.files import CheckpointError, read_json_object
from tokcomp_jax.models.common.chat import end_of_turn_id

PROCESSOR_TEMPLATE_JSON, TEMPLATE_JINJA = "chat_template.json", "chat_template.jinja"
PREPROCESSOR, VIDEO_PREPROCESSOR, GENERATION = (
    "preprocessor_config.json", "video_preprocessor_config.json", "generation_config.json"
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class SideFiles:
    """The JSON side files of a checkpoint ({} for each one it lacks)."""

    preprocessor: dict = dataclasses.field(default_factory=dict)  # preprocessor_config.json
    video_preprocessor: dict = dataclasses.field(default_factory=dict)  # video_preprocessor_config.json, else
    # preprocessor_config.json: transformers' AutoVideoProcessor falls back to the image processor's file
    generation: dict = dataclasses.field(default_factory=dict)  # generation_config.json


def read_json_file(path: Path) -> dict:
    """A JSON object file, or {} when it does not exist."""
    return read_json_object(path) if path.is_file() else {}


def read_side_files(
    preprocessor_dir: str | os.PathLike | None, generation_dir: str | os.PathLike | None = None
) -> SideFiles:
    """The preprocessor files of `preprocessor_dir` and generation_config.json of `generation_dir`
    (default: the same directory); None reads nothing."""
    if preprocessor_dir is None:
        return SideFiles()
    directory = Path(preprocessor_dir)
    generation = Path(generation_dir) if generation_dir is not None else directory
    preprocessor = read_json_file(directory / PREPROCESSOR)
    video = (
        read_json_file(directory / VIDEO_PREPROCESSOR) if (directory / VIDEO_PREPROCESSOR).is_file() else preprocessor
    )
    return SideFiles(preprocessor, video, read_json_file(generation / GENERATION))


def processor_chat_template(directory: str | os.PathLike) -> str | None:
    """The processor's chat template of a directory in transformers' order: chat_template.json's
    `chat_template`, else chat_template.jinja; None where it has neither."""
    directory = Path(directory)
    if (legacy := directory / PROCESSOR_TEMPLATE_JSON).is_file():
        template = read_json_object(legacy).get("chat_template")
        if not isinstance(template, str):
            raise CheckpointError(f"{legacy}: field 'chat_template' must be a string")
        return template
    if (jinja := directory / TEMPLATE_JINJA).is_file():
        return jinja.read_text(encoding="utf-8")
    return None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def check_tokenizer_directory(tokenizer_dir: str | os.PathLike) -> None:
    """Refuse a directory that is missing or holds none of TOKENIZER_FILES (transformers would answer
    "You need to have sentencepiece or tiktoken installed"), naming a subdirectory that holds them."""
    tokenizer_dir = Path(tokenizer_dir)
    if not tokenizer_dir.is_dir():
        raise CheckpointError(f"tokenizer directory {tokenizer_dir} does not exist")
    if any((tokenizer_dir / name).is_file() for name in TOKENIZER_FILES):
        return
    inner = [
        d for d in sorted(tokenizer_dir.iterdir()) if d.is_dir() and any((d / n).is_file() for n in TOKENIZER_FILES)
    ]
    hint = f"; {inner[0]} holds one: pass that directory" if inner else ""
    raise CheckpointError(
        f"{tokenizer_dir} holds no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)}){hint}"
    )


def load_tokenizer(tokenizer_dir: str | os.PathLike, template_dir: str | os.PathLike | None = None):
    """transformers' tokenizer of a local directory, with the chat template `AutoProcessor` would use
    for `template_dir` (default: the tokenizer's directory) where the processor has its own."""
    from transformers import AutoTokenizer

    tokenizer_dir = Path(tokenizer_dir)
    check_tokenizer_directory(tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    return with_processor_template(tokenizer, template_dir if template_dir is not None else tokenizer_dir)


def with_processor_template(tokenizer, directory: str | os.PathLike):
    """The tokenizer, its chat template replaced by the processor's of `directory` where there is one."""
    template = processor_chat_template(directory)
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


def stop_token_ids(tokenizer, generation: dict | None = None) -> tuple[int, ...]:
    """The ids that end a reply: the chat's end-of-turn token (`<|im_end|>`, `<|eot_id|>`, else the
    tokenizer's EOS), then every id of generation_config.json's `eos_token_id`, without repeats."""
    ids = [end_of_turn_id(tokenizer)]
    configured = (generation or {}).get("eos_token_id")
    ids += [configured] if isinstance(configured, int) else list(configured or [])
    stops = tuple(dict.fromkeys(int(i) for i in ids if i is not None))
    if not stops:
        raise ValueError("the tokenizer has no EOS token and generation_config.json names no eos_token_id")
    return stops
