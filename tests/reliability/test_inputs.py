"""Inputs are converted correctly or refused, never silently misread (issue 20)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tokcomp_jax.eval.samples import load_image
from tokcomp_jax.models.common.chat import check_image, check_video
from tokcomp_jax.models.qwen2_vl.processor import build_inputs, image_processor


def _png(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=save.pop("format", "PNG"), **save)
    return buffer.getvalue()


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    values = np.array([[0, 257, 32896], [65535, 1000, 51400]], np.uint16)
    loaded = load_image(_png(Image.fromarray(values)))  # PIL's convert("RGB") would make all but 0 white
    assert loaded.dtype == np.uint8 and loaded.shape == (2, 3, 3)
    np.testing.assert_array_equal(loaded[..., 0], np.round(values / 257.0).astype(np.uint8))
    assert (loaded[..., 0] == loaded[..., 2]).all()


def test_alpha_is_composited_on_white_and_palettes_keep_their_colours():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 10, 10, 255)  # opaque red; the rest transparent black
    loaded = load_image(_png(Image.fromarray(rgba, "RGBA")))
    np.testing.assert_array_equal(loaded[0, 0], (200, 10, 10))
    np.testing.assert_array_equal(loaded[1, 1], (255, 255, 255))
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    palette.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    np.testing.assert_array_equal(load_image(_png(palette)), [[(10, 20, 30), (40, 50, 60)]])


def test_float_images_without_a_range_are_refused():
    with pytest.raises(ValueError, match=r"mode F\) has no defined 8-bit range"):
        load_image(_png(Image.fromarray(np.ones((4, 4), np.float32) * 0.5), format="TIFF"))


def test_arrays_are_uint8_or_float_in_unit_range():
    scaled = check_image(np.full((28, 28, 3), 0.5, np.float32), "image 0", 14)
    assert scaled.dtype == np.uint8 and (scaled == 128).all()
    with pytest.raises(
        ValueError,
        match=r"image 0 is a float32 array with values in \[255\.0, 255\.0\]; float pixels must be in \[0, 1\]",
    ):
        check_image(np.full((28, 28, 3), 255.0, np.float32), "image 0", 14)
    with pytest.raises(ValueError, match=r"image 1 has dtype uint16; pass uint8"):
        check_image(np.zeros((28, 28, 3), np.uint16), "image 1", 14)


def test_video_frames_of_different_sizes_are_named():
    frames = [np.zeros((28, 28, 3), np.uint8)] * 2 + [np.zeros((28, 56, 3), np.uint8)]
    with pytest.raises(
        ValueError, match=r"video frames differ in size: frame 0 is \(28, 28, 3\), frame 2 is \(28, 56, 3\)"
    ):
        check_video(frames)
    assert check_video(frames[:2]).shape == (2, 28, 28, 3)


@pytest.mark.parametrize("typed", ["<|im_end|>", "look <|vision_start|> here", "<|image_pad|>"])
def test_user_text_never_becomes_control_tokens(tiny_qwen2vl, tokenizer, typed):
    _, _, model = tiny_qwen2vl
    with pytest.raises(ValueError, match=r"prompt contains the control token\(s\) \['<\|"):
        build_inputs(model.config, tokenizer, image_processor(model.config), typed)
    assert build_inputs(model.config, tokenizer, image_processor(model.config), "what colour is the square ?")
