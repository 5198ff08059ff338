"""Scaled dot-product attention and the GQA self-attention layer.

Two kinds of call: `dot_product_attention`, the reference (eager: probabilities exposed, a hook
can replace them), for the layers whose probabilities are read (the first LLM layer's map, the
relevance probes, a vision tower's last-block attention); and `attend`, output only, for every
other layer, by one of IMPLEMENTATIONS (set per model with `configure_attention`).
`attention_output` chooses between them for a layer; its mask may keep its structure (masks.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import jax
import jax.extend
import jax.numpy as jnp
from flax import nnx, struct

from tokcomp_jax.models.common.layers import RMSNorm, linear
from tokcomp_jax.models.common.masks import CausalMask, SegmentMask, WindowMask, dense_mask
from tokcomp_jax.models.common.rope import apply_rotary
from tokcomp_jax.models.common.splash import splash_attention

log = logging.getLogger(__name__)

ProbsHook = Callable[[jax.Array, jax.Array], jax.Array]


IMPLEMENTATIONS = ("auto", "reference", "tiled", "fused", "xla", "splash")
"""How `attend` computes attention where no probabilities are read:
- "reference": dot_product_attention, its probabilities dropped (transformers' eager attention);
- "tiled": one key head and up to QUERY_TILE queries at a time against every key, normalised
  after the values are mixed (pure JAX; on 2 CPU cores 1.6x the reference's speed on a
  4096-patch vision attention, one tile's scores staying in cache: docs/results.md,
  scripts/attention_bench.py);
- "fused": jax.nn.dot_product_attention, by cuDNN's flash attention where its conditions hold (one
  CUDA GPU, bfloat16 / float16: attention_kernel), else by XLA's (the scores materialised).
  jax.nn.dot_product_attention's own default is XLA's on every backend, so the choice is made here;
- "xla": jax.nn.dot_product_attention by XLA's kernel on any backend (where cuDNN is not wanted);
- "splash": the Pallas splash kernel (splash.py; TPU, interpret mode elsewhere) wherever the mask
  keeps its structure (a CausalMask, SegmentMask or WindowMask: the LLM prefill, every vision
  block); a dense mask (a decode step's) attends by XLA's kernel;
- "auto": "tiled" on CPU, "splash" on TPU, "fused" on GPUs."""

# Queries per tile of "tiled": a [256, S] float32 score row block per head fits in cache for the
# vision towers' S of a few thousand; fewer queries than this attend by the reference in one piece.
QUERY_TILE = 256

# The reference's own chunking, where it returns probabilities (a [B, N, chunk, S] block at a time,
# without a hook): each chunk's scores stay cache-friendly, which on CPU made a 4096-patch vision
# block's attention 2.5x faster, bit-identical (scripts/bench.py). "tiled" goes further (one key
# head and QUERY_TILE queries per step) because it keeps no probabilities.
QUERY_CHUNK = 512

# Operands cuDNN's flash attention takes under "fused" (attention_kernel).
CUDNN_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
CUDNN_MAX_HEAD_DIM = 128


def dot_product_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array | CausalMask | SegmentMask,
    hook: ProbsHook | None = None,
    probe: jax.Array | None = None,
    query_chunk: int = QUERY_CHUNK,
) -> tuple[jax.Array, jax.Array]:
    """Softmax attention with grouped key/value heads.

    query [B, T, N, H], key/value [B, S, K, H] with N a multiple of K, mask [B, T, S] (True = attend;
    a structured mask is made dense)
    -> output [B, T, N, H], probabilities [B, N, T, S]. Scores are softmaxed in float32 and cast
    back to the query dtype, as transformers' eager attention does; query head n reads key head
    n // (N // K). `hook(probs, probe)` (identity in value, e.g. a custom_vjp) replaces the
    probabilities the values are mixed with; explanations read gradients through it. Without a
    hook, more than `query_chunk` queries are attended `query_chunk` at a time (same values).
    """
    length, mask = query.shape[1], dense_mask(mask)
    key, value = jnp.swapaxes(key, 1, 2), jnp.swapaxes(value, 1, 2)  # heads-major [B, K, S, H]
    if hook is not None or length <= query_chunk:
        return _attention(query, key, value, mask, hook, probe)
    num_chunks = -(-length // query_chunk)
    output, probs = jax.lax.map(
        lambda chunk: _attention(chunk[0], key, value, chunk[1]),
        (_split_queries(query, num_chunks), _split_queries(mask, num_chunks)),
    )  # [C, B, chunk, N, H], [C, B, N, chunk, S]
    output = jnp.moveaxis(output, 0, 1).reshape(query.shape[0], -1, *query.shape[2:])[:, :length]
    probs = jnp.moveaxis(probs, 0, 2).reshape(*probs.shape[1:3], -1, probs.shape[-1])[:, :, :length]
    return output, probs


def attend(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array,
    implementation: str = "auto",
    causal: bool = False,
) -> jax.Array:
    """Softmax attention without probabilities: query [B, T, N, H], key/value [B, S, K, H] (GQA as
    in dot_product_attention), mask [B, T, S] -> output [B, T, N, H], by one of IMPLEMENTATIONS.
    `causal` promises that the mask admits no key after its query (T = S, a causal LM's prefill):
    "tiled" and cuDNN then skip those keys. Every implementation equals the reference within
    float32 rounding (tests/models/test_attention.py). A dense mask has no structure for "splash":
    it attends by XLA's kernel."""
    kernel = attention_kernel(query, key, implementation)
    kernel = "xla" if kernel == "splash" else kernel  # splash needs the mask's structure: attention_output
    if kernel in ("cudnn", "xla"):
        return jax.nn.dot_product_attention(
            query, key, value, mask=mask[:, None], is_causal=causal, implementation=kernel
        )
    if kernel == "tiled":
        return _causal_tiled_attention(query, key, value, mask) if causal else _tiled_attention(query, key, value, mask)
    return dot_product_attention(query, key, value, mask)[0]


def attention_output(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array | CausalMask | SegmentMask,
    implementation: str,
    return_probs: bool,
    hook: ProbsHook | None = None,
    probe: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array | None]:
    """An attention layer's one call: the reference with its probabilities [B, N, T, S] where they
    are read (`return_probs`, or a hook), else the output by `implementation` and None. `mask` is a
    dense [B, T, S] or a structured self-attention mask (masks.py): "splash" takes the structure as
    it is; a WindowMask longer than 3 windows attends window by window otherwise (query tiles against
    the keys around them: a loop under "tiled", one batch of small attentions under "fused" and
    "xla"); every other kernel takes the dense mask (attend, `causal` for a CausalMask)."""
    if return_probs or hook is not None:
        return dot_product_attention(query, key, value, mask, hook, probe)
    kernel = _resolved(implementation)
    if kernel == "splash" and isinstance(mask, CausalMask | SegmentMask):
        return splash_attention(query, key, value, mask), None
    if isinstance(mask, WindowMask) and query.shape[1] > 3 * mask.size:
        if kernel == "tiled":
            return _windowed_attention(query, key, value, mask), None
        if kernel in ("fused", "xla"):
            return _banded_attention(query, key, value, mask, implementation), None
    return attend(query, key, value, dense_mask(mask), implementation, isinstance(mask, CausalMask)), None


def attention_kernel(query: jax.Array, key: jax.Array, implementation: str = "auto") -> str:
    """The kernel `attend` runs on query [B, T, N, H] and key [B, S, K, H] (arrays or shapes) by
    `implementation`: "reference"; "tiled" (the reference below QUERY_TILE + 1 queries); "xla";
    "splash" for a self-attention (T = S; attention_output gives it the structured mask), "xla" for
    a decode step; or
    for "fused", "cudnn" (cuDNN's flash attention) on one CUDA GPU for bfloat16 / float16 operands with
    a head dim that is a multiple of 8 up to 128 and even T and S, else "xla" (XLA's attention, the
    scores materialised). The cuDNN conditions are those JAX checks as it traces a cuDNN call
    (jax._src.cudnn.fused_attention_stablehlo), narrowed to what every GPU it supports meets:
    larger head dims need Hopper, and odd lengths fail once a mask is differentiated (relevance).
    One device, because JAX partitions a cuDNN call only where query, key and value are sharded
    alike, which tensor parallelism over fewer key/value heads than the model axis breaks; several
    GPUs are untested here, so they attend by XLA's kernel."""
    implementation = _resolved(implementation)
    if implementation == "splash":
        return "splash" if query.shape[1] == key.shape[1] else "xla"
    if implementation == "xla":
        return "xla"
    if implementation == "fused":
        (_, length, _, head_dim), slots = query.shape, key.shape[1]
        operands_fit = (
            query.dtype == key.dtype
            and query.dtype in CUDNN_DTYPES
            and head_dim % 8 == 0
            and head_dim <= CUDNN_MAX_HEAD_DIM
            and length % 2 == 0
            and slots % 2 == 0
        )
        return "cudnn" if operands_fit and _on_one_cuda_gpu() else "xla"
    if implementation == "tiled" and query.shape[1] > QUERY_TILE:
        return "tiled"
    return "reference"


def _on_one_cuda_gpu() -> bool:
    """Whether the default backend is one CUDA GPU (cuDNN is NVIDIA's; ROCm GPUs report "rocm")."""
    backend = jax.extend.backend.get_backend()
    return backend.platform == "gpu" and "cuda" in backend.platform_version.lower() and jax.device_count() == 1


def _check_implementation(implementation: str) -> None:
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown attention implementation {implementation!r}; choose one of {IMPLEMENTATIONS}")


def _resolved(implementation: str) -> str:
    """A checked IMPLEMENTATIONS name, "auto" resolved for the default backend."""
    _check_implementation(implementation)
    if implementation == "auto":
        return {"cpu": "tiled", "tpu": "splash"}.get(jax.default_backend(), "fused")
    return implementation


def _tiled_attention(query, key, value, mask) -> jax.Array:
    """attend's "tiled": every query tile against every key (equal tiles of at most QUERY_TILE queries)."""
    batch, length, _, _ = query.shape
    slots, tiles = key.shape[1], -(-length // QUERY_TILE)
    tile = -(-length // tiles)  # equal tiles of at most QUERY_TILE queries: at most tiles - 1 padded rows
    mask = jnp.pad(mask, [(0, 0), (0, tiles * tile - length), (0, 0)]).reshape(batch, tiles, tile, slots)
    return _tile_loop(query, key, value, tile, slots, 0, lambda row, tile_index: mask[row, tile_index])


def _causal_tiled_attention(query, key, value, mask) -> jax.Array:
    """attend's "tiled" under a causal mask (T = S): the first half of the queries (whole tiles) sees
    only the first half of the keys, so it attends to those alone, recursively; the second half
    attends to every key. Two thirds of the scores of "tiled" at long lengths, the same values."""
    half = query.shape[1] // 2 // QUERY_TILE * QUERY_TILE
    if half < QUERY_TILE:
        return _tiled_attention(query, key, value, mask)
    first = _causal_tiled_attention(query[:, :half], key[:, :half], value[:, :half], mask[:, :half, :half])
    return jnp.concatenate([first, _tiled_attention(query[:, half:], key, value, mask[:, half:])], axis=1)


def _windowed_attention(query, key, value, windows: WindowMask) -> jax.Array:
    """attention_output's "tiled" path for a WindowMask: query tiles of `size`, each against only the 3 * size
    keys from `size` before it to `size` after it, which hold every key of every window of at most
    `size` positions that the tile touches (on 2 CPU cores, a 4096-patch attention in windows of 64
    takes ~115 ms against ~830 ms for "tiled" with the dense mask)."""
    size = windows.size
    tile_ids, key_ids, key, value = _window_bands(key, value, windows)

    def visible(row, tile_index):
        band = jax.lax.dynamic_slice_in_dim(key_ids[row], tile_index * size, 3 * size)
        return tile_ids[row, tile_index][:, None] == band[None]

    return _tile_loop(query, key, value, size, 3 * size, size, visible)


def _banded_attention(query, key, value, windows: WindowMask, implementation: str) -> jax.Array:
    """attention_output's path for a WindowMask under "fused" and "xla": the query tiles and key bands of
    _windowed_attention gathered into one batch of small attentions (B * tiles rows of `size` queries
    against 3 * size keys) for one `attend` call (on a GPU, cuDNN's batched flash attention), instead
    of every query against every key under the dense mask: 3 * size / T of its scores."""
    batch, length, num_heads, head_dim = query.shape
    size = windows.size
    tile_ids, key_ids, key, value = _window_bands(key, value, windows)
    tiles = tile_ids.shape[1]
    band = jnp.arange(tiles)[:, None] * size + jnp.arange(3 * size)[None]  # [tiles, 3 * size] padded key slots
    rows = lambda x: x.reshape(batch * tiles, *x.shape[2:])  # noqa: E731  [B, tiles, ...] -> [B * tiles, ...]
    query = jnp.pad(query, [(0, 0), (0, tiles * size - length), (0, 0), (0, 0)])
    queries = rows(query.reshape(batch, tiles, size, num_heads, head_dim))
    mask = tile_ids[..., None] == key_ids[:, band][:, :, None, :]  # [B, tiles, size, 3 * size]
    output = attend(queries, rows(key[:, band]), rows(value[:, band]), rows(mask), implementation)
    return output.reshape(batch, tiles * size, num_heads, head_dim)[:, :length]


def _window_bands(key, value, windows: WindowMask):
    """The windowed paths' operands: window ids per query tile [B, tiles, size] and per key slot
    [B, (tiles + 2) * size], and key/value [B, (tiles + 2) * size, K, H], zero-padded by `size` before
    and up to whole tiles plus `size` after, so that tile i's band is slots [i * size, (i + 3) * size)."""
    batch, length = windows.ids.shape
    size, tiles = windows.size, -(-length // windows.size)
    never = jnp.iinfo(jnp.int32).min  # the id of padding, equal to no position's
    ids = jnp.pad(windows.ids.astype(jnp.int32), [(0, 0), (0, tiles * size - length)], constant_values=never)
    key_ids = jnp.pad(ids, [(0, 0), (size, size)], constant_values=never)
    key, value = (jnp.pad(x, [(0, 0), (size, tiles * size - length + size), (0, 0), (0, 0)]) for x in (key, value))
    return ids.reshape(batch, tiles, size), key_ids, key, value


def _tile_loop(query, key, value, tile: int, span: int, stride: int, visible) -> jax.Array:
    """The loop of "tiled" and windowed attention, over (batch row, key head, query tile): tile i
    scores one key head's G query heads, [G, tile, H], against that head's keys [i * stride,
    i * stride + span), masked by visible(row, i) [tile, span]. query [B, T, N, H] (zero-padded here
    to whole tiles), key/value [B, S, K, H] -> [B, T, N, H]. Scores and softmax in float32 as in the
    reference; the unnormalised probabilities (in the value dtype) mix the values, then each row is
    divided by its sum."""
    batch, length, num_heads, head_dim = query.shape
    slots, num_kv_heads = key.shape[1], key.shape[2]
    group, tiles = num_heads // num_kv_heads, -(-length // tile)
    query = jnp.pad(query, [(0, 0), (0, tiles * tile - length), (0, 0), (0, 0)])
    query_tiles = query.reshape(batch, tiles, tile, num_kv_heads, group, head_dim).transpose(0, 3, 1, 4, 2, 5)
    query_tiles = query_tiles.reshape(-1, group, tile, head_dim)  # [(B, K, tiles), G, tile, H]
    key = jnp.swapaxes(key, 1, 2).reshape(-1, slots, head_dim)  # [(B, K), S, H]
    value = jnp.swapaxes(value, 1, 2).reshape(-1, slots, head_dim)
    scale = jnp.asarray(head_dim**-0.5, query.dtype)

    def one_tile(step):
        query_tile, index = step
        row_head, tile_index = index // tiles, index % tiles
        keys, values = (jax.lax.dynamic_slice_in_dim(x[row_head], tile_index * stride, span) for x in (key, value))
        scores = jnp.einsum("GTH,SH->GTS", query_tile, keys) * scale
        scores = jnp.where(
            visible(row_head // num_kv_heads, tile_index), scores.astype(jnp.float32), jnp.finfo(jnp.float32).min
        )
        weights = jnp.exp(scores - scores.max(-1, keepdims=True))
        mixed = jnp.einsum("GTS,SH->GTH", weights.astype(value.dtype), values)
        return (mixed / weights.sum(-1, keepdims=True)).astype(value.dtype)

    output = jax.lax.map(one_tile, (query_tiles, jnp.arange(query_tiles.shape[0])))
    output = output.reshape(batch, num_kv_heads, tiles, group, tile, head_dim).transpose(0, 2, 4, 1, 3, 5)
    return output.reshape(batch, tiles * tile, num_heads, head_dim)[:, :length]


def configure_attention(model: nnx.Module, implementation: str) -> nnx.Module:
    """Set how every attention layer of `model` that nothing reads probabilities from computes
    (IMPLEMENTATIONS); changes the compiled graph only. Returns the model."""
    _check_implementation(implementation)
    if implementation == "splash" and jax.default_backend() != "tpu":
        log.warning("splash attention off a TPU runs in Pallas' interpret mode: a check of the kernel, far slower")
    for _, module in nnx.iter_graph(model):
        if hasattr(module, "attention_implementation"):
            module.attention_implementation = implementation
    return model


def _split_queries(x: jax.Array, num_chunks: int) -> jax.Array:
    """[B, T, ...] -> [C, B, ceil(T / C), ...], the query axis zero-padded to C equal chunks."""
    chunk = -(-x.shape[1] // num_chunks)
    padded = jnp.pad(x, [(0, 0), (0, num_chunks * chunk - x.shape[1])] + [(0, 0)] * (x.ndim - 2))
    return jnp.moveaxis(padded.reshape(x.shape[0], num_chunks, chunk, *x.shape[2:]), 1, 0)


def _attention(query, key, value, mask, hook=None, probe=None) -> tuple[jax.Array, jax.Array]:
    """dot_product_attention on heads-major key/value [B, K, S, H]. Every operand and result is
    laid out heads-major, [B, K, G, T, ...], so no [T, S]-sized array is ever transposed."""
    batch, length, num_heads, head_dim = query.shape
    num_kv_heads, slots = key.shape[1], key.shape[2]
    group = num_heads // num_kv_heads
    grouped = jnp.swapaxes(query, 1, 2).reshape(batch, num_kv_heads, group, length, head_dim)
    scores = jnp.einsum("BKGTH,BKSH->BKGTS", grouped, key) * jnp.asarray(head_dim**-0.5, query.dtype)
    scores = scores.reshape(batch, num_heads, length, slots)
    scores = jnp.where(mask[:, None], scores.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(query.dtype)
    if hook is not None:
        probs = hook(probs, probe)
    grouped_probs = probs.reshape(batch, num_kv_heads, group, length, slots)
    output = jnp.einsum("BKGTS,BKSH->BKGTH", grouped_probs, value).reshape(batch, num_heads, length, head_dim)
    return jnp.swapaxes(output, 1, 2), probs


@struct.dataclass
class LayerCache:
    """One layer's preallocated key/value cache, S slots."""

    key: jax.Array  # [B, S, K, H]
    value: jax.Array  # [B, S, K, H]

    @classmethod
    def zeros(cls, batch: int, slots: int, num_kv_heads: int, head_dim: int, dtype: jnp.dtype) -> LayerCache:
        return cls(*(jnp.zeros((batch, slots, num_kv_heads, head_dim), dtype) for _ in range(2)))


@struct.dataclass
class CacheSegment:
    """The KV cache of the decoder layers [first, end), which prefilled `length` tokens (in-LLM pruning
    gives later layers shorter prefills: one segment per stage)."""

    cache: LayerCache  # stacked [end - first, B, S, K, H]; prefill in slots [0, length)
    key_valid: jax.Array  # [B, S] slots holding a real token
    layers: tuple[int, int] = struct.field(pytree_node=False)
    length: int = struct.field(pytree_node=False)


class SelfAttention(nnx.Module):
    """Rotary GQA self-attention of the Qwen2/Qwen3/Llama decoders; q/k/v biases optional, o_proj
    without; `qk_norm_eps` adds Qwen3's RMSNorm over each query and key head before RoPE."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        num_kv_heads: int,
        *,
        qkv_bias: bool,
        dtype: jnp.dtype,
        rngs: nnx.Rngs,
        head_dim: int | None = None,
        qk_norm_eps: float | None = None,
    ):
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim or hidden_size // num_heads
        self.q_proj = linear(hidden_size, num_heads * self.head_dim, bias=qkv_bias, dtype=dtype, rngs=rngs)
        self.k_proj = linear(hidden_size, num_kv_heads * self.head_dim, bias=qkv_bias, dtype=dtype, rngs=rngs)
        self.v_proj = linear(hidden_size, num_kv_heads * self.head_dim, bias=qkv_bias, dtype=dtype, rngs=rngs)
        self.o_proj = linear(num_heads * self.head_dim, hidden_size, bias=False, dtype=dtype, rngs=rngs)
        if qk_norm_eps is not None:
            self.q_norm = RMSNorm(self.head_dim, eps=qk_norm_eps, dtype=dtype)
            self.k_norm = RMSNorm(self.head_dim, eps=qk_norm_eps, dtype=dtype)
        self.qk_norm = qk_norm_eps is not None
        self.attention_implementation = "auto"  # where no probabilities are read (configure_attention)

    def queries(self, x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
        """x [B, T, D] -> rotated queries [B, T, N, H] (rope tables [B, T, H])."""
        query = self.q_proj(x).reshape(*x.shape[:2], self.num_heads, self.head_dim)
        return apply_rotary(self.q_norm(query) if self.qk_norm else query, cos, sin)

    def keys(self, x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
        """x [B, T, D] -> rotated keys [B, T, K, H]."""
        key = self.k_proj(x).reshape(*x.shape[:2], self.num_kv_heads, self.head_dim)
        return apply_rotary(self.k_norm(key) if self.qk_norm else key, cos, sin)

    def rotated_query_key(self, x: jax.Array, cos: jax.Array, sin: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x [B, T, D] -> rotated query [B, T, N, H] and key [B, T, K, H]."""
        return self.queries(x, cos, sin), self.keys(x, cos, sin)

    def __call__(
        self,
        x: jax.Array,
        cos: jax.Array,
        sin: jax.Array,
        mask: jax.Array | CausalMask,
        cache: LayerCache | None = None,
        cache_index: jax.Array | int = 0,
        hook: ProbsHook | None = None,
        probe: jax.Array | None = None,
        return_probs: bool = True,
    ) -> tuple[jax.Array, jax.Array | None, LayerCache | None]:
        """x [B, T, D], rope tables [B, T, H] -> output [B, T, D], probabilities [B, N, T, S], updated cache.

        Without a cache, or with one and mask [B, T, T] (prefill: a CausalMask, causal_mask's),
        queries attend to the T fresh keys. With a cache and mask [B, T, S] (decode), the fresh keys/values are written at
        slot cache_index first and queries attend to all S slots (mask says which are filled).
        Without `return_probs` and a hook, probabilities come back None and the layer attends by
        its `attention_implementation` (see attention_output).
        """
        batch, length, _ = x.shape
        query, key = self.rotated_query_key(x, cos, sin)
        value = self.v_proj(x).reshape(batch, length, self.num_kv_heads, self.head_dim)
        if cache is not None:
            start = (0, cache_index, 0, 0)
            cache = LayerCache(
                jax.lax.dynamic_update_slice(cache.key, key.astype(cache.key.dtype), start),
                jax.lax.dynamic_update_slice(cache.value, value.astype(cache.value.dtype), start),
            )
            if mask.shape[-1] == cache.key.shape[1] != length:
                key, value = cache.key, cache.value
        output, probs = attention_output(
            query, key, value, mask, self.attention_implementation, return_probs, hook, probe
        )
        return self.o_proj(output.reshape(batch, length, -1)), probs, cache
