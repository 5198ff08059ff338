"""Run by test_sharding_families.py: every family's tiny model with a mapper, unpruned, pruned and
generating, on one device and sharded over a 2 x 4 (data x model) mesh with each family's own
BATCH_AXES. Prints one JSON line per family.

    python sharded_families.py                    # one process, 8 fake CPU devices
    python sharded_families.py PROCESS_ID PORT    # one of 2 processes x 4 devices: one global mesh
"""

from __future__ import annotations

import json
import os
import sys

HOSTS = 2
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={8 // HOSTS if len(sys.argv) > 1 else 8}"

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
if len(sys.argv) > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{sys.argv[2]}", HOSTS, int(sys.argv[1]))

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from conversion.verify import random_batch  # noqa: E402
from tests.prune.test_family_pipeline import CASES  # noqa: E402
from tokcomp_jax.eval.sharding import fetch, make_mesh, place_batch, shard_model  # noqa: E402
from tokcomp_jax.generate import generate  # noqa: E402
from tokcomp_jax.mapper import Mapper, MapperConfig  # noqa: E402
from tokcomp_jax.models import Qwen2VLConfig  # noqa: E402
from tokcomp_jax.models.families import FAMILIES  # noqa: E402
from tokcomp_jax.prune import Buckets, PruneConfig, prepare_pruning, pruned_forward  # noqa: E402

FAMILY_CASES = CASES | {
    "qwen2_vl": (Qwen2VLConfig.tiny, lambda c: random_batch(c, [[("image", 84, 168)], [("video", 2, 56, 84)]]),
                 Buckets(text=16, visual=24, queries=8)),
}  # fmt: skip


def run(model, mapper, inputs, scoring):
    prune = PruneConfig("mapper", 0.5)
    pruned = pruned_forward(model, mapper, inputs, scoring, prune)
    tokens = generate(model, inputs, max_new_tokens=4, eos_token_id=-1, mapper=mapper, scoring=scoring, prune=prune)
    return fetch([model(inputs).logits, pruned.logits, tokens.tokens])


def main():
    assert jax.device_count() == 8, jax.devices()
    for family, (make_config, make_batch, buckets) in sorted(FAMILY_CASES.items()):
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
            "tokens_equal": bool((single[2] == sharded[2]).all()),
            "hosts": len({device.process_index for device in mesh.devices.flat}),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
