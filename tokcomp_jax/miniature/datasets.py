"""The miniature's data: both generated grounded-VQA datasets, split by split."""

from __future__ import annotations

from pathlib import Path

from tokcomp_jax.data import vqa
from tokcomp_jax.data.cluttered import ClutteredDigitsVqa
from tokcomp_jax.data.digits_grid import DigitsGridVqa
from tokcomp_jax.data.scenes_vqa import SyntheticScenesVqa

BUILDERS = {builder.name: builder for builder in (ClutteredDigitsVqa, SyntheticScenesVqa, DigitsGridVqa)}


def load_splits(builder_names, config_name: str, data_dir: str | Path) -> dict[str, list[dict]]:
    """Generate (or reuse) each named dataset under data_dir; split name -> examples of all of them."""
    unknown = set(builder_names) - set(BUILDERS)
    if unknown:
        raise ValueError(f"unknown datasets {sorted(unknown)}; known: {sorted(BUILDERS)}")
    splits: dict[str, list[dict]] = {}
    for name in builder_names:
        builder = vqa.build(BUILDERS[name], data_dir, config_name)
        for split in builder.info.splits:
            splits.setdefault(split, []).extend(vqa.read_examples(builder, split))
    return splits
