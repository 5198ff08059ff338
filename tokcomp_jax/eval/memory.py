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

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax.eval.sharding import param_spec
from tokcomp_jax.generate import prefill
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


@dataclasses.dataclass(frozen=True)
class PrefillMemory:
    """Bytes of one compiled prefill: XLA's memory analysis beside the exact sizes of its parts."""

    tokens: int  # per row, as prefilled
    weights: int  # the parameters (abstract state)
    kv_cache: int  # the caches the prefill returns (prompt + new-token slots)
    arguments: int  # XLA: weights + embeddings, positions, mask
    outputs: int  # XLA: caches + the last logits, next token and positions
    temporaries: int  # XLA: activations and any copies the backend makes (backend-dependent)


def bytes_of(tree) -> int:
    """Total bytes of a pytree of arrays or ShapeDtypeStructs."""
    return sum(int(np.prod(leaf.shape)) * jnp.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(tree))


def prefill_memory(config, dtype: str, tokens: int, max_new_tokens: int, batch_size: int = 1) -> PrefillMemory:
    """Compile (for the default backend; nothing allocated) the LLM prefill of `config`'s model (any
    family, layers scanned) from embeddings of `batch_size` rows of `tokens` into caches with room for
    `max_new_tokens` more, and read XLA's memory analysis of it."""
    if min(tokens, max_new_tokens, batch_size) < 1:
        raise ValueError(f"tokens {tokens}, max_new_tokens {max_new_tokens}, batch_size {batch_size} must be >= 1")
    graphdef, state = nnx.split(nnx.eval_shape(family_of(config).builder(config, jax_dtype(dtype))))

    def run(state, embeds, position_ids, attention_mask):
        model = nnx.merge(graphdef, state)
        return prefill(model, embeds, position_ids, attention_mask, max_new_tokens=max_new_tokens)

    mask = jax.ShapeDtypeStruct((batch_size, tokens), jnp.int32)
    embeds = jax.eval_shape(lambda state, ids: nnx.merge(graphdef, state).embed_text(ids), state, mask)
    rope_axes = (3,) if config.text.mrope_section else ()  # M-RoPE families take (t, h, w) position ids
    positions = jax.ShapeDtypeStruct((*rope_axes, batch_size, tokens), jnp.int32)
    analysis = jax.jit(run).lower(state, embeds, positions, mask).compile().memory_analysis()
    prefilled = jax.eval_shape(run, state, embeds, positions, mask)
    return PrefillMemory(
        tokens=tokens,
        weights=bytes_of(state),
        kv_cache=bytes_of([segment.cache for segment in prefilled.segments]),
        arguments=analysis.argument_size_in_bytes,
        outputs=analysis.output_size_in_bytes,
        temporaries=analysis.temp_size_in_bytes,
    )
