"""Per-device memory of a model on a (data, model) mesh, planned before anything loads.

    plan = memory_plan(config, data=4, model=8, dtype="bfloat16", batch_size=8, sequence=4096)
    plan.fits(16 * 2**30) or print(plan.report(16 * 2**30))

Weights: every parameter of the abstract model (`jax.eval_shape`, nothing allocated) divided by the
mesh axes the sharding rules (tokcomp_jax.eval.sharding) split it over. KV cache: keys and values of
every decoder layer for `ceil(batch / data)` rows of `sequence` slots, split over `model` when it
divides kv_heads x head_dim, as the k/v projections' output columns are split (the cache follows
them under GSPMD). Activations are not counted: at
inference they are a few layers' worth, small beside the cache at long sequences, so leave headroom.
"""

from __future__ import annotations

import dataclasses
import math
import types

import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax.eval.sharding import param_spec
from tokcomp_jax.models.checkpoint import jax_dtype
from tokcomp_jax.models.families import family_of


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """Bytes per device."""

    weights: int
    kv_cache: int
    mesh: tuple[int, int]  # (data, model)

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache

    def fits(self, device_bytes: int) -> bool:
        return self.total <= device_bytes

    def report(self, device_bytes: int | None = None) -> str:
        gib = 2**30
        line = (
            f"per device on a {self.mesh[0]} x {self.mesh[1]} (data x model) mesh: weights {self.weights / gib:.2f} GiB"
            f" + KV cache {self.kv_cache / gib:.2f} GiB = {self.total / gib:.2f} GiB"
        )
        if device_bytes is not None:
            line += f" of {device_bytes / gib:.2f} GiB: " + ("fits" if self.fits(device_bytes) else "does NOT fit")
        return line


def memory_plan(config, data: int, model: int, dtype: str, batch_size: int, sequence: int) -> MemoryPlan:
    """The plan of `config`'s model (any family) with parameters and cache in `dtype`."""
    dtype = jax_dtype(dtype)
    if min(data, model, batch_size, sequence) < 1:
        raise ValueError(f"data {data}, model {model}, batch_size {batch_size}, sequence {sequence} must be >= 1")
    mesh = types.SimpleNamespace(shape={"data": data, "model": model})  # param_spec reads only the axis sizes
    abstract = nnx.eval_shape(family_of(config).builder(config, dtype))
    weights = 0
    for path, variable in nnx.to_flat_state(nnx.state(abstract, nnx.Param)):
        shape = variable.get_value().shape
        spec = param_spec(".".join(map(str, path)), shape, mesh)
        shard = [size // (mesh.shape[axis] if axis else 1) for size, axis in zip(shape, tuple(spec), strict=False)]
        weights += int(np.prod(shard)) * jnp.dtype(variable.get_value().dtype).itemsize
    text = config.text
    columns = text.num_key_value_heads * text.head_dim
    columns = columns // model if columns % model == 0 else columns
    rows = math.ceil(batch_size / data)
    kv_cache = 2 * text.num_hidden_layers * rows * sequence * columns * jnp.dtype(dtype).itemsize
    return MemoryPlan(weights=weights, kv_cache=kv_cache, mesh=(data, model))
