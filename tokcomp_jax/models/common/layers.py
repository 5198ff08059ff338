"""Building blocks shared by every family: norms, linear layers, MLPs, activations.

Norms compute in float32 and cast back, as transformers does, so bfloat16 models round the
same way as their PyTorch reference.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx


def quick_gelu(x: jax.Array) -> jax.Array:
    return x * jax.nn.sigmoid(1.702 * x)


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "silu": jax.nn.silu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "quick_gelu": quick_gelu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def linear(in_features: int, out_features: int, *, bias: bool, dtype: jnp.dtype, rngs: nnx.Rngs) -> nnx.Linear:
    """A dense layer with kernel [in, out] (the transpose of torch's weight)."""
    return nnx.Linear(in_features, out_features, use_bias=bias, dtype=dtype, param_dtype=dtype, rngs=rngs)


class RMSNorm(nnx.Module):
    """y = scale * x / sqrt(mean(x^2) + eps); [..., D] -> [..., D]."""

    def __init__(self, dim: int, *, eps: float, dtype: jnp.dtype):
        self.scale = nnx.Param(jnp.ones((dim,), dtype))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return self.scale[...] * normed.astype(x.dtype)


class LayerNorm(nnx.Module):
    """Affine layer norm over the last axis; [..., D] -> [..., D]."""

    def __init__(self, dim: int, *, eps: float, dtype: jnp.dtype):
        self.scale = nnx.Param(jnp.ones((dim,), dtype))
        self.bias = nnx.Param(jnp.zeros((dim,), dtype))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        normed = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        return (normed * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)).astype(x.dtype)


class GatedMLP(nnx.Module):
    """SwiGLU feed-forward: down(act(gate(x)) * up(x)); [..., D] -> [..., D]. Biases only in vision towers."""

    def __init__(self, dim: int, hidden: int, *, act: str, dtype: jnp.dtype, rngs: nnx.Rngs, bias: bool = False):
        self.gate_proj = linear(dim, hidden, bias=bias, dtype=dtype, rngs=rngs)
        self.up_proj = linear(dim, hidden, bias=bias, dtype=dtype, rngs=rngs)
        self.down_proj = linear(hidden, dim, bias=bias, dtype=dtype, rngs=rngs)
        self.act = activation(act)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class MLP(nnx.Module):
    """Two-layer feed-forward with biases: fc2(act(fc1(x))); [..., D] -> [..., D_out]."""

    def __init__(self, dim: int, hidden: int, out: int, *, act: str, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.fc1 = linear(dim, hidden, bias=True, dtype=dtype, rngs=rngs)
        self.fc2 = linear(hidden, out, bias=True, dtype=dtype, rngs=rngs)
        self.act = activation(act)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(self.act(self.fc1(x)))
