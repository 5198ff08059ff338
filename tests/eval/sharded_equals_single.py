"""Run by test_sharding.py in a fresh process with 8 fake CPU devices: the tiny model and a mapper,
unpruned and pruned, once on one device and sharded over a 2 x 4 (data x model) mesh, its decoder
layers scanned and then unrolled.
Prints one JSON line of max abs differences and whether generated tokens are equal."""

from __future__ import annotations

import json
import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from tokcomp_jax.benchmark import random_image_batch  # noqa: E402
from tokcomp_jax.eval.sharding import make_mesh, place_batch, shard_model  # noqa: E402
from tokcomp_jax.generate import generate  # noqa: E402
from tokcomp_jax.mapper import Mapper, MapperConfig  # noqa: E402
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig  # noqa: E402
from tokcomp_jax.prune import Buckets, PruneConfig, prepare_pruning, pruned_forward  # noqa: E402


def run(model, mapper, inputs, scoring):
    pruned = pruned_forward(model, mapper, inputs, scoring, PruneConfig("mapper", 0.5))
    unpruned = model(inputs)
    tokens = generate(model, inputs, max_new_tokens=4, eos_token_id=-1, mapper=mapper, scoring=scoring,
                      prune=PruneConfig("mapper", 0.5)).tokens  # fmt: skip
    return [np.asarray(x) for x in (unpruned.logits, pruned.logits, tokens)]


def main():
    assert jax.device_count() == 8, jax.devices()
    config = Qwen2VLConfig.tiny()
    model = Qwen2VL(config, rngs=nnx.Rngs(0))
    mapper = Mapper(MapperConfig(num_heads=config.text.num_attention_heads, channels=(8, 16)), rngs=nnx.Rngs(1))
    grids = [(4, 4), (4, 6), (6, 4), (2, 4), (4, 4), (6, 6), (2, 2), (4, 2)]
    batch = random_image_batch(config, grids, seed=0)
    buckets = Buckets(text=16, visual=16, frame_patches=64)
    inputs, scoring = prepare_pruning(config, batch, buckets, mapper=mapper)
    single = run(model, mapper, inputs, scoring)
    mesh = make_mesh(model=4)
    shard_model(model, mesh)
    shard_model(mapper, mesh)
    kernel = model.language_model.layers[0].mlp.up_proj.kernel
    sharded_inputs, sharded_scoring = place_batch(mesh, inputs, scoring)
    sharded = run(model, mapper, sharded_inputs, sharded_scoring)
    model.language_model.layers.configure(scan=False)  # one sharded parameter set per layer
    unrolled_kernel = model.language_model.layers[0].mlp.up_proj.kernel[...]
    unrolled = run(model, mapper, sharded_inputs, sharded_scoring)
    print(json.dumps({
        "mesh": dict(mesh.shape),
        "mlp_kernel_shards": len(kernel[...].sharding.device_set),
        "mlp_kernel_shard_shape": list(kernel[...].addressable_shards[0].data.shape),
        "input_ids_spec": str(sharded_inputs.input_ids.sharding.spec),
        "unpruned_logits_diff": float(np.abs(single[0] - sharded[0]).max()),
        "pruned_logits_diff": float(np.abs(single[1] - sharded[1]).max()),
        "tokens_equal": bool((single[2] == sharded[2]).all()),
        "unrolled_kernel_spec": str(unrolled_kernel.sharding.spec),
        "unrolled_kernel_shard_shape": list(unrolled_kernel.addressable_shards[0].data.shape),
        "unrolled_unpruned_logits_diff": float(np.abs(single[0] - unrolled[0]).max()),
        "unrolled_pruned_logits_diff": float(np.abs(single[1] - unrolled[1]).max()),
        "unrolled_tokens_equal": bool((single[2] == unrolled[2]).all()),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
