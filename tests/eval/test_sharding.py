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
