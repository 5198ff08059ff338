"""Self-attention masks that keep their structure: a causal prefill's padding, a vision tower's
segments (images, frames), Qwen2.5-VL's windows. Each is a pytree that gives the dense boolean
mask [B, T, T] on demand (`dense()`, what the reference attention and XLA's kernel take) and its
structure to the kernels that skip what it rules out (splash attention's segment ids and block
masks, the windowed tiles)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


def same_segment(ids: jax.Array) -> jax.Array:
    """[F, P] segment (or window) ids -> [F, P, P] mask: True where two positions share one."""
    return ids[..., :, None] == ids[..., None, :]


@struct.dataclass
class CausalMask:
    """A causal LM prefill's mask, kept as its padding mask `valid` [B, T] (True = a real token): query
    t sees the real keys s <= t."""

    valid: jax.Array

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.valid.shape, self.valid.shape[-1])

    def dense(self) -> jax.Array:
        """[B, T, T] booleans (True = attend)."""
        length = self.valid.shape[-1]
        return jnp.tril(jnp.ones((length, length), bool))[None] & self.valid[:, None, :].astype(bool)


@struct.dataclass
class SegmentMask:
    """Attention within segments: `ids` [B, T] gives each position's segment (a vision tower's image
    or frame, padding a segment of its own; one id throughout for full attention)."""

    ids: jax.Array

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.ids.shape, self.ids.shape[-1])

    def dense(self) -> jax.Array:
        """[B, T, T] booleans (True = same segment)."""
        return same_segment(self.ids)


@struct.dataclass
class WindowMask(SegmentMask):
    """A SegmentMask whose segments are contiguous windows of at most `size` positions (Qwen2.5-VL's
    windowed vision blocks): no query sees a key `size` or more positions away. Under "tiled",
    positions in a longer run of one id (padding) attend only the part of the run within their band."""

    size: int = struct.field(pytree_node=False)


def dense_mask(mask: jax.Array | CausalMask | SegmentMask) -> jax.Array:
    """A boolean mask [B, T, S] as it is, or a structured one as its dense [B, T, T]."""
    return mask.dense() if isinstance(mask, CausalMask | SegmentMask) else mask
