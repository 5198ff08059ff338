"""Restore an orbax parameter tree only after its stored shapes and dtypes match what a config builds.

    params = restore_checked(directory / "params", target, described_by=directory / "mapper.json")

Orbax restores into a target of another shape without a word when the stored array is larger (it
reads a slice), so an edited config beside unchanged weights would load as a smaller model with
cropped weights. Here every stored array is compared with the target first: missing and unexpected
parameters, shapes, and (for `stored_dtype`) the dtype the description says was written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from tokcomp_jax.files import CheckpointError


def _name(path) -> str:
    """The dotted name of a tree path, e.g. language_model.layers.stacked.mlp.up_proj.kernel."""
    return ".".join(str(getattr(key, "key", key)) for key in path)


def _by_name(tree: Any) -> dict[str, Any]:
    leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))
    return {_name(path): leaf for path, leaf in leaves}


def mismatches(stored: Any, target: Any, stored_dtype: np.dtype | None = None) -> list[str]:
    """Every difference between stored array metadata and a target tree of ShapeDtypeStructs, by name."""
    stored, target = _by_name(stored), _by_name(target)
    problems = [f"missing parameter {name}" for name in sorted(target.keys() - stored.keys())]
    problems += [f"unexpected parameter {name}" for name in sorted(stored.keys() - target.keys())]
    for name in sorted(stored.keys() & target.keys()):
        have, want = stored[name], target[name]
        if tuple(have.shape) != tuple(want.shape):
            problems.append(f"{name} is stored with shape {tuple(have.shape)}, the config builds {tuple(want.shape)}")
        if stored_dtype is not None and np.issubdtype(have.dtype, np.floating) and have.dtype != stored_dtype:
            problems.append(
                f"{name} is stored as {np.dtype(have.dtype).name}, the description says {stored_dtype.name}"
            )
    return problems


def restore_checked(
    params_dir: Path, target: Any, described_by: Path, stored_dtype: np.dtype | None = None, sharding_of=None
) -> Any:
    """The pure dict under params_dir restored into target (ShapeDtypeStructs), after `mismatches` finds none.
    Every array lands whole on this process's first device, or where `sharding_of(name, shape)` says
    (e.g. over a mesh spanning several hosts: each host reads only its own devices' shards)."""
    if not params_dir.is_dir():
        raise CheckpointError(f"{params_dir} is missing: {described_by} describes parameters that are not there")
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            stored = checkpointer.metadata(params_dir).item_metadata
        except (ValueError, KeyError, FileNotFoundError, OSError) as err:
            raise CheckpointError(f"{params_dir} is not a readable orbax checkpoint ({err})") from None
        stored = stored.tree if hasattr(stored, "tree") else stored
        problems = mismatches(stored, target, stored_dtype)
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise CheckpointError(f"{params_dir} does not match {described_by.name}: {shown}")
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

        def placed(path, leaf):
            sharding = device if sharding_of is None else sharding_of(_name(path), tuple(leaf.shape))
            return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)

        target = jax.tree_util.tree_map_with_path(placed, target, is_leaf=lambda x: hasattr(x, "shape"))
        try:
            return checkpointer.restore(params_dir, target)
        except Exception as err:  # noqa: BLE001 (TensorStore raises a bare Exception for a truncated or deleted file)
            failure = err
    name = _failed_parameter(failure)
    if name is None:
        raise CheckpointError(f"{params_dir} cannot be read ({(str(failure).splitlines() or [''])[0][:200]})")
    raise CheckpointError(
        f"{params_dir}: the stored data of {name} (and perhaps of others) cannot be read: a data file under it is "
        "truncated or missing; copy the model directory again, or convert or save the model again"
    )


def _failed_parameter(error: BaseException) -> str | None:
    """The parameter a failed restore was reading, from TensorStore's message in the exception chain
    (`Error reading "visual.blocks.0.mlp.fc1.kernel/0.0" in OCDBT database ...`)."""
    while error is not None:
        if found := re.search(r'Error reading "([^"/]+)/', str(error)):
            return found.group(1)
        error = error.__cause__ or error.__context__
    return None
