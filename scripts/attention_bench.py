"""One attention, every implementation of `attend` beside the reference, timed in the same rounds.

    python scripts/attention_bench.py [--length 4096] [--heads 16] [--kv_heads 16] [--head_dim 80] [--causal]

The default is a Qwen2-VL vision block on a 896x896 image (4096 patches, 16 heads of 80, one
segment). Prints, per implementation, the median of `--repeats` jit-compiled calls (after one
compiling call), its speed relative to the reference and its largest difference to the reference.
With torch installed, torch's scaled_dot_product_attention on the same operands is timed with them.
"""

from __future__ import annotations

import platform

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from tokcomp_jax.benchmark import time_together
from tokcomp_jax.models.common.attention import IMPLEMENTATIONS, attend, dot_product_attention
from tokcomp_jax.models.common.decoder import causal_mask

_LENGTH = flags.DEFINE_integer("length", 4096, "queries = keys")
_HEADS = flags.DEFINE_integer("heads", 16, "query heads")
_KV_HEADS = flags.DEFINE_integer("kv_heads", 16, "key/value heads (GQA when fewer)")
_HEAD_DIM = flags.DEFINE_integer("head_dim", 80, "head width")
_CAUSAL = flags.DEFINE_bool("causal", False, "a causal mask (an LLM prefill) instead of one segment")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed calls per implementation")


def main(argv) -> None:
    del argv
    rng = np.random.default_rng(0)
    shapes = [(1, _LENGTH.value, heads, _HEAD_DIM.value) for heads in (_HEADS.value, _KV_HEADS.value, _KV_HEADS.value)]
    query, key, value = (jnp.asarray(rng.standard_normal(shape), jnp.float32) for shape in shapes)
    mask = jnp.ones((1, _LENGTH.value, _LENGTH.value), bool)
    mask = causal_mask(mask[:, 0]) if _CAUSAL.value else mask
    jitted = {"reference": jax.jit(lambda *operands: dot_product_attention(*operands)[0])}
    for implementation in IMPLEMENTATIONS[2:]:
        jitted[implementation] = jax.jit(lambda *operands, name=implementation: attend(*operands, name))
    calls = {name: (lambda f=f: jax.block_until_ready(f(query, key, value, mask))) for name, f in jitted.items()}
    torch_call = _torch_sdpa(query, key, value, _CAUSAL.value)
    if torch_call is not None:
        calls["torch sdpa"] = torch_call
    times, outputs = time_together(calls, _REPEATS.value)
    reference = np.asarray(outputs["reference"])
    median = {name: float(np.median(runs[1:])) for name, runs in times.items()}
    print(f"attention {query.shape} x {key.shape}, {'causal' if _CAUSAL.value else 'one segment'}, "
          f"{jax.devices()[0].device_kind} / {platform.processor() or platform.machine()}")  # fmt: skip
    print("| implementation | median ms | reference / it | max abs diff |\n|---|---|---|---|")
    for name, seconds in median.items():
        diff = np.abs(np.asarray(outputs[name], np.float32) - reference).max()
        print(f"| {name} | {1e3 * seconds:.1f} | {median['reference'] / seconds:.2f} | {diff:.1e} |")


def _torch_sdpa(query, key, value, causal: bool):
    """torch's fused attention on the same operands, [B, T, N, H] out; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    heads_major = [torch.from_numpy(np.array(x)).transpose(1, 2) for x in (query, key, value)]
    group = query.shape[2] // key.shape[2]
    heads_major[1:] = [x.repeat_interleave(group, dim=1) for x in heads_major[1:]]

    def call():
        with torch.inference_mode():
            return torch.nn.functional.scaled_dot_product_attention(*heads_major, is_causal=causal).transpose(1, 2)

    return call


if __name__ == "__main__":
    app.run(main)
