"""Run by test_sharding_families.py in a fresh process with 8 fake CPU devices: the tiny
Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision and VILA1.5 models with a mapper, unpruned and pruned, on one device and sharded
over a 2 x 4 (data x model) mesh with each family's own BATCH_AXES. Prints one JSON line per family."""

from __future__ import annotations

import json
import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from tests.prune.test_family_pipeline import CASES  # noqa: E402
from tokcomp_jax.eval.sharding import make_mesh, place_batch, shard_model  # noqa: E402
from tokcomp_jax.mapper import Mapper, MapperConfig  # noqa: E402
from tokcomp_jax.models.families import FAMILIES  # noqa: E402
from tokcomp_jax.prune import PruneConfig, prepare_pruning, pruned_forward  # noqa: E402


def run(model, mapper, inputs, scoring):
    pruned = pruned_forward(model, mapper, inputs, scoring, PruneConfig("mapper", 0.5))
    return [np.asarray(model(inputs).logits), np.asarray(pruned.logits)]


def main():
    assert jax.device_count() == 8, jax.devices()
    for family, (make_config, make_batch, buckets) in sorted(CASES.items()):
        config = make_config()
        model = FAMILIES[family].model(config, rngs=nnx.Rngs(0))
        mapper = Mapper(MapperConfig(num_heads=config.text.num_attention_heads, channels=(8, 8), family=family),
                        rngs=nnx.Rngs(1))  # fmt: skip
        inputs, scoring = prepare_pruning(config, make_batch(config), buckets, mapper=mapper)
        single = run(model, mapper, inputs, scoring)
        mesh = make_mesh(model=4)
        shard_model(model, mesh)
        shard_model(mapper, mesh)
        sharded_inputs, sharded_scoring = place_batch(mesh, inputs, scoring)
        sharded = run(model, mapper, sharded_inputs, sharded_scoring)
        print(json.dumps({
            "family": family,
            "input_ids_spec": str(sharded_inputs.input_ids.sharding.spec),
            "unpruned_logits_diff": float(np.abs(single[0] - sharded[0]).max()),
            "pruned_logits_diff": float(np.abs(single[1] - sharded[1]).max()),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
