"""Each Qwen family's prompt side on its released files (tests/fixtures/released/) equals
transformers' own processor: `AutoProcessor.from_pretrained` on the same directory, its chat
template, `processor(text=..., images=..., videos=..., video_metadata=...)`.

Ids, masks, grids and second_per_grid_ts exactly. Pixels within 1e-6 (float32 normalisation in
another order): images of the PIL backend (`use_fast=False`), which is what the models' cards
prescribe (qwen-vl-utils resizes images with PIL); videos of transformers' torchvision video
processor on the CPU (qwen-vl-utils resizes frames with torchvision too).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tokcomp_jax.models.families import FAMILIES

pytest.importorskip("torchvision", reason="transformers' video processors need torchvision")
from transformers import AutoProcessor  # noqa: E402

RELEASED = Path(__file__).parents[1] / "fixtures" / "released"
FAMILIES_WITH_PROCESSORS = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava_onevision")
PROMPTS = (
    "What colour is the square?",
    "Décris l'image — 世界 😀, please.\nThen say \"yes\" or 'no'.",
    "two  spaces  and\ttabs\n\nand a blank line",
)
RNG = np.random.default_rng(0)
SMALL, LARGE = RNG.integers(0, 256, (40, 60, 3), np.uint8), RNG.integers(0, 256, (700, 1100, 3), np.uint8)
FRAMES = RNG.integers(0, 256, (8, 200, 300, 3), np.uint8)
MEDIA = {
    "text": {},
    "small image": {"images": [SMALL]},
    "large image": {"images": [LARGE]},
    "two images": {"images": [SMALL, LARGE]},
    "video": {"video": FRAMES[:4]},
    "video at 2 fps": {"video": FRAMES[:4], "video_fps": 2.0},
    "8 frames at 24 fps": {"video": FRAMES, "video_fps": 24.0},
}


def released_directory(family: str, root: Path) -> Path:
    """A checkpoint directory of the family's released side files (no weights: encoding needs none)."""
    directory = root / family
    if not directory.is_dir():
        shutil.copytree(RELEASED / family, directory, ignore=shutil.ignore_patterns("earlier"))
        for name in ("vocab.json", "merges.txt"):
            shutil.copyfile(RELEASED / "qwen_bpe" / name, directory / name)
    return directory


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    root = tmp_path_factory.mktemp("released")
    return lambda family: released_directory(family, root)


def transformers_inputs(directory: Path, prompt: str, images=(), video=None, video_fps=None) -> dict:
    """The reference: transformers' processor of the directory, as a user of transformers calls it."""
    processor = AutoProcessor.from_pretrained(directory, use_fast=False)
    content = [{"type": "image"}] * len(images) + [{"type": "video"}] * (video is not None)
    messages = [{"role": "user", "content": [*content, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    media = {"images": [list(images)]} if images else {}  # one prompt's images: a nested list
    if video is not None:
        media["videos"] = [video]
        if video_fps is not None:
            media["video_metadata"] = [{"fps": video_fps, "total_num_frames": len(video)}]
    return dict(processor(text=[text], return_tensors="np", **media))


@pytest.mark.parametrize("media", sorted(MEDIA))
@pytest.mark.parametrize("family_name", FAMILIES_WITH_PROCESSORS)
def test_encoding_equals_transformers_processor(family_name, media, released):
    directory = released(family_name)
    family = FAMILIES[family_name]
    chat = family.chat(
        family.read_config(directory), family.load_tokenizer(directory), family.read_side_files(directory)
    )
    for prompt in PROMPTS if media == "text" else PROMPTS[1:2]:
        ours = chat.encode(prompt, **MEDIA[media])
        reference = transformers_inputs(directory, prompt, **MEDIA[media])
        for key in ("input_ids", "attention_mask", "image_grid_thw", "video_grid_thw", "second_per_grid_ts"):
            if key in reference or key in ours:
                np.testing.assert_array_equal(ours[key], np.asarray(reference[key]).reshape(ours[key].shape), key)
        for key in ("pixel_values", "pixel_values_videos"):
            if key in reference:
                np.testing.assert_allclose(ours[key], reference[key], rtol=0, atol=1e-6, err_msg=key)
