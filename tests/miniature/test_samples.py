"""Examples -> model inputs: prompts, answer targets, evidence tokens, the model preset."""

from __future__ import annotations

import numpy as np

from tokcomp_jax.data import vqa
from tokcomp_jax.miniature.samples import Samples, collate, miniature_config


def test_miniature_preset_uses_qwen2vl_rope_proportions_and_fits_the_vocabulary():
    config = miniature_config(
        width=128, layers=8, heads=4, kv_heads=2, mlp=256, vision_width=64, vision_depth=2, vision_heads=2
    )
    assert config.text.mrope_section == (4, 6, 6)  # Qwen2-VL's (16, 24, 24) at head_dim 32
    assert config.vision_end_token_id < config.text.vocab_size and config.image_token_id == len(vqa.VOCAB)


def test_samples_and_answer_targets(mini_model, mini_splits):
    samples = Samples(mini_model.config, mini_splits["test"][:3])[0:3]
    for sample, example in zip(samples, mini_splits["test"], strict=False):
        rows, cols = (side // vqa.CELL for side in example["image"].shape[:2])
        assert (sample["input_ids"] == mini_model.config.image_token_id).sum() == rows * cols
        assert sample["evidence"].shape == (rows * cols,)
        assert vqa.decode(sample["input_ids"][-len(example["question"].split()) :]) == example["question"]
        assert sample["pixel_values"].shape[0] == 4 * rows * cols
    batch = collate(samples, with_answers=True)
    for row, sample in enumerate(samples):
        prompt = len(sample["input_ids"])
        targets = batch["targets"][row]
        # the last prompt token predicts the answer, the answer predicts EOS; nothing else has a loss
        assert targets[prompt - 1] == sample["reference_ids"][0] and targets[prompt] == vqa.EOS_ID
        assert (np.delete(targets, [prompt - 1, prompt]) == -1).all()
        assert batch["input_ids"][row, prompt] == sample["reference_ids"][0]
