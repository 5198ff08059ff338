"""Inputs from images, video frames and text through transformers' image processor and a chat template."""

from __future__ import annotations

import numpy as np
import pytest

from tokcomp_jax.models import prepare_inputs
from tokcomp_jax.models.qwen2_vl.processor import build_inputs, image_processor, process_images, process_video


def test_video_pairs_consecutive_frames_into_temporal_patches(tiny_qwen2vl):
    _, _, model = tiny_qwen2vl
    processor = image_processor(model.config)
    frames = np.random.default_rng(0).integers(0, 256, (3, 56, 84, 3), dtype=np.uint8)  # odd: last repeats
    video, grid = process_video(processor, frames)
    assert grid.tolist() == [[2, 4, 6]]
    per_frame = [process_images(processor, [frame])[0] for frame in frames[[0, 1, 2, 2]]]
    video = video.reshape(2, 24, 3, 2, 14, 14)  # [t, patch, C, T, p, p]
    for step in range(2):
        for offset in range(2):
            single = per_frame[2 * step + offset].reshape(24, 3, 2, 14, 14)[:, :, 0]
            np.testing.assert_array_equal(video[step, :, :, offset], single)


def test_build_inputs_expands_pads_and_feeds_the_model(tiny_qwen2vl, tokenizer):
    _, _, model = tiny_qwen2vl
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (57, 91, 3), dtype=np.uint8), rng.integers(0, 256, (120, 60, 3), dtype=np.uint8)]
    video = rng.integers(0, 256, (4, 56, 56, 3), dtype=np.uint8)
    inputs = build_inputs(
        model.config, tokenizer, image_processor(model.config), "what colour is the square ?", images, video
    )
    ids = inputs["input_ids"][0]
    image_tokens = int(inputs["image_grid_thw"].prod(-1).sum()) // 4
    assert (ids == 250).sum() == image_tokens and (ids == 251).sum() == int(inputs["video_grid_thw"].prod()) // 4
    assert (ids == 252).sum() == 3 and (ids == 253).sum() == 3
    assert tokenizer.decode(ids[-2:]) == "<|im_start|> assistant"
    logits = model(prepare_inputs(model.config, **inputs)).logits
    assert logits.shape == (1, len(ids), 256) and np.isfinite(np.asarray(logits)).all()


def test_build_inputs_needs_a_chat_template(tiny_qwen2vl):
    _, _, model = tiny_qwen2vl
    with pytest.raises(ValueError, match="no chat template"):
        build_inputs(model.config, object(), None, "hello")
