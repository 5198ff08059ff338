"""The decoder's one layer stack: scanned == unrolled on every family, the two layouts move the
parameters bit for bit and only the scanned one slices them, layer ranges compose, the attention
tap and remat change nothing but the graph, and per-layer checkpoints fill the stack."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.prune.test_family_pipeline import CASES as SIGLIP_CASES
from tokcomp_jax.benchmark import random_image_batch
from tokcomp_jax.files import CheckpointError
from tokcomp_jax.models import checkpoint
from tokcomp_jax.models.common.config import DecoderConfig
from tokcomp_jax.models.common.decoder import Decoder, causal_mask
from tokcomp_jax.models.common.params_decoder import decoder_rules
from tokcomp_jax.models.common.rope import text_rope
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.models.loading import NameMap, map_weights
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.prune import Buckets, prepare_pruning

CASES = {
    **SIGLIP_CASES,
    "qwen2_vl": (
        Qwen2VLConfig.tiny,
        lambda config: random_image_batch(config, [(4, 4), (4, 6)], seed=0),
        Buckets(text=16, visual=8, frame_patches=32),
    ),
}

# Scanned and unrolled layers run the same ops on the same values; XLA may fuse them differently,
# so float32 rounding (not structure) is all that may differ.
SAME = {"rtol": 1e-6, "atol": 1e-6}


@pytest.mark.parametrize("family", sorted(CASES))
def test_scanned_equals_unrolled_on_every_family(family):
    make_config, make_batch, buckets = CASES[family]
    config = make_config()
    model = FAMILIES[family].model(config, rngs=nnx.Rngs(0))
    inputs, _ = prepare_pruning(config, make_batch(config), buckets)
    outputs = {}
    for scan in (True, False):
        model.language_model.layers.configure(scan=scan)
        out = nnx.jit(lambda m, x: m(x, return_first_layer_attention=True))(model, inputs)
        outputs[scan] = (np.asarray(out.logits), np.asarray(out.first_layer_attention))
    np.testing.assert_allclose(outputs[True][0], outputs[False][0], **SAME)
    np.testing.assert_allclose(outputs[True][1], outputs[False][1], **SAME)


def _decoder(layers: int = 4) -> tuple[Decoder, tuple]:
    config = DecoderConfig(
        vocab_size=32, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2,
    )  # fmt: skip
    decoder = Decoder(config, dtype=jnp.float32, rngs=nnx.Rngs(3))
    x = jax.random.normal(jax.random.key(0), (2, 9, 32))
    attention_mask = jnp.array([[1] * 9, [1] * 6 + [0] * 3])
    positions = jnp.broadcast_to(jnp.arange(9), (2, 9))
    cos, sin = text_rope(positions, 8, 10_000.0, jnp.float32)
    return decoder, (x, cos, sin, causal_mask(attention_mask))


@pytest.mark.parametrize("scan", [True, False])
def test_layer_ranges_compose_and_the_attention_tap_reads_one_layer(scan):
    decoder, args = _decoder()
    decoder.layers.configure(scan=scan)
    whole = decoder.layers(*args)
    early = decoder.layers(*args, layers=slice(0, 3), attention_at=2)
    late = decoder.layers(early.hidden, *args[1:], layers=slice(3, None))
    np.testing.assert_allclose(np.asarray(late.hidden), np.asarray(whole.hidden), **SAME)
    before = decoder.layers(*args, layers=slice(0, 2)).hidden
    _, expected_probs, _ = decoder.layers[2](before, *args[1:])  # layer 2 alone, as a plain DecoderLayer
    np.testing.assert_allclose(np.asarray(early.attention), np.asarray(expected_probs), **SAME)
    assert whole.attention is None and whole.cache is None


def test_switching_layout_moves_the_parameters_bit_for_bit():
    decoder, args = _decoder()
    stacked = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(decoder.layers.stacked)))
    run = nnx.jit(lambda stack, *args: stack(*args).hidden)
    expected = np.asarray(run(decoder.layers, *args))
    decoder.layers.configure(scan=False)
    paths = [path for path, _ in nnx.to_flat_state(nnx.state(decoder))]
    assert not [path for path in paths if "stacked" in path]
    assert ("layers", "unrolled", 3, "mlp", "up_proj", "kernel") in paths
    assert decoder.layers.attention.num_kv_heads == 2
    for layer in range(4):
        unrolled = nnx.to_pure_dict(nnx.state(decoder.layers[layer]))
        jax.tree.map(
            lambda ours, all_layers, i=layer: np.testing.assert_array_equal(ours, all_layers[i]), unrolled, stacked
        )
    np.testing.assert_allclose(np.asarray(run(decoder.layers, *args)), expected, **SAME)
    decoder.layers.configure(scan=True)
    assert not hasattr(decoder.layers, "unrolled")
    jax.tree.map(np.testing.assert_array_equal, nnx.to_pure_dict(nnx.state(decoder.layers.stacked)), stacked)


def test_an_abstract_stack_switches_layout_in_shape_only():
    abstract = nnx.eval_shape(lambda: _decoder()[0])
    abstract.layers.configure(scan=False)
    kernel = abstract.layers[1].mlp.up_proj.kernel.get_value()
    assert isinstance(kernel, jax.ShapeDtypeStruct) and kernel.shape == (32, 48)
    abstract.layers.configure(scan=True)
    assert abstract.layers.stacked.mlp.up_proj.kernel.get_value().shape == (4, 32, 48)


def _sliced_shapes(hlo: str) -> set[tuple[int, ...]]:
    """The shapes of the arrays that the (dynamic-)slice instructions of compiled HLO text read."""
    shapes = dict(re.findall(r"(%[\w.\-]+) = \w+\[([\d,]*)\]", hlo))
    read = re.findall(r"= \w+\[[\d,]*\]\S* (?:dynamic-)?slice\((%[\w.\-]+)", hlo)
    return {tuple(int(size) for size in shapes[name].split(",") if size) for name in read if name in shapes}


@pytest.mark.parametrize("scan", [True, False])
def test_only_scanned_layers_slice_their_weights_out_of_a_stack(scan):
    """A scan step slices its layer's weights from the stacked arrays (on CPU, a copy each step; the
    old unrolled loop sliced them too). Unrolled layers read their own arrays: no slice in the
    compiled graph reads an array of a stacked parameter's shape."""
    decoder, args = _decoder()
    stacked = {leaf.shape for leaf in jax.tree.leaves(nnx.state(decoder.layers.stacked))}
    decoder.layers.configure(scan=scan)
    graphdef, state = nnx.split(decoder.layers)
    hlo = jax.jit(lambda state, *args: nnx.merge(graphdef, state)(*args).hidden).lower(state, *args).compile().as_text()
    assert bool(_sliced_shapes(hlo) & stacked) == scan


def test_remat_policies_change_neither_values_nor_gradients():
    decoder, (x, *rest) = _decoder()

    def loss(x, remat):
        return (decoder.layers(x, *rest, remat=remat).hidden ** 2).sum()

    reference = np.asarray(jax.grad(loss)(x, "none"))
    for policy in ("full", "dots"):  # recomputed activations are fused anew: rounding at 1e-6 of the scale
        np.testing.assert_allclose(
            np.asarray(jax.grad(loss)(x, policy)), reference, atol=1e-6 * np.abs(reference).max()
        )


def test_stacked_caches_cover_their_range():
    decoder, args = _decoder()
    cache = decoder.init_cache(2, 12, jnp.float32, layers=slice(1, 3))
    assert cache.key.shape == (2, 2, 12, 2, 8)
    out = decoder.layers(*args[:3], jnp.pad(args[3].dense(), ((0, 0), (0, 0), (0, 3))), layers=slice(1, 3), cache=cache)
    assert out.cache.key.shape == cache.key.shape and bool((out.cache.key[:, :, :9] != 0).any())
    with pytest.raises(ValueError, match="cache covers 2 layers, the range 4"):
        decoder.layers(*args, cache=cache)


def test_bad_ranges_and_settings_are_named():
    decoder, args = _decoder()
    with pytest.raises(ValueError, match="empty"):
        decoder.layers(*args, layers=slice(3, 3))
    with pytest.raises(ValueError, match="consecutive"):
        decoder.layers(*args, layers=slice(0, 4, 2))
    with pytest.raises(ValueError, match="outside the layer range"):
        decoder.layers(*args, layers=slice(0, 2), attention_at=3)
    with pytest.raises(ValueError, match="unknown remat policy"):
        decoder.layers.configure(remat="some")


class _WithDecoder(nnx.Module):
    def __init__(self):
        self.language_model = _decoder(layers=3)[0]


def _hf_tensors(model: _WithDecoder) -> list[tuple[str, str, np.ndarray]]:
    """The decoder's parameters as a HF checkpoint names and lays them out: one tensor per layer."""
    tensors = []
    for path, variable in nnx.to_flat_state(nnx.state(model)):
        value = np.asarray(variable.get_value())
        hf = ".".join(map(str, path[1:])).replace("embedding", "weight").replace("kernel", "weight")
        hf = "model." + hf.replace("scale", "weight")
        layers = range(value.shape[0]) if "stacked" in path else [None]
        for layer in layers:
            tensor = value if layer is None else value[layer]
            tensor = tensor.T if path[-1] == "kernel" else tensor
            tensors.append(("model.safetensors", hf if layer is None else hf.replace("stacked", str(layer)), tensor))
    return tensors


def test_per_layer_tensors_fill_the_stacked_parameters():
    model = _WithDecoder()
    _, abstract = nnx.split(nnx.eval_shape(_WithDecoder))
    tensors, rules = _hf_tensors(model), NameMap(decoder_rules(r"model\."))
    filled = map_weights(abstract, tensors, rules)
    for path, variable in nnx.to_flat_state(nnx.state(model)):
        np.testing.assert_array_equal(filled[path], np.asarray(variable.get_value()))
    missing = [t for t in tensors if t[1] != "model.layers.2.mlp.down_proj.weight"]
    with pytest.raises(CheckpointError, match=r"missing tensor for language_model\.layers\.2\.mlp\.down_proj\.kernel"):
        map_weights(abstract, missing, rules)


def test_a_model_directory_with_per_layer_parameters_is_named(tmp_path):
    """Directories written before the layers were stacked are refused with what to do, not a tree diff."""
    config = Qwen2VLConfig.tiny()
    params = nnx.to_pure_dict(nnx.state(FAMILIES["qwen2_vl"].model(config, rngs=nnx.Rngs(0)), nnx.Param))
    stacked = params["language_model"]["layers"].pop("stacked")
    for layer in range(config.text.num_hidden_layers):
        params["language_model"]["layers"][layer] = jax.tree.map(lambda value, i=layer: np.asarray(value[i]), stacked)
    checkpoint.save(tmp_path, FAMILIES["qwen2_vl"], config, "float32", params)
    with pytest.raises(CheckpointError, match="stores the decoder layers one by one.*conversion.convert"):
        checkpoint.load(tmp_path)
