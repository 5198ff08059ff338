"""One attention, every implementation of `attend` beside the reference, timed in the same rounds.

    python scripts/attention_bench.py [--length 4096] [--heads 16] [--kv_heads 16] [--head_dim 80]
        [--causal | --window 64]

The default is a Qwen2-VL vision block on a 896x896 image (4096 patches, 16 heads of 80, one
segment); `--window 64` is a windowed Qwen2.5-VL block (windows of 64 patches, a WindowMask; torch
attends window by window, as transformers does). Prints, per implementation, the median of
`--repeats` jit-compiled calls (after one compiling call), its speed relative to the reference and
its largest difference to the reference. With `--causal`, attend is told the mask is causal, and
"tiled, mask only" times the tiled kernel without being told.
With torch installed, torch's scaled_dot_product_attention on the same operands is timed with them.
"""

from __future__ import annotations

import platform

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from tokcomp_jax.benchmark import time_together
from tokcomp_jax.models.common.attention import IMPLEMENTATIONS, attention_output, dot_product_attention
from tokcomp_jax.models.common.masks import CausalMask, SegmentMask, WindowMask

_LENGTH = flags.DEFINE_integer("length", 4096, "queries = keys")
_HEADS = flags.DEFINE_integer("heads", 16, "query heads")
_KV_HEADS = flags.DEFINE_integer("kv_heads", 16, "key/value heads (GQA when fewer)")
_HEAD_DIM = flags.DEFINE_integer("head_dim", 80, "head width")
_CAUSAL = flags.DEFINE_bool("causal", False, "a causal mask (an LLM prefill: a CausalMask) instead of one segment")
_WINDOW = flags.DEFINE_integer("window", 0, "windows of this many positions (0: one segment); divides --length")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed calls per implementation")


def main(argv) -> None:
    del argv
    rng = np.random.default_rng(0)
    shapes = [(1, _LENGTH.value, heads, _HEAD_DIM.value) for heads in (_HEADS.value, _KV_HEADS.value, _KV_HEADS.value)]
    query, key, value = (jnp.asarray(rng.standard_normal(shape), jnp.float32) for shape in shapes)
    window = _WINDOW.value
    if window and (_CAUSAL.value or _LENGTH.value % window):
        raise app.UsageError(f"--window {window} must divide --length {_LENGTH.value} and excludes --causal")
    positions = jnp.arange(_LENGTH.value)[None]
    mask = SegmentMask(jnp.zeros_like(positions))
    mask = CausalMask(jnp.ones_like(positions, bool)) if _CAUSAL.value else mask
    mask = WindowMask(positions // window, window) if window else mask
    jitted = {"reference": jax.jit(lambda q, k, v, m: dot_product_attention(q, k, v, m)[0])}
    for implementation in IMPLEMENTATIONS[2:]:
        if implementation == "splash" and jax.default_backend() != "tpu":
            continue  # off a TPU, Pallas' interpret mode: a check, not a kernel to time
        jitted[implementation] = jax.jit(
            lambda *operands, name=implementation: attention_output(*operands, name, return_probs=False)[0]
        )
    if _CAUSAL.value:  # what knowing the mask is causal buys
        jitted["tiled, mask only"] = jax.jit(lambda q, k, v, m: attention_output(q, k, v, m.dense(), "tiled", False)[0])
    calls = {name: (lambda f=f: jax.block_until_ready(f(query, key, value, mask))) for name, f in jitted.items()}
    torch_call = _torch_sdpa(query, key, value, _CAUSAL.value, window)
    if torch_call is not None:
        calls["torch sdpa"] = torch_call
    times, outputs = time_together(calls, _REPEATS.value)
    reference = np.asarray(outputs["reference"])
    median = {name: float(np.median(runs[1:])) for name, runs in times.items()}
    layout = f"windows of {window}" if window else "causal" if _CAUSAL.value else "one segment"
    print(f"attention {query.shape} x {key.shape}, {layout}, "
          f"{jax.devices()[0].device_kind} / {platform.processor() or platform.machine()}")  # fmt: skip
    print("| implementation | median ms | reference / it | max abs diff |\n|---|---|---|---|")
    for name, seconds in median.items():
        diff = np.abs(np.asarray(outputs[name], np.float32) - reference).max()
        print(f"| {name} | {1e3 * seconds:.1f} | {median['reference'] / seconds:.2f} | {diff:.1e} |")


def _torch_sdpa(query, key, value, causal: bool, window: int):
    """torch's fused attention on the same operands (each window its own batch row when `window`),
    [B, T, N, H] out; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    batch, length, heads, head_dim = query.shape
    rows = [torch.from_numpy(np.array(x)) for x in (query, key, value)]
    if window:
        rows = [x.reshape(-1, window, *x.shape[2:]) for x in rows]
    heads_major = [x.transpose(1, 2) for x in rows]
    heads_major[1:] = [x.repeat_interleave(heads // key.shape[2], dim=1) for x in heads_major[1:]]

    def call():
        with torch.inference_mode():
            output = torch.nn.functional.scaled_dot_product_attention(*heads_major, is_causal=causal)
            return output.transpose(1, 2).reshape(batch, length, heads, head_dim)

    return call


if __name__ == "__main__":
    app.run(main)
