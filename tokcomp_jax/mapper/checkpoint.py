"""Save a trained mapper (config + parameters, orbax) and load it for inference."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx

from tokcomp_jax.files import directory_written_atomically
from tokcomp_jax.mapper.inputs import MapperBatch
from tokcomp_jax.mapper.model import Mapper, MapperConfig
from tokcomp_jax.models.safetensors_io import CheckpointError, read_json_object
from tokcomp_jax.orbax_params import restore_checked

CONFIG_FILE = "mapper.json"
PARAMS_DIR = "params"


def save_mapper(directory: str | Path, mapper: Mapper) -> Path:
    """Write mapper.json and an orbax parameter checkpoint under directory (created or replaced),
    atomically: a kill leaves the previous mapper or the new one, never a mixture."""
    directory = Path(directory).absolute()
    with directory_written_atomically(directory, overwrite=True) as partial:
        (partial / CONFIG_FILE).write_text(json.dumps(mapper.config.to_dict(), indent=2) + "\n")
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(partial / PARAMS_DIR, nnx.to_pure_dict(nnx.state(mapper, nnx.Param)))
    return directory


def load_mapper(directory: str | Path) -> Mapper:
    """A trained mapper from save_mapper's directory; every stored shape is checked against mapper.json."""
    directory = Path(directory).absolute()
    if not (directory / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{directory} is not a mapper directory (no {CONFIG_FILE})")
    try:
        config = MapperConfig.from_dict(read_json_object(directory / CONFIG_FILE))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {err}") from None
    abstract = nnx.eval_shape(lambda: Mapper(config, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.to_pure_dict(nnx.state(abstract, nnx.Param)))
    params = restore_checked(directory / PARAMS_DIR, target, directory / CONFIG_FILE)
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


@nnx.jit
def mapper_scores(mapper: Mapper, batch: MapperBatch) -> jax.Array:
    """Predicted relevance logits [B, N] (higher = keep), -inf at padding; jit-compiled once per bucket."""
    return jnp.where(batch.mask, mapper(batch), -jnp.inf)
