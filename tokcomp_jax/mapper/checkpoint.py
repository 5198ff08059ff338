"""Save a trained mapper (config + parameters, orbax) and load it for inference."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx

from tokcomp_jax.files import CheckpointError, directory_written_atomically, read_json_object
from tokcomp_jax.mapper.inputs import MapperBatch
from tokcomp_jax.mapper.model import Mapper, MapperConfig
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


def read_mapper_config(directory: str | Path) -> MapperConfig:
    """A trained mapper's MapperConfig (mapper.json), without reading its weights; a path that does not
    exist, a training workdir given for its mapper/ and a folder that holds no mapper are told apart."""
    directory = Path(directory).absolute()
    if not (directory / CONFIG_FILE).exists():
        if not directory.exists():
            raise FileNotFoundError(f"mapper {directory} does not exist")
        if (directory / "mapper" / CONFIG_FILE).exists():
            raise FileNotFoundError(
                f"{directory} is a mapper's training directory; pass the trained mapper in it: {directory / 'mapper'}"
            )
        raise FileNotFoundError(f"{directory} is not a mapper directory (no {CONFIG_FILE})")
    try:
        return MapperConfig.from_dict(read_json_object(directory / CONFIG_FILE))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {err}") from None


def check_mapper_family(config: MapperConfig, family: str, mapper: str | Path, model: str | Path) -> None:
    """Refuse a mapper for another family's model, or one that records no family (trained without
    --config.data.family): its scores would be read from attention it never saw, silently."""
    if config.family is None:
        raise ValueError(
            f"mapper {mapper} records no model family (trained without --config.data.family), so nothing says it fits "
            f"{family} model {model}; train it again with --config.data.family=<the family of the labelling model>"
        )
    if config.family != family:
        raise ValueError(
            f"mapper {mapper} was trained on {config.family} attention, but {model} is a {family} model; use a mapper "
            f"trained on labels of this model (scripts/label.py, then scripts/train_mapper.py)"
        )


def load_mapper(directory: str | Path) -> Mapper:
    """A trained mapper from save_mapper's directory; every stored shape is checked against mapper.json."""
    directory = Path(directory).absolute()
    config = read_mapper_config(directory)
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
