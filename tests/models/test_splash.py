"""The "splash" implementation (Pallas' splash kernel, here in interpret mode on CPU) against the
reference: raw operands under every structured mask, and every family's tiny model (logits of a
whole forward, pruned and unpruned, padded batches). Sharded over a mesh: test_splash_sharded.py.

Tolerances: float32; the kernel sums the same products block by block with an online softmax, so it
differs from the reference by float32 rounding (~1e-7 relative): 1e-6 on attention outputs, 1e-5 on
logits as in the parity tests. Compared at every real query; a CausalMask's padding queries and the
padding run past a WindowMask's band are rows nothing reads (splash.py says why they differ).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.models.test_attention import FAMILY_CASES
from tokcomp_jax.models.common import attention, splash
from tokcomp_jax.models.common.attention import (
    attend,
    attention_kernel,
    attention_output,
    configure_attention,
    dot_product_attention,
)
from tokcomp_jax.models.common.masks import CausalMask, SegmentMask, WindowMask
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.prune import PruneConfig, prepare_pruning, pruned_forward


def _operands(length: int, num_heads: int, num_kv_heads: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return tuple(
        jnp.asarray(rng.standard_normal((2, length, heads, 16)), jnp.float32)
        for heads in (num_heads, num_kv_heads, num_kv_heads)
    )


def _masks(length: int) -> dict[str, tuple]:
    """name -> (mask [2, T, T], real queries [2, T]): the second row of each is padded at its end."""
    valid = np.arange(length)[None] < np.array([[length], [length - 7]])
    segments = np.repeat([0, 1, 2], [length // 2, length // 3, length - length // 2 - length // 3])
    segments = np.stack([segments, np.where(valid[1], segments, -1)])  # a vision tower's pad patches: id -1
    sizes = [16, 16, 7, 16, 3, 12, 16, 16, 9, 16, 16, 16, 1, 16, 10] * 4
    windows = np.concatenate([np.full(size, i) for i, size in enumerate(sizes)])[:length]
    windows = np.where(np.arange(length) < length - 20, windows, -1)  # a padding run longer than a window
    return {
        "causal with padding": (CausalMask(jnp.asarray(valid)), valid),
        "segments": (SegmentMask(jnp.asarray(segments)), np.ones_like(valid)),
        "windows": (WindowMask(jnp.asarray(np.stack([windows, windows])), 16), np.stack([windows >= 0] * 2)),
        "full": (SegmentMask(jnp.zeros((2, length), jnp.int32)), np.ones_like(valid)),
    }


@pytest.mark.parametrize("length", [37, 300])  # padded to one block of 128; to 384, three blocks
@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (6, 1)])
def test_splash_equals_the_reference_at_every_real_query(length, heads):
    query, key, value = _operands(length, *heads)
    output = jax.jit(attention_output, static_argnums=(4, 5))
    for name, (mask, real) in _masks(length).items():
        expected = dot_product_attention(query, key, value, mask)[0]
        got, probs = output(query, key, value, mask, "splash", False)
        assert probs is None and got.shape == expected.shape
        np.testing.assert_allclose(np.asarray(got)[real], np.asarray(expected)[real], atol=1e-6, err_msg=name)


def test_splash_in_bfloat16_stays_within_bfloat16_rounding_of_the_reference():
    """The TPU's dtype: bfloat16 operands, the kernel's float32 scores and softmax, a bfloat16 output."""
    query, key, value = (x.astype(jnp.bfloat16) for x in _operands(300, 4, 2))
    for name, (mask, real) in _masks(300).items():
        expected = dot_product_attention(query, key, value, mask)[0].astype(jnp.float32)
        got = attention_output(query, key, value, mask, "splash", False)[0]
        assert got.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(got.astype(jnp.float32))[real], np.asarray(expected)[real], atol=2e-2,
                                   err_msg=name)  # fmt: skip


def test_splash_gradients_equal_the_reference():
    """The kernel's own backward pass (its dq and dkv kernels) under a causal mask with padding."""
    query, key, value = _operands(200, 4, 2)
    mask, real = _masks(200)["causal with padding"]
    weights = jnp.asarray(real, jnp.float32)[..., None, None]

    def loss(implementation):
        def of(query, key, value):
            output = attention_output(query, key, value, mask, implementation, False)[0]
            return (output * weights).sum()

        return jax.grad(of, argnums=(0, 1, 2))(query, key, value)

    for got, expected in zip(loss("splash"), loss("reference"), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-5)


def test_windows_and_causal_masks_skip_whole_blocks():
    """The static part of each mask as the kernel sees it (heads alike, so counted once): 4096
    positions in 8 x 8 query x key blocks of 512. A causal mask computes the 36 on and below the
    diagonal; windows of 16 the 22 their band touches (each block and the neighbours its edges
    cross); a segment mask all 64 (its segment ids decide per position)."""
    computed = {
        name: int((np.asarray(splash._kernel(kernel_mask, 4096, 2, True).fwd_mask_info.block_mask) > 0).sum())
        for name, kernel_mask in {"causal": ("causal",), "windows": ("local", 16), "segments": ("full",)}.items()
    }
    assert computed == {"causal": 36, "windows": 22, "segments": 64}, computed


def test_a_decode_step_and_dense_masks_attend_by_xla():
    query, key, value = _operands(40, 4, 2)
    assert attention_kernel(query, key, "splash") == "splash"
    assert attention_kernel(query[:, :1], key, "splash") == "xla"
    mask = jnp.broadcast_to(jnp.arange(40) < 31, (2, 1, 40))
    expected = dot_product_attention(query[:, :1], key, value, mask)[0]
    np.testing.assert_allclose(np.asarray(attend(query[:, :1], key, value, mask, "splash")), expected, atol=1e-6)


def test_auto_chooses_splash_on_a_tpu(monkeypatch):
    query, key, _ = _operands(40, 4, 2)
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    assert attention_kernel(query, key) == "splash"
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert attention_kernel(query, key) == "xla"  # "fused", without cuDNN's conditions


@pytest.mark.parametrize("family", sorted(FAMILY_CASES))
def test_every_family_gives_the_reference_logits_under_splash(monkeypatch, family):
    """Every vision block (segments; Qwen2.5-VL's windows) and every LLM layer but the first (whose
    attention is read) under splash, a padded batch of two samples: unpruned, pruned at the LLM input by
    layer-1 attention to half its visual tokens, and by FastV inside the LLM (after layer 1)."""
    masks = []
    real_splash = attention.splash_attention
    monkeypatch.setattr(attention, "splash_attention", lambda *args: masks.append(type(args[3])) or real_splash(*args))
    make_config, make_batch, buckets = FAMILY_CASES[family]
    config = make_config()
    model = FAMILIES[family].model(config, rngs=nnx.Rngs(0))
    inputs, scoring = prepare_pruning(config, make_batch(config), buckets)
    input_level, in_llm = PruneConfig("attention", 0.5), PruneConfig("fastv", 0.5, layer=1)

    def run(model, inputs, scoring):
        return (model(inputs), *(pruned_forward(model, None, inputs, scoring, p) for p in (input_level, in_llm)))

    outputs = {}
    for implementation in ("reference", "splash"):
        outputs[implementation] = nnx.jit(run)(configure_attention(model, implementation), inputs, scoring)
    assert set(masks) == {CausalMask, SegmentMask} | ({WindowMask} if family == "qwen2_5_vl" else set())
    (full, *pruned), (splash_full, *splash_pruned) = outputs["reference"], outputs["splash"]
    real = np.asarray(inputs.attention_mask).astype(bool)
    np.testing.assert_allclose(np.asarray(splash_full.logits)[real], np.asarray(full.logits)[real], atol=1e-5)
    for expected, got in zip(pruned, splash_pruned, strict=True):  # at the LLM input; inside it, FastV after layer 1
        kept = np.asarray(expected.attention_mask).astype(bool)
        assert kept.sum() < real.sum()
        np.testing.assert_allclose(np.asarray(got.logits)[kept], np.asarray(expected.logits)[kept], atol=1e-5)


def _sharded(families: list[str]) -> list[dict]:
    """tests/models/sharded_splash.py's JSON lines, in a process of its own with 8 fake CPU devices."""
    script = Path(__file__).with_name("sharded_splash.py")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, str(script), *families], capture_output=True, text=True, env=env, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _check_sharded(results: list[dict], families: list[str]) -> None:
    """Tolerance 1e-4 as for the sharded parity tests: a sharded contraction sums in another order."""
    assert sorted({(r["family"], r["mesh"]) for r in results}) == [
        (f, m) for f in sorted(families) for m in ("2x2", "2x4")
    ]
    for result in results:
        assert result["unpruned_logits_diff"] < 1e-4 and result["pruned_logits_diff"] < 1e-4, result
        # the vision blocks' heads split over `model` on both meshes; the LLM's over data x model on
        # 2 x 2, over data only on 2 x 4 (4 devices do not divide its 2 key/value heads)
        llm = "P('data', 'model')" if result["mesh"] == "2x2" else "P('data', None)"
        assert llm in result["kernel_specs"] and any("'model'" in s for s in result["kernel_specs"]), result


def test_splash_under_shard_map_equals_one_device():
    """Qwen2.5-VL: causal, segment and window masks, over a 2 x 2 and a 2 x 4 mesh of 8 fake devices."""
    _check_sharded(_sharded(["qwen2_5_vl"]), ["qwen2_5_vl"])


@pytest.mark.slow  # ~35 s a family; the default suite runs Qwen2.5-VL, which has every kind of mask
def test_every_family_under_shard_map_equals_one_device():
    families = sorted(FAMILY_CASES)
    _check_sharded(_sharded(families), families)


def test_splash_off_a_tpu_warns_that_it_runs_in_interpret_mode(caplog):
    model = FAMILIES["qwen2_vl"].model(FAMILY_CASES["qwen2_vl"][0](), rngs=nnx.Rngs(0))
    configure_attention(model, "splash")
    assert "interpret mode" in caplog.text


def test_greedy_generation_under_splash_gives_the_reference_tokens():
    """A prefill by splash into the KV cache, then decode steps by XLA's kernel (one query, a dense
    mask): Qwen2.5-VL's tokens, unpruned and pruned, equal the reference's."""
    from tokcomp_jax.generate import generate

    make_config, make_batch, buckets = FAMILY_CASES["qwen2_5_vl"]
    config = make_config()
    model = FAMILIES["qwen2_5_vl"].model(config, rngs=nnx.Rngs(0))
    inputs, scoring = prepare_pruning(config, make_batch(config), buckets)
    tokens = {}
    for implementation in ("reference", "splash"):
        configure_attention(model, implementation)
        tokens[implementation] = [
            np.asarray(generate(model, inputs, max_new_tokens=4, eos_token_id=-1, **pruning).tokens)
            for pruning in ({}, {"scoring": scoring, "prune": PruneConfig("attention", 0.5)})
        ]
    for expected, got in zip(tokens["reference"], tokens["splash"], strict=True):
        np.testing.assert_array_equal(got, expected)
