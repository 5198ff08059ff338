"""The relevance mapper: first-layer attention features -> predicted relevance of each visual token."""

from tokcomp_jax.mapper.checkpoint import load_mapper, mapper_scores, save_mapper
from tokcomp_jax.mapper.inputs import MapperBatch, make_batch
from tokcomp_jax.mapper.model import Mapper, MapperConfig

__all__ = ["Mapper", "MapperBatch", "MapperConfig", "load_mapper", "make_batch", "mapper_scores", "save_mapper"]
