"""Run by test_splash.py: every family's tiny model (or those named on the command line) under
"splash", unpruned and pruned, on one device and sharded over two data x model meshes of 8 fake CPU
devices, the forward run under jax.set_mesh so the kernel runs under shard_map. Prints one JSON
line per family and mesh.

    python sharded_splash.py [FAMILY ...]
"""

from __future__ import annotations

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from tests.models.test_attention import FAMILY_CASES  # noqa: E402
from tokcomp_jax.eval.sharding import fetch, make_mesh, place_batch, shard_model  # noqa: E402
from tokcomp_jax.models.common.attention import configure_attention  # noqa: E402
from tokcomp_jax.models.families import FAMILIES  # noqa: E402
from tokcomp_jax.prune import PruneConfig, prepare_pruning, pruned_forward  # noqa: E402

# data x model over 8 devices: (2, 2) splits the tiny models' 4 query and 2 key/value heads, vision's
# 4 and 4; (2, 4) splits the vision towers' heads, not the LLM's 2 key/value heads (rows only there).
MESHES = {"2x2": (2, 2), "2x4": (2, 4)}


def main(families: list[str]):
    assert jax.device_count() == 8, jax.devices()
    prune = PruneConfig("attention", 0.5)
    for family in families or sorted(FAMILY_CASES):
        make_config, make_batch, buckets = FAMILY_CASES[family]
        config = make_config()
        model = configure_attention(FAMILIES[family].model(config, rngs=nnx.Rngs(0)), "splash")
        inputs, scoring = prepare_pruning(config, make_batch(config), buckets)
        run = _forwards(nnx.graphdef(model), prune)

        single = fetch(jax.jit(run)(nnx.state(model), inputs, scoring))
        for name, (data, heads) in MESHES.items():
            mesh = make_mesh(model=heads, data=data, devices=jax.devices()[: data * heads])
            shard_model(model, mesh)
            sharded_inputs, sharded_scoring = place_batch(mesh, inputs, scoring)
            with jax.set_mesh(mesh):
                jaxpr = str(jax.make_jaxpr(run)(nnx.state(model), sharded_inputs, sharded_scoring))
                sharded = fetch(jax.jit(run)(nnx.state(model), sharded_inputs, sharded_scoring))
            print(json.dumps({
                "family": family,
                "mesh": name,
                "kernel_specs": sorted(set(_kernel_specs(jaxpr))),
                "unpruned_logits_diff": float(np.abs(single[0] - sharded[0]).max()),
                "pruned_logits_diff": float(np.abs(single[1] - sharded[1]).max()),
            }))  # fmt: skip


def _forwards(graphdef, prune: PruneConfig):
    """(model state, inputs, scoring) -> unpruned and pruned logits."""

    def run(state, inputs, scoring):
        model = nnx.merge(graphdef, state)
        return model(inputs).logits, pruned_forward(model, None, inputs, scoring, prune).logits

    return run


def _kernel_specs(jaxpr: str) -> list[str]:
    """The output PartitionSpec of every shard_map in a printed jaxpr: how each kernel call is split."""
    return [line.split("out_specs=(")[1].rsplit(",)", 1)[0] for line in jaxpr.splitlines() if "out_specs=(" in line]


if __name__ == "__main__":
    main(sys.argv[1:])
