"""attend's implementations against the reference attention: on raw operands (GQA, causal and
padding masks, block-diagonal segments, lengths that are not a multiple of the tile) and on every
family's tiny model (logits, first-layer attention, relevance, greedy tokens).

Tolerances: float32 throughout; the implementations sum the same products in another order (and
divide once per row instead of once per probability), so they differ from the reference by
float32 rounding, ~1e-7 relative; 1e-6 on attention outputs, 1e-5 on logits as in the parity tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conversion.verify import random_batch
from tests.prune.test_family_pipeline import CASES
from tokcomp_jax.explain.relevance import append_answers, relevance
from tokcomp_jax.generate import generate
from tokcomp_jax.models import Qwen2VLConfig
from tokcomp_jax.models.common import attention
from tokcomp_jax.models.common.attention import (
    WindowMask,
    attend,
    attention_kernel,
    attention_output,
    configure_attention,
    dot_product_attention,
)
from tokcomp_jax.models.common.decoder import causal_mask
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.prune import Buckets, prepare_pruning

FAMILY_CASES = CASES | {
    "qwen2_vl": (Qwen2VLConfig.tiny, lambda c: random_batch(c, [[("image", 84, 168)], [("video", 2, 56, 84)]]),
                 Buckets(text=16, visual=24, queries=8)),
}  # fmt: skip


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of 8 queries, so the tiny models' sequences (tens to hundreds of tokens) span several."""
    monkeypatch.setattr(attention, "QUERY_TILE", 8)


def _operands(length: int, slots: int, num_heads: int, num_kv_heads: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = lambda n, heads: (2, n, heads, 16)  # noqa: E731
    return (
        jnp.asarray(rng.standard_normal(shape(length, num_heads)), jnp.float32),
        jnp.asarray(rng.standard_normal(shape(slots, num_kv_heads)), jnp.float32),
        jnp.asarray(rng.standard_normal(shape(slots, num_kv_heads)), jnp.float32),
    )


def _segments_mask(length: int) -> jax.Array:
    """Block-diagonal: three segments of unequal length, as a vision tower's images / frames."""
    segment = np.repeat([0, 1, 2], [length // 2, length // 3, length - length // 2 - length // 3])
    return jnp.asarray(np.broadcast_to(segment[:, None] == segment[None], (2, length, length)))


MASKS = {
    "causal with padding": lambda n: causal_mask(jnp.asarray(np.arange(n)[None] < np.array([[n], [n - 7]]))).dense(),
    "segments": _segments_mask,
    "full": lambda n: jnp.ones((2, n, n), bool),
}


@pytest.mark.parametrize("implementation", ["tiled", "fused", "xla", "reference", "auto"])
@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (6, 1)])
def test_every_implementation_equals_the_reference(small_tiles, implementation, mask_name, heads):
    length = 37  # 5 tiles of 8, the last one short
    query, key, value = _operands(length, length, *heads)
    mask = MASKS[mask_name](length)
    expected = dot_product_attention(query, key, value, mask)[0]
    got = jax.jit(attend, static_argnums=4)(query, key, value, mask, implementation)
    assert got.shape == expected.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-6)


@pytest.mark.parametrize("implementation", ["tiled", "fused", "xla", "reference", "auto"])
@pytest.mark.parametrize("heads", [(4, 4), (6, 1)])
def test_a_causal_prefill_gives_the_reference_values(small_tiles, implementation, heads):
    """causal=True (tiles of 8: halves of whole tiles, recursively, down to 2 tiles) at lengths that
    split evenly, unevenly and not at all, with and without padding."""
    for length in (8, 17, 37, 64):
        query, key, value = _operands(length, length, *heads, seed=length)
        mask = MASKS["causal with padding"](length)
        expected = dot_product_attention(query, key, value, mask)[0]
        got = attend(query, key, value, mask, implementation, causal=True)
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-6, err_msg=str(length))


def test_a_causal_prefill_under_tiled_scores_fewer_keys():
    """1024 positions in tiles of 256: the last 512 queries score all 1024 keys, the 256 before them
    512, the first 256 only their own 256 (2/3 of the scores); without `causal`, every tile scores 1024."""
    query, key, value = _operands(1024, 1024, 4, 4)
    mask = MASKS["causal with padding"](1024)

    def key_spans(causal: bool) -> set[int]:
        jaxpr = jax.make_jaxpr(lambda q, k, v, m: attend(q, k, v, m, "tiled", causal))(query, key, value, mask)
        scores = [shape for shape in _matmul_shapes(jaxpr.jaxpr) if shape[-2] == 256 and shape[-1] > 16]
        return {shape[-1] for shape in scores}  # [G, tile, keys]; the mixed values are [G, tile, 16]

    assert key_spans(causal=True) == {256, 512, 1024}
    assert key_spans(causal=False) == {1024}


def test_a_decode_step_attends_to_every_cache_slot(small_tiles):
    """One query against 40 slots of which the last 9 are empty: the short path, same values."""
    query, key, value = _operands(1, 40, 4, 2, seed=1)
    mask = jnp.broadcast_to(jnp.arange(40) < 31, (2, 1, 40))
    expected = dot_product_attention(query, key, value, mask)[0]
    for implementation in ("tiled", "fused"):
        np.testing.assert_allclose(np.asarray(attend(query, key, value, mask, implementation)), expected, atol=1e-6)


def test_tiled_bfloat16_stays_within_bfloat16_rounding_of_the_reference(small_tiles):
    query, key, value = (x.astype(jnp.bfloat16) for x in _operands(37, 37, 4, 2))
    mask = MASKS["causal with padding"](37)
    expected = dot_product_attention(query, key, value, mask)[0].astype(jnp.float32)
    got = attend(query, key, value, mask, "tiled")
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got.astype(jnp.float32)), np.asarray(expected), atol=2e-2)


def _windows(sizes: list[int], padding: int) -> tuple[WindowMask, np.ndarray]:
    """Contiguous windows of `sizes` positions (at most 16; smaller at a grid's edges), then a run of
    `padding` positions sharing id -1 (a vision tower's pad patches): (WindowMask, real positions)."""
    ids = np.concatenate([np.full(size, i) for i, size in enumerate(sizes)] + [np.full(padding, -1)])
    return WindowMask(jnp.asarray(np.stack([ids, ids])), 16), ids >= 0


def test_windowed_attention_equals_the_reference_at_every_real_position():
    windows, real = _windows([16, 16, 7, 16, 3, 12, 16, 16, 9, 16, 16, 16, 1, 16, 10], padding=40)
    query, key, value = _operands(len(real), len(real), 4, 2)
    expected = dot_product_attention(query, key, value, windows.dense())[0]
    for implementation in ("reference", "tiled", "fused", "xla", "auto"):
        got, probs = jax.jit(attention_output, static_argnums=(4, 5))(query, key, value, windows, implementation, False)
        assert probs is None
        np.testing.assert_allclose(np.asarray(got)[:, real], np.asarray(expected)[:, real], atol=1e-6)
    _, probs = attention_output(query, key, value, windows, "tiled", True)  # probabilities: the reference
    np.testing.assert_array_equal(
        np.asarray(probs), np.asarray(dot_product_attention(query, key, value, windows.dense())[1])
    )


def _matmul_shapes(jaxpr) -> list[tuple[int, ...]]:
    """The output shapes of every dot_general in a jaxpr, inside loops and nested calls too."""
    shapes = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            shapes.append(eqn.outvars[0].aval.shape)
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)  # a ClosedJaxpr's, or a Jaxpr
            if hasattr(inner, "eqns"):
                shapes += _matmul_shapes(inner)
    return shapes


@pytest.mark.parametrize("implementation", ["tiled", "fused", "xla", "reference"])
def test_windowed_attention_scores_only_the_keys_near_each_query(implementation):
    """1024 positions in windows of 16: each tile of 16 queries scores the 48 keys around it, and no
    matmul spans the 1024; under "tiled" a tile at a time, under "fused" and "xla" all tiles in one
    batch. The reference takes the dense mask."""
    windows, _ = _windows([16] * 64, padding=0)
    query, key, value = _operands(1024, 1024, 4, 4)
    jaxpr = jax.make_jaxpr(lambda q, k, v, m: attention_output(q, k, v, m, implementation, False)[0])(
        query, key, value, windows
    )
    shapes = _matmul_shapes(jaxpr.jaxpr)
    if implementation == "reference":
        assert any(1024 in shape for shape in shapes), shapes
        return
    assert not any(1024 in shape for shape in shapes), shapes
    # Scores: one tile's [G, tile, keys]; or [2 rows x 64 tiles, K, tile, G, keys] in one batch.
    scores = (1, 16, 48) if implementation == "tiled" else (2 * 64, 4, 16, 1, 48)
    assert scores in shapes, shapes


def _shaped(length: int, slots: int, head_dim: int, dtype=jnp.bfloat16, key_dtype=None):
    """Query [2, length, 4, head_dim] and key [2, slots, 2, head_dim] shapes, for attention_kernel."""
    return (
        jax.ShapeDtypeStruct((2, length, 4, head_dim), dtype),
        jax.ShapeDtypeStruct((2, slots, 2, head_dim), key_dtype or dtype),
    )


def test_fused_runs_cudnn_only_on_one_cuda_gpu_and_where_its_conditions_hold(monkeypatch):
    supported = [_shaped(64, 64, 128), _shaped(64, 64, 80, jnp.float16), _shaped(4096, 4096, 72)]
    unsupported = {
        "float32": _shaped(64, 64, 128, jnp.float32),
        "mixed dtypes": _shaped(64, 64, 128, jnp.bfloat16, jnp.float16),
        "head dim not a multiple of 8": _shaped(64, 64, 100),
        "head dim over 128": _shaped(64, 64, 256),
        "a decode step": _shaped(1, 64, 128),
        "odd lengths": _shaped(37, 37, 128),
    }
    assert not attention._on_one_cuda_gpu()  # this machine: XLA's attention for everything
    assert attention_kernel(*supported[2]) == "tiled"  # "auto" on CPU
    assert attention_kernel(*supported[0], "tiled") == "reference"  # 64 queries: one piece
    assert {attention_kernel(*shapes, "fused") for shapes in supported} == {"xla"}
    monkeypatch.setattr(attention, "_on_one_cuda_gpu", lambda: True)
    assert {attention_kernel(*shapes, "fused") for shapes in supported} == {"cudnn"}
    for name, shapes in unsupported.items():
        assert attention_kernel(*shapes, "fused") == "xla", name
    assert attention_kernel(*supported[0], "xla") == "xla"  # XLA's kernel, asked for by name


@pytest.mark.parametrize(
    ("platform", "version", "devices", "expected"),
    [("gpu", "cuda 12080", 1, True), ("gpu", "cuda 12080", 2, False), ("gpu", "rocm 6.2", 1, False),
     ("tpu", "PJRT C API", 1, False)],
)  # fmt: skip
def test_cudnn_is_chosen_on_one_cuda_gpu_only(monkeypatch, platform, version, devices, expected):
    backend = type("Backend", (), {"platform": platform, "platform_version": version})()
    monkeypatch.setattr(jax.extend.backend, "get_backend", lambda: backend)
    monkeypatch.setattr(jax, "device_count", lambda: devices)
    assert attention._on_one_cuda_gpu() == expected


def test_fused_hands_its_kernel_to_dot_product_attention(monkeypatch):
    """On a CUDA GPU a bfloat16 prefill reaches jax.nn.dot_product_attention with implementation="cudnn"
    and the mask [B, 1, T, S] (run here by XLA's implementation, which takes the same arguments)."""
    monkeypatch.setattr(attention, "_on_one_cuda_gpu", lambda: True)
    asked, real = [], jax.nn.dot_product_attention

    def recording(*args, implementation=None, **kwargs):
        asked.append(implementation)
        return real(*args, implementation="xla", **kwargs)

    monkeypatch.setattr(jax.nn, "dot_product_attention", recording)
    query, key, value = (x.astype(jnp.bfloat16) for x in _operands(38, 38, 4, 2))
    mask = MASKS["causal with padding"](38)
    got = attend(query, key, value, mask, "fused")
    assert asked == ["cudnn"]
    expected = dot_product_attention(query, key, value, mask)[0]
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(expected, np.float32), atol=2e-2)
    attend(query[:, :1], key, value, mask[:, :1], "fused")  # one query: XLA's
    assert asked == ["cudnn", "xla"]


def test_an_unknown_implementation_is_refused_by_name():
    query, key, value = _operands(4, 4, 2, 2)
    with pytest.raises(ValueError, match="'flash'.*choose one of"):
        attend(query, key, value, jnp.ones((2, 4, 4), bool), "flash")
    with pytest.raises(ValueError, match="'flash'"):
        configure_attention(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), "flash")


def _implementations(model) -> set[str]:
    return {m.attention_implementation for _, m in nnx.iter_graph(model) if hasattr(m, "attention_implementation")}


@pytest.mark.parametrize("family", sorted(FAMILY_CASES))
def test_every_family_gives_the_reference_logits_and_first_layer_attention(small_tiles, family):
    make_config, make_batch, buckets = FAMILY_CASES[family]
    config = make_config()
    model = FAMILIES[family].model(config, rngs=nnx.Rngs(0))
    inputs, _ = prepare_pruning(config, make_batch(config), buckets)
    forward = nnx.jit(lambda model, inputs: model(inputs, return_first_layer_attention=True))
    outputs = {}
    for implementation in ("reference", "tiled", "fused"):
        configure_attention(model, implementation)
        assert _implementations(model) == {implementation}
        outputs[implementation] = forward(model, inputs)
    reference = outputs.pop("reference")
    for implementation, output in outputs.items():
        np.testing.assert_allclose(output.logits, reference.logits, atol=1e-5, err_msg=implementation)
        np.testing.assert_allclose(
            output.first_layer_attention, reference.first_layer_attention, atol=1e-6, err_msg=implementation
        )


def test_relevance_and_greedy_tokens_do_not_depend_on_the_implementation(small_tiles):
    make_config, make_batch, buckets = FAMILY_CASES["qwen2_vl"]
    config = make_config()
    model = FAMILIES["qwen2_vl"].model(config, rngs=nnx.Rngs(0))
    batch = make_batch(config)
    inputs, _ = prepare_pruning(config, batch, buckets)
    results = {}
    for implementation in ("reference", "tiled"):
        configure_attention(model, implementation)
        tokens = np.asarray(generate(model, inputs, max_new_tokens=3, eos_token_id=-1).tokens)
        taught, answer_positions = append_answers(batch, [list(row) for row in tokens])
        long = Buckets(text=buckets.text + 3, visual=buckets.visual, queries=buckets.queries)
        taught_inputs, taught_scoring = prepare_pruning(config, taught, long)
        results[implementation] = (
            tokens,
            {
                method: np.asarray(relevance(model, taught_inputs, answer_positions, taught_scoring.layout, method))
                for method in ("gradient", "input_gradient")
            },
        )
    (reference_tokens, reference_maps), (tokens, maps) = results["reference"], results["tiled"]
    np.testing.assert_array_equal(tokens, reference_tokens)
    for method, expected in reference_maps.items():
        assert np.abs(expected).max() > 0, method
        np.testing.assert_allclose(maps[method], expected, rtol=1e-4, atol=1e-7, err_msg=method)


@pytest.mark.parametrize("family", sorted(FAMILY_CASES))
def test_the_vision_tower_reads_probabilities_only_when_its_attention_is_asked_for(monkeypatch, family):
    """Under "fused" nothing but a probability tap reaches the reference: embedding an image traces
    dot_product_attention only when the vision-encoder attention is returned, in exactly one block."""
    make_config, make_batch, buckets = FAMILY_CASES[family]
    config = make_config()
    model = configure_attention(FAMILIES[family].model(config, rngs=nnx.Rngs(0)), "fused")
    inputs, _ = prepare_pruning(config, make_batch(config), buckets)
    traced = []
    reference = attention.dot_product_attention
    monkeypatch.setattr(
        attention, "dot_product_attention", lambda *args, **kw: traced.append(1) or reference(*args, **kw)
    )
    plain = model.embed(inputs)
    assert traced == []
    embeds, vision = model.embed(inputs, return_vision_attention=True)
    assert traced == [1]
    np.testing.assert_allclose(plain, embeds, atol=1e-6)
    assert np.asarray(vision.received).max() > 0
