"""The Qwen video processors' rules (frames kept, size, time) as transformers' video processors
apply them; tests/models/test_released_encoding.py holds whole clips to transformers itself."""

from __future__ import annotations

import numpy as np
import pytest

from tokcomp_jax.models.qwen2_vl.processor import QWEN2_VL_VIDEO
from tokcomp_jax.models.qwen2_vl.video import frame_indices, resized_size, sampled_fps
from tokcomp_jax.models.qwen3_vl.processor import QWEN3_VL_VIDEO, frame_timestamps


def test_qwen3_samples_at_2_fps_of_24_where_the_clip_rate_is_unknown():
    """Qwen3VLVideoProcessor.sample_frames: int(8 / 24 * 2) = 0 frames, raised to min_frames 4."""
    np.testing.assert_array_equal(frame_indices(QWEN3_VL_VIDEO, 8, None, 2), [0, 2, 5, 7])
    np.testing.assert_array_equal(frame_indices(QWEN3_VL_VIDEO, 8, 2.0, 2), np.arange(8))  # 8 / 2 * 2 = 8
    assert frame_timestamps(np.array([0, 2, 5, 7]), 2, 24.0) == [1 / 24, 6 / 24]


def test_qwen2_keeps_every_frame_and_samples_only_with_a_rate():
    np.testing.assert_array_equal(frame_indices(QWEN2_VL_VIDEO, 5, None, 2), np.arange(5))
    sampling = QWEN2_VL_VIDEO.read({"do_sample_frames": True})
    with pytest.raises(ValueError, match="needs the clip's frame rate"):
        frame_indices(sampling, 10, None, 2)
    np.testing.assert_array_equal(frame_indices(sampling, 10, 5.0, 2), [0, 2, 5, 7])  # 4 frames: 10 / 5 * 2
    assert sampled_fps(np.arange(4), 10, 5.0) == 2.0 and sampled_fps(np.arange(4), 4, None) == 24.0


def test_sizes_follow_each_familys_limits():
    """Qwen2-VL bounds one frame's pixels; Qwen3-VL bounds frames x pixels, so more frames are smaller."""
    rules = QWEN2_VL_VIDEO.read({"min_pixels": 3136, "max_pixels": 12845056})
    assert resized_size(rules, 4, 200, 300, 28, 2) == resized_size(rules, 64, 200, 300, 28, 2) == (196, 308)
    few, many = (resized_size(QWEN3_VL_VIDEO, n, 480, 640, 32, 2) for n in (4, 64))
    assert many[0] * many[1] < few[0] * few[1]


def test_limits_that_cannot_hold_are_refused():
    with pytest.raises(ValueError, match="video pixel limits min_pixels 100352, max_pixels 3136 cannot hold"):
        QWEN2_VL_VIDEO.read({"max_pixels": 3136})
