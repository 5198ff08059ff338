"""Each family's prompt side: the checkpoint's preprocessor_config.json is read, VILA1.5's
conversation templates and placeholders, LLaVA-OneVision's token counts and tile padding."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from configs.models import llava_onevision, vila
from conversion.tiny import save_tiny_checkpoint, tiny_hf_config, tiny_tokenizer
from tokcomp_jax.models.common.released import SideFiles
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.models.vila.config import VILA_IMAGE_PLACEHOLDER
from tokcomp_jax.models.vila.processor import VICUNA_V1_SYSTEM, conversation

IMAGE = np.random.default_rng(0).integers(0, 256, (224, 336, 3), dtype=np.uint8)


@pytest.mark.parametrize("preprocessor", [{"max_pixels": 112 * 112}, {"size": {"longest_edge": 112 * 112}}])
def test_qwen2_vl_reads_its_pixel_limits(preprocessor):
    """The released file names max_pixels at the top level, later ones in `size`; either bounds the
    image's tokens (224 x 336 pixels: 96 tokens by default, at most 16 within 112 x 112 pixels)."""
    config, family = Qwen2VLConfig.from_hf_config(tiny_hf_config().to_dict()), FAMILIES["qwen2_vl"]
    tokenizer = tiny_tokenizer("qwen2_vl")
    count = lambda chat: int((chat.encode("what ?", images=[IMAGE])["input_ids"] == config.image_token_id).sum())  # noqa: E731
    assert count(family.chat(config, tokenizer)) == 96
    assert count(family.chat(config, tokenizer, SideFiles(preprocessor=preprocessor))) <= 16


def test_the_checkpoint_files_are_where_each_family_keeps_them(tmp_path):
    for name in FAMILIES:
        save_tiny_checkpoint(name, tmp_path / name)
        family = FAMILIES[name]
        assert family.read_side_files(tmp_path / name).preprocessor, name
        assert (family.tokenizer_directory(tmp_path / name) / "tokenizer.json").is_file(), name


def test_vila_prompt_is_its_conversation_with_one_placeholder_per_image():
    config, family = vila.tiny(), FAMILIES["vila"]
    tokenizer = tiny_tokenizer("vila")
    batch = family.chat(config, tokenizer).encode("what colour is the square ?", images=[IMAGE, IMAGE])
    ids = batch["input_ids"][0]
    assert ids[0] == tokenizer.bos_token_id and (ids == VILA_IMAGE_PLACEHOLDER).sum() == 2 * config.tokens_per_image
    assert batch["pixel_values"].shape == (2, 3, config.vision.image_size, config.vision.image_size)
    text = conversation(tokenizer, "<image>\n<image>\nwhat colour is the square ?")
    assert text == f"{VICUNA_V1_SYSTEM} USER: <image>\n<image>\nwhat colour is the square ? ASSISTANT:"


def test_vila_uses_llama_3_where_the_vocabulary_has_eot():
    tokenizer = tiny_tokenizer("vila")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|eot_id|>"]})
    text = conversation(tokenizer, "<image>\nhi")
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert text.endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


def test_llava_counts_match_the_plan_and_collate_pads_tiles(tmp_path):
    config, family = llava_onevision.tiny(), FAMILIES["llava_onevision"]
    save_tiny_checkpoint("llava_onevision", tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    chat = family.chat(config, tokenizer, family.read_side_files(tmp_path))
    assert list(chat.processor.image_mean) == [0.5] * 3  # from the checkpoint, not transformers' CLIP default
    wide, small = chat.encode("what ?", images=[IMAGE]), chat.encode("what ?", images=[IMAGE[:60, :60]])
    batch = family.collate([wide, small])
    assert batch["pixel_values"].shape[:2] == (2, wide["pixel_values"].shape[1])
    for row in (wide, small):  # the chat's count is what the model's plan places
        inputs, _ = family.prepare(config, row, family.buckets(config, row, 64, 256, 1))
        placed = np.asarray(inputs.visual_token_mask).sum()
        assert placed == (row["input_ids"] == config.image_token_id).sum() > 0
