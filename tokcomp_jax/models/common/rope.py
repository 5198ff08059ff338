"""Rotary position embeddings: 1-D (Llama/Qwen2), 3-D M-RoPE (Qwen2-VL / Qwen3-VL text), 2-D (vision).

Every function returns `cos, sin` tables with the full head dimension, laid out as transformers
lays them out (the half-split `rotate_half` convention), so `apply_rotary` is shared.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def inverse_frequencies(dim: int, theta: float) -> jax.Array:
    """[dim // 2] float32 inverse frequencies 1 / theta^(2i / dim)."""
    return 1.0 / (theta ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))


def rotate_half(x: jax.Array) -> jax.Array:
    half = x.shape[-1] // 2
    return jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate [B, T, N, H] by tables [B, T, H] (broadcast over heads N)."""
    cos, sin = cos[..., None, :], sin[..., None, :]
    return x * cos + rotate_half(x) * sin


def text_rope(position_ids: jax.Array, head_dim: int, theta: float, dtype: jnp.dtype) -> tuple[jax.Array, jax.Array]:
    """1-D RoPE tables: positions [B, T] -> cos, sin [B, T, head_dim] in `dtype`."""
    freqs = position_ids[..., None].astype(jnp.float32) * inverse_frequencies(head_dim, theta)
    freqs = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(freqs).astype(dtype), jnp.sin(freqs).astype(dtype)


def multimodal_rope(
    position_ids: jax.Array,
    head_dim: int,
    theta: float,
    mrope_section: tuple[int, ...],
    dtype: jnp.dtype,
    interleaved: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """M-RoPE tables: positions [3, B, T] (t, h, w) -> cos, sin [B, T, head_dim] in `dtype`.

    Each of the head_dim // 2 frequencies rotates by the temporal, height or width position
    (`mrope_axes`), as in transformers' Qwen2-VL (chunks) or Qwen3-VL (interleaved).
    """
    freqs = position_ids[..., None].astype(jnp.float32) * inverse_frequencies(head_dim, theta)  # [3, B, T, H/2]
    axes = jnp.asarray(mrope_axes(mrope_section, interleaved))
    freqs = jnp.where(axes == 0, freqs[0], jnp.where(axes == 1, freqs[1], freqs[2]))
    freqs = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(freqs).astype(dtype), jnp.sin(freqs).astype(dtype)


def mrope_axes(mrope_section: tuple[int, ...], interleaved: bool) -> np.ndarray:
    """The position axis (0 t, 1 h, 2 w) of each of the sum(mrope_section) frequencies.

    Chunks (Qwen2-VL): section i's frequencies take axis i % 3. Interleaved (Qwen3-VL): frequency f
    takes axis f % 3 while f < 3 x that axis' section (h, w), else t: t h w t h w ... t t.
    """
    total = sum(mrope_section)
    if not interleaved:
        return np.concatenate([np.full(size, i % 3) for i, size in enumerate(mrope_section)])
    f = np.arange(total)
    axis = f % 3
    return np.where((axis > 0) & (f < 3 * np.asarray(mrope_section)[axis]), axis, 0)


def vision_rope(patch_positions: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """2-D axial RoPE tables: (row, col) per patch [..., P, 2] -> float32 cos, sin [..., P, head_dim].

    A quarter of head_dim rotates by the row, a quarter by the column, and the layout repeats
    for the second half, as in transformers' Qwen2-VL vision tower.
    """
    inverse = inverse_frequencies(head_dim // 2, theta)
    freqs = patch_positions[..., None].astype(jnp.float32) * inverse  # [..., P, 2, H/4]
    freqs = jnp.concatenate([freqs[..., 0, :], freqs[..., 1, :]], axis=-1)
    freqs = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(freqs), jnp.sin(freqs)
