"""The relevance mapper: first-layer attention features -> predicted relevance of each visual token."""

from tokcomp_jax.mapper.checkpoint import (
    check_mapper_family,
    load_mapper,
    mapper_scores,
    read_mapper_config,
    save_mapper,
)
from tokcomp_jax.mapper.inputs import MapperBatch, make_batch
from tokcomp_jax.mapper.model import Mapper, MapperConfig

__all__ = [
    "Mapper",
    "MapperBatch",
    "MapperConfig",
    "check_mapper_family",
    "load_mapper",
    "make_batch",
    "mapper_scores",
    "read_mapper_config",
    "save_mapper",
]
