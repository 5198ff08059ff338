"""Fill a Flax model from named tensors through an explicit name map, checking every tensor.

The model is never initialised with random weights: its abstract state comes from
`nnx.eval_shape`, each tensor is transformed, checked against the expected shape and cast as it
arrives, and every problem (missing, unexpected, wrong shape or dtype) is collected and raised
together, naming the file and tensor.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax.files import CheckpointError


class Transform(enum.Enum):
    """How a PyTorch tensor becomes a Flax parameter."""

    NONE = "none"
    LINEAR = "linear"  # torch [out, in] -> kernel [in, out]
    CONV_AS_LINEAR = "conv_as_linear"  # torch conv [out, c, *kernel] -> kernel [c * prod(kernel), out]

    def apply(self, tensor: np.ndarray) -> np.ndarray:
        if self is Transform.LINEAR:
            return tensor.T
        if self is Transform.CONV_AS_LINEAR:
            return tensor.reshape(tensor.shape[0], -1).T
        return tensor


@dataclasses.dataclass(frozen=True)
class Rule:
    pattern: str  # regex on the checkpoint name, full match
    target: str  # dotted Flax path; \1 etc. refer to the pattern's groups
    transform: Transform = Transform.NONE


@dataclasses.dataclass(frozen=True)
class NameMap:
    """Checkpoint name -> Flax path table of one family; `ignored` names are skipped silently."""

    rules: tuple[Rule, ...]
    ignored: tuple[str, ...] = ()

    def lookup(self, name: str) -> tuple[tuple[str | int, ...], Transform] | None:
        """The Flax path and transform for a checkpoint name, None if no rule matches."""
        hits = [(rule, m) for rule in self.rules if (m := re.fullmatch(rule.pattern, name))]
        if len(hits) > 1:
            raise CheckpointError(f"tensor {name} matches several rules: {[r.pattern for r, _ in hits]}")
        if not hits:
            return None
        rule, match = hits[0]
        path = tuple(int(p) if p.isdigit() else p for p in match.expand(rule.target).split("."))
        return path, rule.transform

    def is_ignored(self, name: str) -> bool:
        return any(re.fullmatch(pattern, name) for pattern in self.ignored)


FLOAT_DTYPES = frozenset(np.dtype(d) for d in (np.float16, np.float32, np.float64, jnp.bfloat16))


def abstract_state(build: Callable[[], nnx.Module]) -> tuple[nnx.GraphDef, nnx.State]:
    """Graph and shape-only state of a model, without allocating its weights."""
    return nnx.split(nnx.eval_shape(build))


# The path component under which a LayerStack keeps its parameters, stacked on a leading layer axis.
STACKED = "stacked"


def per_layer_paths(abstract: nnx.State) -> dict[tuple[str | int, ...], tuple[jax.ShapeDtypeStruct, tuple | None]]:
    """Every parameter as a checkpoint names it: a stacked one as one path per layer
    (`language_model.layers.3.mlp...` for `language_model.layers.stacked.mlp...`[3]).

    -> path: (expected shape and dtype, (stacked path, layer) or None for an unstacked parameter)
    """
    paths = {}
    for path, variable in nnx.to_flat_state(abstract):
        value = variable.get_value()
        if STACKED not in path:
            paths[path] = (jax.ShapeDtypeStruct(value.shape, value.dtype), None)
            continue
        at = path.index(STACKED)
        for layer in range(value.shape[0]):
            paths[path[:at] + (layer,) + path[at + 1 :]] = (
                jax.ShapeDtypeStruct(value.shape[1:], value.dtype),
                (path, layer),
            )
    return paths


def map_weights(
    abstract: nnx.State, tensors: Iterable[tuple[str, str, np.ndarray]], name_map: NameMap
) -> dict[tuple[str | int, ...], np.ndarray]:
    """Checked Flax path -> array for (source, name, array) triples, cast to the abstract state's dtypes.

    Checkpoints name one tensor per layer; stacked parameters are filled layer by layer into one
    preallocated array each (no second copy of the weights). Raises one CheckpointError listing
    every unexpected, missing, misshapen or non-float tensor.
    """
    expected = per_layer_paths(abstract)
    stacked_shapes = {path: variable.get_value().shape for path, variable in nnx.to_flat_state(abstract)}
    arrays: dict[tuple[str | int, ...], np.ndarray] = {}
    filled: set[tuple[str | int, ...]] = set()
    errors: list[str] = []
    for source, name, tensor in tensors:
        if name_map.is_ignored(name):
            continue
        found = name_map.lookup(name)
        if found is None:
            errors.append(f"{source}: unexpected tensor {name} (no rule maps it)")
            continue
        path, transform = found
        where, dotted = f"{source}: tensor {name}", ".".join(map(str, path))
        if path not in expected:
            errors.append(f"{where} maps to {dotted}, which the model built from config.json does not have")
            continue
        shape_dtype, stacked = expected[path]
        if path in filled:
            errors.append(f"{where} maps to {dotted}, already filled by another tensor")
        elif tensor.dtype not in FLOAT_DTYPES:
            errors.append(f"{where} has dtype {tensor.dtype}, expected a floating-point tensor")
        elif (value := transform.apply(tensor)).shape != shape_dtype.shape:
            errors.append(
                f"{where} has shape {tensor.shape} ({transform.value} -> {value.shape}), "
                f"but config.json gives {dotted} shape {shape_dtype.shape}"
            )
        elif stacked is None:
            arrays[path] = np.asarray(value, dtype=shape_dtype.dtype)
            filled.add(path)
        else:
            stacked_path, layer = stacked
            if stacked_path not in arrays:
                arrays[stacked_path] = np.empty(stacked_shapes[stacked_path], shape_dtype.dtype)
            arrays[stacked_path][layer] = value
            filled.add(path)
    errors.extend(f"missing tensor for {'.'.join(map(str, p))}" for p in expected if p not in filled)
    if errors:
        raise CheckpointError("cannot load checkpoint:\n  " + "\n  ".join(errors))
    return arrays


def nest(flat: dict[tuple[str | int, ...], object]) -> dict:
    """{(a, b): x} -> {a: {b: x}}: the pure-dict form orbax and `nnx.replace_by_pure_dict` use."""
    nested: dict = {}
    for path, value in flat.items():
        node = nested
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return nested


def merge_weights(graphdef: nnx.GraphDef, abstract: nnx.State, pure: dict) -> nnx.Module:
    """A live model from its graph, abstract state and a pure dict of arrays."""
    nnx.replace_by_pure_dict(abstract, jax.tree.map(jnp.asarray, pure))
    return nnx.merge(graphdef, abstract)
