"""Timing the vision tower, the LLM prefill (pruned and unpruned), the scorer and decode on one batch.

Every step is a `jax.jit` of a pure function of the model state (weights are arguments, never
baked-in constants), called through jit's own cache: `Steps.compiles()` reads that cache, and a
first call's time over the median of the later ones is its compile time. scripts/bench.py runs
these on the configs in configs/bench and puts transformers' PyTorch beside them.

    steps = Steps(model, mapper, max_new_tokens=16)
    timings = measure({"embed": (steps.embed(), (steps.state, inputs))}, repeats=5, count=steps.xla_flops)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax.generate import decode, prefill
from tokcomp_jax.models.common import attention
from tokcomp_jax.models.common.masks import CausalMask, SegmentMask
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.prune.pruner import PruneConfig, prune_embedded, scores_and_embeds


@dataclasses.dataclass
class Timing:
    first_s: float  # the first call: trace, compile and run
    runs_s: list[float]  # the later calls
    xla_flops: float | None  # XLA's FLOP count of the lowered graph

    @property
    def median_s(self) -> float:
        return float(np.median(self.runs_s))

    @property
    def compile_s(self) -> float:
        return max(self.first_s - self.median_s, 0.0)


# Dense bfloat16 peaks in TFLOP/s by device kind (vendors' figures, without sparsity), for MFU.
PEAK_TFLOPS = {
    "NVIDIA H100": 989.0,
    "NVIDIA H200": 989.0,
    "NVIDIA A100": 312.0,
    "NVIDIA L4": 121.0,
    "TPU v4": 275.0,
    "TPU v5 lite": 197.0,
    "TPU v5": 459.0,
    "TPU v6 lite": 918.0,
}


def peak_tflops(device_kind: str) -> float | None:
    """The bfloat16 peak of a device kind (the longest PEAK_TFLOPS name it starts with), None if unknown."""
    names = [name for name in PEAK_TFLOPS if device_kind.startswith(name)]
    return PEAK_TFLOPS[max(names, key=len)] if names else None


def time_calls(call: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Time `call()` (which must return a finished result) once, then `repeats` more times:
    (first seconds, later seconds, last result)."""
    timings, outputs = time_together({"call": call}, repeats)
    first, *runs = timings["call"]
    return first, runs, outputs["call"]


def time_together(calls: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Each call once, then `repeats` rounds of every call in turn, so that a machine slowing down or
    speeding up mid-run moves all of them alike (their ratios are what a benchmark reports).
    Returns per call [first, *later] seconds, and its last result."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    times: dict[str, list[float]] = {name: [] for name in calls}
    outputs = {}
    for _ in range(repeats + 1):
        for name, call in calls.items():
            start = time.perf_counter()
            outputs[name] = call()
            times[name].append(time.perf_counter() - start)
    return times, outputs


def xla_flops(jitted, args: tuple) -> float | None:
    """XLA's FLOP count of `jitted` lowered for `args` (None where the backend gives none)."""
    return (jitted.lower(*args).cost_analysis() or {}).get("flops")


def measure(
    steps: dict[str, tuple[Callable, tuple]], repeats: int, count: Callable = xla_flops
) -> dict[str, tuple[Timing, Any]]:
    """Time jitted steps {name: (jitted, args)} together (time_together), each to completion;
    per name its Timing (FLOPs by `count(jitted, args)`, XLA's count of the lowered graph by
    default; Steps.xla_flops for its steps) and last output."""
    flops = {name: count(jitted, args) for name, (jitted, args) in steps.items()}
    calls = {name: (lambda j=jitted, a=args: jax.block_until_ready(j(*a))) for name, (jitted, args) in steps.items()}
    times, outputs = time_together(calls, repeats)
    return {name: (Timing(times[name][0], times[name][1:], flops[name]), outputs[name]) for name in steps}


class Steps:
    """The benchmarked graphs over one (model, mapper): each is jitted once per static setting and
    takes `self.state` (the model and mapper weights) as its first argument.

    The timed graphs run the decoder layers as the model is configured (LayerStack.configure). XLA
    counts a scanned loop's body once, so `xla_flops` counts each step's twin: the same graph with
    the layers unrolled over shape-only weights, lowered only, never compiled or run."""

    def __init__(self, model, mapper, max_new_tokens: int):
        self.graphdef, self.state = nnx.split((model, mapper))
        twin_model, twin_mapper = nnx.merge(self.graphdef, jax.tree.map(_shape_only, self.state))
        twin_model.language_model.layers.configure(scan=False)
        self._twin_graphdef, self._twin_state = nnx.split((twin_model, twin_mapper))
        self.max_new_tokens = max_new_tokens
        self._jitted: dict[tuple, tuple[Callable, Callable]] = {}  # key -> (timed, unrolled twin)

    def _jit(self, key: tuple, fn: Callable) -> Callable:
        if key not in self._jitted:
            self._jitted[key] = tuple(
                jax.jit(lambda state, *args, graphdef=graphdef: fn(*nnx.merge(graphdef, state), *args))
                for graphdef in (self.graphdef, self._twin_graphdef)
            )
        return self._jitted[key][0]

    def xla_flops(self, jitted: Callable, args: tuple) -> float | None:
        """XLA's FLOP count of the unrolled twin of `jitted` (one of this object's steps) for `args`,
        whose first is `self.state` (the twin takes its shape-only, unrolled counterpart)."""
        twin = next(unrolled for timed, unrolled in self._jitted.values() if timed is jitted)
        return xla_flops(twin, (self._twin_state, *args[1:]))

    def embed(self) -> Callable:
        """(state, inputs) -> embeddings [B, T, D]: vision tower, merger and token embeddings."""
        return self._jit(("embed",), lambda model, mapper, inputs: model.embed(inputs))

    def embed_reading_attention(self) -> Callable:
        """(state, inputs) -> (embeddings, TowerAttention): `embed` with the vision tower's last block on
        the reference path, its probabilities and keys read (what VisionZip-style methods need)."""
        return self._jit(
            ("embed reading the tower's attention",),
            lambda model, mapper, inputs: model.embed(inputs, return_vision_attention=True),
        )

    def score(self, prune: PruneConfig) -> Callable:
        """(state, embeds, inputs, scoring[, vision attention]) -> visual-token scores [B, N] of
        `prune.scorer`, and the embeddings its kept tokens carry (merged ones for VisionZip)."""

        def run(model, mapper, embeds, inputs, scoring, vision_attention=None):
            return scores_and_embeds(model, mapper, embeds, vision_attention, inputs, scoring, prune)

        return self._jit(("score", prune), run)

    def prefill(self, prune: PruneConfig | None) -> Callable:
        """(state, embeds, inputs, scoring) -> PrefillState: the LLM prefill from embeddings into a KV
        cache, after scoring, selecting and gathering the kept tokens when `prune` is given."""

        def run(model, mapper, embeds, inputs, scoring):
            position_ids, attention_mask = inputs.position_ids, inputs.attention_mask
            if prune is not None:
                embeds, position_ids, attention_mask, _ = prune_embedded(
                    model, mapper, embeds, None, inputs, scoring, prune
                )
            return prefill(model, embeds, position_ids, attention_mask, max_new_tokens=self.max_new_tokens)

        return self._jit(("prefill", prune), run)

    def decode(self) -> Callable:
        """(state, PrefillState) -> tokens [B, M]: always M greedy tokens (no EOS stops it)."""

        def run(model, mapper, state):
            return decode(model, state, max_new_tokens=self.max_new_tokens, eos_token_id=-1).tokens

        return self._jit(("decode",), run)

    def compiles(self) -> dict[str, int]:
        """Compiled graphs so far, per step and static setting."""
        return {_describe(key): timed._cache_size() for key, (timed, _) in self._jitted.items()}


def _shape_only(array: jax.Array) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(array.shape, array.dtype)


def _describe(key: tuple) -> str:
    name, *setting = key
    prune = setting[0] if setting else None
    return name if prune is None else f"{name}[{prune.scorer}@{prune.keep_ratio}]"


def image_grid(config: Qwen2VLConfig, height: int, width: int) -> tuple[int, int]:
    """The (rows, cols) patch grid of an image of height x width pixels, multiples of patch * merge."""
    unit = config.vision.patch_size * config.vision.spatial_merge_size
    if height % unit or width % unit or height <= 0 or width <= 0:
        raise ValueError(f"image size {height}x{width}: both sides must be positive multiples of {unit} pixels")
    return height // config.vision.patch_size, width // config.vision.patch_size


def random_image_batch(
    config: Qwen2VLConfig, grids: Sequence[tuple[int, int]], seed: int, text_before: int = 4, text_after: int = 6
) -> dict[str, np.ndarray]:
    """One image per row with patch grids (rows, cols): text, <start> image pads <end>, instruction
    text; random pixels and ids, right-padded. Arrays named as transformers names them."""
    rng = np.random.default_rng(seed)
    merge = config.vision.spatial_merge_size
    special = min(config.image_token_id, config.video_token_id, config.vision_start_token_id)
    rows, pixels = [], []
    for height, width in grids:
        text = lambda n: list(rng.integers(0, special, n))  # noqa: E731
        rows.append(
            text(text_before) + [config.vision_start_token_id] + [config.image_token_id] * (height * width // merge**2)
        )
        rows[-1] += [config.vision_end_token_id] + text(text_after)
        pixels.append(rng.standard_normal((height * width, config.vision.patch_dim)).astype(np.float32))
    length = max(map(len, rows))
    return {
        "input_ids": np.array([r + [0] * (length - len(r)) for r in rows]),
        "attention_mask": np.array([[1] * len(r) + [0] * (length - len(r)) for r in rows]),
        "pixel_values": np.concatenate(pixels),
        "image_grid_thw": np.array([[1, h, w] for h, w in grids]),
    }


# A vision site's check attends over at most this many patches (the reference's scores must fit).
CHECK_MAX_PATCHES = 4096


def attention_kernels(
    config: Qwen2VLConfig, dtype, implementation: str, sequence: int, patches: int, slots: int
) -> dict[str, str]:
    """The kernel of each attention that no probabilities are read from (attention.attention_kernel):
    a vision block over `patches`, an LLM prefill of `sequence` tokens, a decode step over `slots`."""
    text, vision = config.text, config.vision
    shaped = lambda length, heads, head_dim: jax.ShapeDtypeStruct((1, length, heads, head_dim), dtype)  # noqa: E731
    patch_heads = shaped(patches, vision.num_heads, vision.head_dim)
    queries = lambda length: shaped(length, text.num_attention_heads, text.head_dim)  # noqa: E731
    keys = lambda length: shaped(length, text.num_key_value_heads, text.head_dim)  # noqa: E731
    return {
        "vision blocks": attention.attention_kernel(patch_heads, patch_heads, implementation),
        "LLM prefill": attention.attention_kernel(queries(sequence), keys(sequence), implementation),
        "decode step": attention.attention_kernel(queries(1), keys(slots), implementation),
    }


def attention_checks(
    config: Qwen2VLConfig, dtype, implementation: str, sequence: int, patches: int, seed: int = 0
) -> dict[str, dict]:
    """`attention_output` by `implementation` against the reference on random operands in `dtype` at
    two sites, with the masks the model gives them: an LLM prefill of `sequence` tokens (a CausalMask)
    and a vision block (a SegmentMask, at most CHECK_MAX_PATCHES of `patches`). Per site: the kernel, the largest difference, or the error
    that stopped it (on a GPU: whether cuDNN runs and agrees). Errors are caught, so that a kernel
    failing on a lent device leaves the caller free to go on with another."""
    text, vision = config.text, config.vision
    sites = {
        "LLM prefill": (sequence, text.num_attention_heads, text.num_key_value_heads, text.head_dim, True),
        "vision blocks": (min(patches, CHECK_MAX_PATCHES), vision.num_heads, vision.num_heads, vision.head_dim, False),
    }
    checks = {}
    for site, (length, heads, kv_heads, head_dim, causal) in sites.items():
        keys = jax.random.split(jax.random.key(seed), 3)
        query = jax.random.normal(keys[0], (1, length, heads, head_dim), dtype)
        key, value = (jax.random.normal(k, (1, length, kv_heads, head_dim), dtype) for k in keys[1:])
        mask = CausalMask(jnp.ones((1, length), bool)) if causal else SegmentMask(jnp.zeros((1, length), jnp.int32))
        checks[site] = {"kernel": attention.attention_kernel(query, key, implementation), "tokens": length}
        try:
            output = jax.jit(attention.attention_output, static_argnums=(4, 5))
            got = output(query, key, value, mask, implementation, False)[0]
            expected = jax.jit(lambda *operands: attention.dot_product_attention(*operands)[0])(query, key, value, mask)
            difference = jnp.abs(got.astype(jnp.float32) - expected.astype(jnp.float32)).max()
            checks[site]["max_abs_diff"] = float(difference)
        except Exception as error:  # reported, not raised: see the docstring
            checks[site]["error"] = f"{type(error).__name__}: {error}"[:500]
    return checks
