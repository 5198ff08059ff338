"""The miniature's data: both generated grounded-VQA datasets, split by split."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tokcomp_jax.data import vqa
from tokcomp_jax.data.cluttered import ClutteredDigitsVqa
from tokcomp_jax.data.digits_grid import DigitsGridVqa
from tokcomp_jax.data.scenes_vqa import SyntheticScenesVqa

BUILDERS = {builder.name: builder for builder in (ClutteredDigitsVqa, SyntheticScenesVqa, DigitsGridVqa)}


def load_splits(builder_names, config_name: str, data_dir: str | Path, seed: int = 0) -> dict[str, list[dict]]:
    """Generate (or reuse) each named dataset under data_dir; split name -> examples of all of them.

    `seed` 0 is the named config itself; another seed draws every image and question afresh (a
    config named `{config_name}-seed{seed}`)."""
    unknown = set(builder_names) - set(BUILDERS)
    if unknown:
        raise ValueError(f"unknown datasets {sorted(unknown)}; known: {sorted(BUILDERS)}")
    splits: dict[str, list[dict]] = {}
    for name in builder_names:
        config = _seeded(BUILDERS[name], config_name, seed)
        builder = vqa.build(BUILDERS[name], data_dir, config)
        for split in builder.info.splits:
            splits.setdefault(split, []).extend(vqa.read_examples(builder, split))
    return splits


def _seeded(builder_class, config_name: str, seed: int):
    if seed == 0:
        return config_name
    configs = {config.name: config for config in builder_class.BUILDER_CONFIGS}
    if config_name not in configs:
        raise ValueError(f"unknown {builder_class.name} config {config_name!r}; known: {sorted(configs)}")
    return dataclasses.replace(configs[config_name], name=f"{config_name}-seed{seed}", seed=seed)
