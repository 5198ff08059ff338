"""Sharding over a device mesh with `data` and `model` axes; the rules are data, not code.

Parameters get logical axis names from their path (PARAM_AXES), logical names map to mesh axes
(MESH_AXES), and a batch is split over `data` along its batch axis (place_batch). The model code
never mentions devices: the same jitted functions run unsharded on one device or sharded here,
and XLA (GSPMD) inserts the communication.

    mesh = make_mesh(model=4)                 # all devices: data = device_count // 4
    shard_model(model, mesh)                  # in place
    inputs, scoring = place_batch(mesh, inputs, scoring)

A dimension the mesh axis does not divide is replicated instead (logged once per parameter).
On several hosts, call `jax.distributed.initialize()` first (scripts/evaluate.py --distributed). A
mesh may then span every host's devices (one global mesh): each process passes the same host
values, keeps only the shards its own devices hold, and `fetch` gathers results from all hosts.
"""

from __future__ import annotations

import logging
import re

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from tokcomp_jax.models.loading import STACKED

log = logging.getLogger(__name__)

# (regex on the dotted parameter path, logical axis name per dimension); first match wins.
PARAM_AXES: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    (r".*embed_tokens\.embedding", ("vocab", "embed")),
    (r"lm_head\.proj\.kernel", ("embed", "vocab")),
    (r".*self_attn\.[qkv]_proj\.kernel", ("embed", "heads")),
    (r".*self_attn\.[qkv]_proj\.bias", ("heads",)),
    (r".*self_attn\.o_proj\.kernel", ("heads", "embed")),
    (r".*mlp\.(gate|up)_proj\.kernel", ("embed", "mlp")),
    (r".*mlp\.down_proj\.kernel", ("mlp", "embed")),
    (r"visual\.blocks\.\d+\.attn\.qkv\.kernel", ("embed", "heads")),
    (r"visual\.blocks\.\d+\.attn\.qkv\.bias", ("heads",)),
    (r"visual\.blocks\.\d+\.attn\.proj\.kernel", ("heads", "embed")),
    (r"visual\.blocks\.\d+\.mlp\.fc1\.kernel", ("embed", "mlp")),
    (r"visual\.blocks\.\d+\.mlp\.fc1\.bias", ("mlp",)),
    (r"visual\.blocks\.\d+\.mlp\.fc2\.kernel", ("mlp", "embed")),
    (r"visual\.blocks\.\d+\.mlp\.(gate|up)_proj\.bias", ("mlp",)),  # Qwen2.5-VL's gated vision MLP
)
# Logical axis -> mesh axis (None: replicated). Megatron-style: heads, MLP and vocabulary split.
MESH_AXES: dict[str, str | None] = {"batch": "data", "heads": "model", "mlp": "model", "vocab": "model", "embed": None}


def make_mesh(model: int = 1, data: int | None = None, devices=None) -> Mesh:
    """A (data, model) mesh over `devices` (default: every device of every host)."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    data = devices.size // model if data is None else data
    if data * model != devices.size:
        raise ValueError(f"a {data} x {model} (data x model) mesh needs {data * model} devices, not {devices.size}")
    return Mesh(devices.reshape(data, model), ("data", "model"))


def param_spec(path: str, shape: tuple[int, ...], mesh: Mesh, mesh_axes=MESH_AXES, param_axes=PARAM_AXES) -> P:
    """The PartitionSpec of one parameter: its logical axes through the rules, divisibility checked.
    A stacked layer parameter (`...layers.stacked...`) follows the rule of one layer; its leading
    layer axis is never split."""
    if STACKED in path.split("."):
        per_layer = ".".join("0" if part == STACKED else part for part in path.split("."))
        return P(None, *param_spec(per_layer, shape[1:], mesh, mesh_axes, param_axes))
    names = next((axes for pattern, axes in param_axes if re.fullmatch(pattern, path)), ())
    if len(names) not in (0, len(shape)):
        raise ValueError(f"sharding rule for {path} names {len(names)} axes; the parameter has shape {shape}")
    spec = []
    for size, name in zip(shape, names or (None,) * len(shape), strict=True):
        axis = mesh_axes.get(name) if name else None
        if axis is not None and size % mesh.shape[axis]:
            log.info("%s: dimension %d (%s) does not divide over %s=%d; replicated", path, size, name, axis,
                     mesh.shape[axis])  # fmt: skip
            axis = None
        spec.append(axis)
    return P(*spec)


def param_sharding(
    mesh: Mesh, path: str, shape: tuple[int, ...], mesh_axes=MESH_AXES, param_axes=PARAM_AXES
) -> NamedSharding:
    """Where the parameter at dotted `path` lives on `mesh` (tokcomp_jax.load's `sharding_of`)."""
    return NamedSharding(mesh, param_spec(path, shape, mesh, mesh_axes, param_axes))


def put(value, sharding: NamedSharding) -> jax.Array:
    """`value` laid out by `sharding`. On a mesh spanning several processes every process passes the
    same value and builds only the shards its own devices hold."""
    if isinstance(value, jax.Array) and value.sharding == sharding:
        return value  # already there (e.g. restored into its sharding)
    if sharding.is_fully_addressable:
        return jax.device_put(value, sharding)
    if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):  # a key travels as its raw data
        return jax.random.wrap_key_data(put(jax.random.key_data(value), sharding), impl=jax.random.key_impl(value))
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def fetch(tree):
    """Every array of `tree` as a numpy array on this host, gathered from all hosts where it spans several."""

    def gather(array):
        if isinstance(array, jax.Array) and not array.is_fully_addressable:
            return multihost_utils.process_allgather(array, tiled=True)
        return jax.device_get(array)

    return jax.tree.map(gather, tree)


def shard_model(module: nnx.Module, mesh: Mesh, mesh_axes=MESH_AXES, param_axes=PARAM_AXES) -> None:
    """Move every parameter of `module` (in place) to its sharding on `mesh`."""
    state = nnx.state(module)
    for path, variable in nnx.to_flat_state(state):
        value = variable.get_value()
        sharding = param_sharding(mesh, ".".join(map(str, path)), value.shape, mesh_axes, param_axes)
        variable.set_value(put(value, sharding))
    nnx.update(module, state)


def place_batch(mesh: Mesh, inputs, scoring):
    """Split model inputs (of any family: their BATCH_AXES) and ScoringInputs over `data` along their
    batch axis; everything else is replicated. The batch must divide over `data`."""
    batch = inputs.input_ids.shape[0]
    if batch % mesh.shape["data"]:
        raise ValueError(f"batch of {batch} rows does not divide over data={mesh.shape['data']} devices")

    def split(array, batch_axis: int | None):
        if array is None:
            return None
        spec = [None] * array.ndim
        if batch_axis is not None and array.shape[batch_axis] % mesh.shape["data"] == 0:
            spec[batch_axis] = "data"
        return put(array, NamedSharding(mesh, P(*spec)))

    inputs = inputs.replace(**{field: split(getattr(inputs, field), axis) for field, axis in inputs.BATCH_AXES.items()})
    layout = scoring.layout.replace(
        visual_positions=split(scoring.layout.visual_positions, 0),
        query_positions=split(scoring.layout.query_positions, 0),
    )
    scoring = scoring.replace(
        layout=layout,
        neighbour_index=split(scoring.neighbour_index, 0),
        relevance=split(scoring.relevance, 0),
        rng=split(scoring.rng, None) if scoring.rng is not None else None,
    )
    return inputs, scoring
