"""torchvision's resize of uint8 images (antialiased bicubic), in numpy: how transformers' video
processors size frames on a CPU, without torch at run time.

torchvision sends a uint8 bicubic resize on the CPU to torch's native uint8 kernel
(aten/src/ATen/native/cpu/UpSampleKernelAVXAntialias.h): per axis, PIL's antialiased filter
(Keys cubic, a = -0.5, support 2 x the scale when shrinking), weights normalised in float64 and
rounded to int16 at the most precision bits that keep the largest weight below 2^15, integer
accumulation from half an ulp, shifted and clipped to 0..255; the width pass first, into uint8.
PIL's own bicubic rounds differently (22 fixed-point bits), up to ~20 levels apart on noise.
"""

from __future__ import annotations

import numpy as np

CUBIC_A = -0.5


def cubic(x: np.ndarray) -> np.ndarray:
    """The bicubic convolution kernel at distances x."""
    x = np.abs(x)
    near = ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1
    far = ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def integer_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(source indices [O, K], int weights [O, K], precision bits) of one axis' resize; unused taps
    point at index 0 with weight 0."""
    scale = in_size / out_size
    support = 2.0 * scale if scale >= 1.0 else 2.0
    inverse = 1.0 / scale if scale >= 1.0 else 1.0
    centers = scale * (np.arange(out_size) + 0.5)
    starts = np.maximum((centers - support + 0.5).astype(np.int64), 0)
    sizes = np.minimum((centers + support + 0.5).astype(np.int64), in_size) - starts
    offsets = np.arange(sizes.max())
    used = offsets[None, :] < sizes[:, None]
    weights = np.where(used, cubic((starts[:, None] + offsets - centers[:, None] + 0.5) * inverse), 0.0)
    weights /= weights.sum(-1, keepdims=True)
    precision = 0
    while precision < 22 and int(0.5 + weights.max() * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    scaled = weights * (1 << precision)
    integer = np.trunc(np.where(scaled < 0, scaled - 0.5, scaled + 0.5)).astype(np.int64)
    return np.where(used, starts[:, None] + offsets, 0), integer, precision


def resize_axis(pixels: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """uint8 pixels resized along one axis."""
    if pixels.shape[axis] == out_size:
        return pixels
    indices, weights, precision = integer_taps(pixels.shape[axis], out_size)
    moved = np.moveaxis(pixels, axis, 0).astype(np.int64)
    total = np.full((out_size, *moved.shape[1:]), 1 << (precision - 1), np.int64)
    for tap in range(indices.shape[1]):
        total += moved[indices[:, tap]] * weights[:, tap].reshape(-1, *[1] * (moved.ndim - 1))
    return np.moveaxis(np.clip(total >> precision, 0, 255).astype(np.uint8), 0, axis)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """[F, H, W, C] uint8 frames -> [F, height, width, C] uint8, as torchvision resizes them on a CPU."""
    return resize_axis(resize_axis(frames, width, axis=2), height, axis=1)
