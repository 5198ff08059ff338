"""Splash attention: the flash-attention kernel JAX ships for TPUs (Pallas,
jax.experimental.pallas.ops.tpu.splash_attention), "splash" in attention.IMPLEMENTATIONS.

The kernel takes a static block-sparse mask and per-position segment ids (a query sees a key only
where their ids agree); each structured mask maps onto them exactly:

- CausalMask: the causal mask; segment ids = the padding mask (1 real, 0 padding);
- SegmentMask: the full mask; segment ids = the segments (a vision tower's images or frames);
- WindowMask: a band of `size - 1` positions each side (blocks outside it are skipped); segment ids
  = the windows.

Sequences are padded to whole blocks (BLOCKS, multiples of 128 lanes), the padding a segment of its
own. Every real query sees exactly the keys the dense mask gives it. A CausalMask's padding queries
see the padding before them instead of the real tokens, so their rows differ from the reference's;
nothing reads them (they are no real query's keys). Grouped key/value heads go to the kernel as
they are (it maps query head n to key head n // (N // K)); the query is scaled by 1 / sqrt(H) first.

Off a TPU the kernel runs in Pallas' interpret mode: the same program as XLA operations, for
checking on CPU (slow). Under a mesh set with `jax.set_mesh` whose `model` axis divides both head
counts, the kernel runs under shard_map, each device on its own heads (and its rows over `data`);
otherwise as one call, which GSPMD feeds whole heads.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu import splash_attention as splash
from jax.sharding import PartitionSpec as P

from tokcomp_jax.models.common.masks import CausalMask, SegmentMask, WindowMask

# Query and key block sizes the sequence is padded to a multiple of: the largest of these dividing
# the padded length (a multiple of the smallest, the TPU's 128 lanes, which the kernel requires).
BLOCKS = (512, 256, 128)

# The segment id of the positions padded up to a whole block: no real position's.
PADDING_ID = jnp.iinfo(jnp.int32).min


def splash_attention(query: jax.Array, key: jax.Array, value: jax.Array, mask: CausalMask | SegmentMask) -> jax.Array:
    """Self-attention by the splash kernel: query [B, T, N, H], key/value [B, T, K, H] (N a multiple
    of K), a structured mask [B, T, T] -> output [B, T, N, H]."""
    batch, length, num_heads, head_dim = query.shape
    padded = -(-length // BLOCKS[-1]) * BLOCKS[-1]
    ids = mask.valid.astype(jnp.int32) if isinstance(mask, CausalMask) else mask.ids.astype(jnp.int32)
    ids = jnp.pad(ids, [(0, 0), (0, padded - length)], constant_values=PADDING_ID)

    def heads_major(x: jax.Array) -> jax.Array:  # [B, T, heads, H] -> [B, heads, padded, H]
        return jnp.swapaxes(jnp.pad(x, [(0, 0), (0, padded - length), (0, 0), (0, 0)]), 1, 2)

    scaled = query * jnp.asarray(head_dim**-0.5, query.dtype)
    operands = (heads_major(scaled), heads_major(key), heads_major(value), ids)
    kernel_mask = _kernel_mask(mask)
    output = _on_mesh(
        lambda heads: _batched(_kernel(kernel_mask, padded, heads, jax.default_backend() != "tpu")),
        batch, num_heads, key.shape[2],
    )(*operands)  # fmt: skip
    return jnp.swapaxes(output, 1, 2)[:, :length]


def _kernel_mask(mask: CausalMask | SegmentMask) -> tuple:
    """The static part of `mask`, hashable: ("causal",), ("local", size) or ("full",)."""
    if isinstance(mask, CausalMask):
        return ("causal",)
    if isinstance(mask, WindowMask):
        return ("local", mask.size)
    if isinstance(mask, SegmentMask):
        return ("full",)
    raise TypeError(f"splash attention takes a CausalMask, SegmentMask or WindowMask, not {type(mask).__name__}")


@functools.lru_cache(maxsize=64)
def _kernel(kernel_mask: tuple, length: int, num_heads: int, interpret: bool) -> splash.SplashAttentionKernel:
    """The kernel for `num_heads` query heads over `length` (whole blocks) positions, the forward and
    backward block sizes alike (so jax.grad runs it too). Built once per shape: its block masks are
    computed on the host."""
    shape = (length, length)
    static = {
        "causal": lambda: splash.CausalMask(shape),
        "full": lambda: splash.FullMask(shape),
        "local": lambda: splash.LocalMask(shape, window_size=(kernel_mask[-1] - 1, kernel_mask[-1] - 1), offset=0),
    }[kernel_mask[0]]()
    block = next(size for size in BLOCKS if length % size == 0)
    sizes = splash.BlockSizes(*(block,) * 8)  # q, kv, kv compute; dkv's q, kv, kv compute; dq's q, kv
    with jax.ensure_compile_time_eval():  # its block masks: constants, also when first built inside a trace
        return splash.make_splash_mha(
            splash.MultiHeadMask([static] * num_heads), block_sizes=sizes, head_shards=1, q_seq_shards=1,
            interpret=interpret,
        )  # fmt: skip


def _batched(kernel: splash.SplashAttentionKernel):
    """The kernel over a batch: query [B, N, T, H], key/value [B, K, T, H], segment ids [B, T] -> [B, N, T, H]."""

    def run(query, key, value, ids):
        return jax.vmap(lambda q, k, v, i: kernel(q, k, v, segment_ids=splash.SegmentIds(i, i)))(query, key, value, ids)

    return run


def _on_mesh(make_run, batch: int, num_heads: int, num_kv_heads: int):
    """make_run(heads per call) as one call, or under shard_map on the mesh set by jax.set_mesh:
    heads over `model` where it divides both head counts, rows over `data` where it divides B."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or "model" not in mesh.axis_names:
        return make_run(num_heads)
    model = mesh.shape["model"]
    heads = "model" if num_heads % model == 0 and num_kv_heads % model == 0 else None
    rows = "data" if "data" in mesh.axis_names and batch % mesh.shape["data"] == 0 else None
    spec = P(rows, heads)
    return jax.shard_map(
        make_run(num_heads // model if heads else num_heads),
        mesh=mesh, in_specs=(spec, spec, spec, P(rows)), out_specs=spec, check_vma=False,
    )  # fmt: skip
