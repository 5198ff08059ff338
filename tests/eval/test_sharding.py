"""Sharding: rules from data, and the same results on one device and on a 2 x 4 mesh of fake devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from tokcomp_jax.eval.sharding import make_mesh, param_spec


def test_param_specs_follow_the_rules_and_replicate_what_does_not_divide():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    assert param_spec("language_model.layers.3.mlp.down_proj.kernel", (128, 64), mesh) == P("model", None)
    assert param_spec("language_model.embed_tokens.embedding", (320, 64), mesh) == P("model", None)
    assert param_spec("language_model.layers.0.input_layernorm.scale", (64,), mesh) == P(None)
    fake = type("FakeMesh", (), {"shape": {"data": 2, "model": 3}})()
    assert param_spec("language_model.layers.0.self_attn.k_proj.kernel", (64, 32), fake) == P(None, None)
    with pytest.raises(ValueError, match="needs 6 devices"):
        make_mesh(model=3, data=2)


def test_sharded_results_equal_single_device_on_eight_fake_devices():
    """Tolerance 1e-4 as for parity: a sharded contraction sums in a different order (~4e-6 seen)."""
    script = Path(__file__).with_name("sharded_equals_single.py")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["mesh"] == {"data": 2, "model": 4}
    assert result["mlp_kernel_shards"] == 8 and result["mlp_kernel_shard_shape"] == [64, 32]
    assert result["input_ids_spec"].startswith("P('data'")
    assert result["unpruned_logits_diff"] < 1e-4 and result["pruned_logits_diff"] < 1e-4, result
    assert result["tokens_equal"], result
    # unrolled, each layer's own kernel keeps the stacked one's sharding
    assert result["unrolled_kernel_spec"] == "P(None, 'model')", result
    assert result["unrolled_kernel_shard_shape"] == [64, 32]
    assert result["unrolled_unpruned_logits_diff"] < 1e-4 and result["unrolled_pruned_logits_diff"] < 1e-4, result
    assert result["unrolled_tokens_equal"], result


def test_an_orbax_model_restores_straight_into_the_shardings_asked_for(tmp_path):
    """tokcomp_jax.load(sharding_of=...) asks once per parameter, by the path the sharding rules
    match, and the restored model equals a plain load."""
    from flax import nnx

    import tokcomp_jax
    from tokcomp_jax.eval.sharding import param_sharding
    from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig
    from tokcomp_jax.models.checkpoint import save
    from tokcomp_jax.models.families import FAMILIES

    config = Qwen2VLConfig.tiny()
    weights = nnx.to_pure_dict(nnx.state(Qwen2VL(config, rngs=nnx.Rngs(0)), nnx.Param))
    save(tmp_path / "model", FAMILIES["qwen2_vl"], config, "float32", weights)
    mesh = make_mesh(devices=jax.devices()[:1])
    asked = {}

    def sharding_of(path, shape):
        asked[path] = param_sharding(mesh, path, shape)
        return asked[path]

    model = tokcomp_jax.load(tmp_path / "model", sharding_of=sharding_of)
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    assert sorted(asked) == sorted(".".join(map(str, path)) for path in flat)
    assert asked["language_model.layers.stacked.mlp.down_proj.kernel"].spec == P(None, "model", None)
    plain = nnx.state(tokcomp_jax.load(tmp_path / "model"), nnx.Param)
    for path, variable in nnx.to_flat_state(plain):
        assert flat[path].get_value().sharding == asked[".".join(map(str, path))]
        np.testing.assert_array_equal(np.asarray(flat[path].get_value()), np.asarray(variable.get_value()))
