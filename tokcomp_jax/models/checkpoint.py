"""Save and load models: orbax checkpoints written by `conversion/`, or HF directories read directly.

An orbax model directory holds `tokcomp_model.json` (family, dtype, config) and `params/` (the
pure parameter dict). A HF directory holds `config.json` and `*.safetensors`; PyTorch `*.bin`
weights need `python -m conversion.convert` (the runtime package never imports torch).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from tokcomp_jax.files import CheckpointError, directory_written_atomically, read_json_object
from tokcomp_jax.models.families import FAMILIES, Family, family_of_hf_config
from tokcomp_jax.models.loading import abstract_state, map_weights, merge_weights, nest
from tokcomp_jax.models.safetensors_io import iter_safetensors, safetensors_files
from tokcomp_jax.orbax_params import restore_checked

MODEL_FILE = "tokcomp_model.json"
PARAMS_DIR = "params"
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def jax_dtype(name: str) -> jnp.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype {name!r} is not supported; choose one of {sorted(DTYPES)}")
    return DTYPES[name]


def read_hf_config(directory: str | os.PathLike) -> tuple[Family, Any]:
    """(family, model config) of a HF directory's config.json."""
    path = Path(directory) / "config.json"
    if not path.exists():
        raise CheckpointError(not_a_model(Path(directory)))
    hf_config = read_json_object(path)
    try:
        family = family_of_hf_config(hf_config)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}{_part_hint(Path(directory))}") from None
    try:
        return family, family.read_config(directory)
    except (KeyError, TypeError, ValueError) as err:
        reason = f"missing field {err}" if isinstance(err, KeyError) else str(err)
        raise CheckpointError(f"{path}: cannot build a {family.name} config: {reason}") from None


def not_a_model(path: Path) -> str:
    """Why `path` is no model directory: missing, a file, a trained mapper, or a folder of something else."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir():
        return f"{path} is a file, not a model directory"
    if (path / "mapper.json").is_file():
        return f"{path} is a trained mapper, not a model (give it as the mapper)"
    return (f"{path} holds no config.json (a Hugging Face checkpoint) nor {MODEL_FILE} (a converted model): "
            "not a model directory")  # fmt: skip


def _part_hint(directory: Path) -> str:
    """'; this looks like VILA1.5's llm/ part: ...' where `directory` is a part of a checkpoint whose
    weights are in parts (a family's checkpoint_parts) and its parent's config.json is that family's."""
    parent = directory.absolute().parent
    try:
        family = family_of_hf_config(read_json_object(parent / "config.json"))
    except (OSError, ValueError):
        family = None
    parts = {part: f for f in FAMILIES.values() for part in f.checkpoint_parts}
    if family is None and directory.name not in parts:
        return ""
    family = family or parts[directory.name]
    if directory.name not in family.checkpoint_parts:
        return ""
    name = family.display_name or family.name
    return f"; this looks like {name}'s {directory.name}/ part: pass the checkpoint's top directory ({parent})"


def hf_tensors(directory: str | os.PathLike, family: Family) -> Iterator[tuple[str, str, np.ndarray]]:
    """A HF directory's tensors as the family's name map expects them. A family whose weights are in
    parts (VILA1.5: llm/, vision_tower/, mm_projector/) gets each part's names prefixed "<part>/"."""
    if not family.checkpoint_parts:
        yield from hf_safetensors(directory)
        return
    for part in family.checkpoint_parts:
        for source, name, tensor in hf_safetensors(Path(directory) / part):
            yield f"{part}/{source}", f"{part}/{name}", tensor


def hf_safetensors(directory: str | os.PathLike) -> Iterator[tuple[str, str, np.ndarray]]:
    """The tensors of a HF directory's safetensors; a directory with only `*.bin` is sent to conversion."""
    if not safetensors_files(directory):
        bins = sorted(Path(directory).glob("*.bin"))
        hint = " (PyTorch .bin weights: convert them with `python -m conversion.convert`)" if bins else ""
        raise CheckpointError(f"{directory} has no *.safetensors files{hint}")
    return iter_safetensors(directory)


def save(directory: str | os.PathLike, family: Family, config: Any, dtype: str, params: dict) -> None:
    """Write (or replace) an orbax model directory from a pure parameter dict (numpy or jax arrays),
    atomically: a kill leaves the previous directory or the new one, never a mixture."""
    meta = {"family": family.name, "dtype": dtype, "config": config.to_dict()}
    with directory_written_atomically(directory, overwrite=True) as partial:
        (partial / MODEL_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(partial / PARAMS_DIR, _string_keys(params))


def _string_keys(tree: Any) -> Any:
    """Orbax stores dict keys as strings; layer indices are ints in nnx paths."""
    if isinstance(tree, dict):
        return {str(k): _string_keys(v) for k, v in tree.items()}
    return tree


def _restore(directory: Path, family: Family, config: Any, dtype: str, stored_dtype: str, sharding_of) -> nnx.Module:
    graphdef, abstract = abstract_state(family.builder(config, jax_dtype(dtype)))
    target = _string_keys(nnx.to_pure_dict(abstract))
    if _stores_layers_one_by_one(directory / PARAMS_DIR):
        raise CheckpointError(
            f"{directory / PARAMS_DIR} stores the decoder layers one by one (written before they were "
            "stacked); convert the source checkpoint again with `python -m conversion.convert`"
        )
    stored = np.dtype(jax_dtype(stored_dtype))
    restored = restore_checked(directory / PARAMS_DIR, target, directory / MODEL_FILE, stored, sharding_of)
    return merge_weights(graphdef, abstract, _int_keys(restored))


def _stores_layers_one_by_one(params_dir: Path) -> bool:
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            layers = checkpointer.metadata(params_dir).item_metadata["language_model"]["layers"]
    except (KeyError, TypeError, ValueError, FileNotFoundError):
        return False
    return "0" in layers


def _int_keys(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {int(k) if k.isdigit() else k: _int_keys(v) for k, v in tree.items()}
    return tree


def read_model_config(path: str | os.PathLike) -> tuple[Family, Any, str | None]:
    """(family, model config, stored dtype or None for HF) of an orbax or HF model directory,
    without reading any weight."""
    path = Path(path).absolute()
    if (path / MODEL_FILE).exists():
        meta = read_json_object(path / MODEL_FILE)
        if meta.get("family") not in FAMILIES:
            raise CheckpointError(
                f"{path / MODEL_FILE}: unknown family {meta.get('family')!r}; known: {sorted(FAMILIES)}"
            )
        family = FAMILIES[meta["family"]]
        try:
            config = family.config_from_dict(meta["config"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path / MODEL_FILE}: cannot build a {family.name} config ({err!r})") from None
        stored_dtype = meta.get("dtype")
        if stored_dtype not in DTYPES:
            raise CheckpointError(f"{path / MODEL_FILE}: field 'dtype' is {stored_dtype!r}; one of {sorted(DTYPES)}")
        return family, config, stored_dtype
    if (path / "config.json").exists():
        return *read_hf_config(path), None
    replaced = path.with_name(f".{path.name}.replaced")
    if not path.exists() and replaced.exists():
        raise CheckpointError(f"{path} does not exist; an overwrite killed mid-way left the previous model whole in "
                              f"{replaced} (the next write to {path.name} restores it, or rename it back)")  # fmt: skip
    raise CheckpointError(not_a_model(path))


def load(path: str | os.PathLike, dtype: str | None = None, sharding_of=None) -> nnx.Module:
    """A Flax model from an orbax model directory or a HF directory (config.json + safetensors).

    `dtype` ("float32" or "bfloat16") defaults to the stored one for orbax, float32 for HF.
    `sharding_of(parameter path, shape)` (e.g. tokcomp_jax.eval.sharding.param_sharding over a mesh)
    restores an orbax directory's parameters straight into their shardings, each host reading only
    its own devices' shards; a HF directory is read whole (shard it after, or convert it first).
    """
    path = Path(path).absolute()
    family, config, stored_dtype = read_model_config(path)
    if stored_dtype is not None:
        return _restore(path, family, config, dtype or stored_dtype, stored_dtype, sharding_of)
    graphdef, abstract = abstract_state(family.builder(config, jax_dtype(dtype or "float32")))
    params = map_weights(abstract, hf_tensors(path, family), family.name_map(config))
    return merge_weights(graphdef, abstract, nest(params))
