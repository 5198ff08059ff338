"""The relevance mapper: first-layer attention features of N visual tokens -> one logit per token.

Paper version (arXiv:2506.01097): one input value per token (attention averaged over heads),
five depthwise-separable 1-D convolutions with 32-64-128-256-512 channels, a pointwise
convolution to one logit, softmax over the visual tokens. Variants by config: every head as
an input channel (`input_channels="heads"`), k x k convolutions over each image's token
grid (`layout="grid"`), and the mapper v2's prior (`prior="attention"`): its logits are the log
of the first-layer attention mixed over heads by learned weights (uniform at the start) plus the
network's correction, whose last layer starts at zero, so an untrained v2 ranks tokens exactly as
raw layer-1 attention does and training can only move it from there. Fully convolutional, so it
runs on more tokens than it was trained on.

Padding never reaches a real token: convolutions read neighbours through `neighbour_index`
(padding is never listed), padded positions are zeroed after every layer, and the softmax
sees only real tokens.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from tokcomp_jax.fields import check_field_types, from_fields
from tokcomp_jax.mapper.inputs import LAYOUTS, MapperBatch

INPUT_CHANNELS = ("mean", "heads")
PRIORS = ("none", "attention")  # "attention": the mapper v2 (see above)


@dataclasses.dataclass(frozen=True)
class MapperConfig:
    layout: str = "sequence"  # "sequence" (1-D over tokens, the paper) or "grid" (k x k per image/frame)
    input_channels: str = "mean"  # "mean" over heads (the paper) or "heads" (one channel per head)
    num_heads: int = 1  # heads in the features (used as input channels when input_channels="heads")
    channels: tuple[int, ...] = (32, 64, 128, 256, 512)
    kernel_size: int = 3
    family: str | None = None  # the MLLM family whose first-layer attention it was trained on
    prior: str = "none"  # "none" (the paper) or "attention": the mapper v2

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(self.channels))  # JSON stores a list
        check_field_types(self)
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.input_channels not in INPUT_CHANNELS:
            raise ValueError(f"input_channels must be one of {INPUT_CHANNELS}, got {self.input_channels!r}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {self.prior!r}")
        if self.kernel_size % 2 == 0 or self.kernel_size < 1:
            raise ValueError(f"kernel_size must be a positive odd number, got {self.kernel_size}")

    @property
    def in_channels(self) -> int:
        return self.num_heads if self.input_channels == "heads" else 1

    @property
    def num_taps(self) -> int:
        return self.kernel_size if self.layout == "sequence" else self.kernel_size**2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> MapperConfig:
        return from_fields(cls, values, "mapper config")


def gather_neighbours(x: jax.Array, neighbour_index: jax.Array) -> jax.Array:
    """x [B, N, C], neighbour_index [B, N, K] -> [B, N, K, C], zeros where the index is -1."""
    gathered = jnp.take_along_axis(x[:, :, None, :], jnp.maximum(neighbour_index, 0)[..., None], axis=1)
    return jnp.where(neighbour_index[..., None] >= 0, gathered, 0)


def normalise_features(features: jax.Array, mask: jax.Array) -> jax.Array:
    """Attention features [B, C, N] -> log of each channel relative to its mean over real tokens, [B, C, N].

    Scale-free, so images with more tokens (smaller attention per token) look alike to the mapper.
    """
    count = jnp.maximum(mask.sum(-1), 1)[:, None, None]
    mean = jnp.where(mask[:, None], features, 0).sum(-1, keepdims=True) / count
    relative = features / jnp.maximum(mean, 1e-12)
    return jnp.where(mask[:, None], jnp.log(relative + 1e-3), 0)


class SeparableConv(nnx.Module):
    """Depthwise conv over neighbour taps, then pointwise projection, LayerNorm and GELU: [B, N, Ci] -> [B, N, Co]."""

    def __init__(self, in_channels: int, out_channels: int, num_taps: int, *, rngs: nnx.Rngs):
        init = nnx.initializers.lecun_normal(in_axis=0, out_axis=())
        self.depthwise = nnx.Param(init(rngs.params(), (num_taps, in_channels)))
        self.depthwise_bias = nnx.Param(jnp.zeros((in_channels,)))
        self.pointwise = nnx.Linear(in_channels, out_channels, rngs=rngs)
        self.norm = nnx.LayerNorm(out_channels, rngs=rngs)

    def __call__(self, x: jax.Array, neighbour_index: jax.Array) -> jax.Array:
        mixed = jnp.einsum("BNKC,KC->BNC", gather_neighbours(x, neighbour_index), self.depthwise[...])
        return jax.nn.gelu(self.norm(self.pointwise(mixed + self.depthwise_bias[...])))


class Mapper(nnx.Module):
    """MapperBatch -> logits [B, N], padding at float32 min (softmax over real tokens only)."""

    def __init__(self, config: MapperConfig, *, rngs: nnx.Rngs):
        self.config = config
        widths = (config.in_channels, *config.channels)
        self.convs = nnx.List(
            [SeparableConv(i, o, config.num_taps, rngs=rngs) for i, o in zip(widths[:-1], widths[1:], strict=True)]
        )
        if config.prior == "attention":  # the v2: attention mixed over heads, plus a correction that starts at 0
            self.head = nnx.Linear(widths[-1], 1, kernel_init=nnx.initializers.zeros, rngs=rngs)
            self.head_mix = nnx.Param(jnp.zeros((config.num_heads,)))
        else:
            self.head = nnx.Linear(widths[-1], 1, rngs=rngs)

    def input_channels(self, features: jax.Array) -> jax.Array:
        """Features [B, Hd, N] -> the network's input channels [B, Cin, N]."""
        if features.shape[1] != self.config.num_heads:
            raise ValueError(
                f"features have {features.shape[1]} heads; this mapper was trained on {self.config.num_heads}"
            )
        if self.config.input_channels == "mean":
            return features.mean(1, keepdims=True)
        return features

    def __call__(self, batch: MapperBatch) -> jax.Array:
        if batch.neighbour_index.shape[-1] != self.config.num_taps:
            raise ValueError(
                f"neighbour_index has {batch.neighbour_index.shape[-1]} taps; a {self.config.layout} mapper "
                f"with kernel {self.config.kernel_size} needs {self.config.num_taps}"
            )
        mask = batch.mask
        x = normalise_features(self.input_channels(batch.features.astype(jnp.float32)), mask)
        x = jnp.swapaxes(x, 1, 2)  # [B, N, C]
        for conv in self.convs:
            x = jnp.where(mask[..., None], conv(x, batch.neighbour_index), 0)
        logits = self.head(x)[..., 0]
        if self.config.prior == "attention":
            logits = logits + self.attention_prior(batch.features.astype(jnp.float32), mask)
        return jnp.where(mask, logits, jnp.finfo(jnp.float32).min)

    def attention_prior(self, features: jax.Array, mask: jax.Array) -> jax.Array:
        """The v2's prior: log of the features [B, Hd, N] mixed over heads by softmax(head_mix),
        relative to the mean over real tokens: [B, N]."""
        mixed = jnp.einsum("BHN,H->BN", features, jax.nn.softmax(self.head_mix[...]))
        return normalise_features(mixed[:, None], mask)[:, 0]


def log_probabilities(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """Log-softmax over the real tokens of each sample: [B, N] -> [B, N], 0 at padding."""
    return jnp.where(mask, jax.nn.log_softmax(logits, axis=-1, where=mask), 0)
