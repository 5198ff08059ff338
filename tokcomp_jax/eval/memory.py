"""Per-device memory of a model on a (data, model) mesh, planned before anything loads.

    plan = memory_plan(config, data=4, model=8, dtype="bfloat16", batch_size=8, sequence=4096,
                       kernel="splash", patches=16384)
    plan.fits(16 * 2**30) or print(plan.report(16 * 2**30))

Weights: every parameter of the abstract model (`jax.eval_shape`, nothing allocated) divided by the
mesh axes the sharding rules (tokcomp_jax.eval.sharding) split it over. KV cache: keys and values of
every decoder layer for `ceil(batch / data)` rows of `sequence` slots, split over `model` when it
divides kv_heads x head_dim, as the k/v projections' output columns are split (the cache follows
them under GSPMD). Attention: the working set of the largest attention call (attention_sites), which
for XLA's kernel is the materialised scores. Other activations are not counted: at inference they
are a few layers' worth, small beside the cache and the scores, so leave headroom.
"""

from __future__ import annotations

import dataclasses
import math
import types

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tokcomp_jax.eval.sharding import param_spec
from tokcomp_jax.generate import prefill
from tokcomp_jax.models.checkpoint import jax_dtype
from tokcomp_jax.models.common.attention import QUERY_CHUNK, QUERY_TILE, attention_kernel
from tokcomp_jax.models.common.splash import BLOCKS
from tokcomp_jax.models.families import family_of

# The attention kernels a plan knows (attention.attention_kernel's names), by the memory each holds
# beyond its operands and output, per call of `rows` sequences of T queries and keys, `heads` heads
# (G query heads per key head) of width H on the device, scores s = 4 + itemsize bytes (float32
# scores, probabilities in the compute dtype):
# - "xla": XLA's attention, every score materialised: rows x heads x T x T x s, and the dense mask
#   (rows x T x T booleans);
# - "reference": the same, QUERY_CHUNK queries at a time; it is what a layer whose probabilities are
#   read runs, and those come back whole (rows x heads x T x T in the compute dtype);
# - "tiled": the dense mask and its copy padded to whole tiles, and one tile's float32 scores, masked
#   scores and weights, G x QUERY_TILE x T x 12;
# - "splash": heads-major copies of query, key, value and output padded to whole blocks; its score
#   blocks live in the TPU core's own memory (VMEM), not in HBM;
# - "cudnn": flash attention in place: nothing counted.
KERNELS = ("xla", "reference", "tiled", "splash", "cudnn")


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """Bytes per device. `attention`: each kernel's working set at its largest site (attention_sites);
    the plan's total counts `kernel`'s."""

    weights: int
    kv_cache: int
    mesh: tuple[int, int]  # (data, model)
    kernel: str = "xla"
    attention: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.total_under(self.kernel)

    def total_under(self, kernel: str) -> int:
        """Weights + KV cache + `kernel`'s attention working set."""
        return self.weights + self.kv_cache + self.attention.get(kernel, 0)

    def fits(self, device_bytes: int) -> bool:
        return self.total <= device_bytes

    def fitting_kernels(self, device_bytes: int) -> list[str]:
        """The kernels under which the plan would fit."""
        return [kernel for kernel in self.attention if self.total_under(kernel) <= device_bytes]

    def report(self, device_bytes: int | None = None) -> str:
        gib = 2**30
        line = (
            f"per device on a {self.mesh[0]} x {self.mesh[1]} (data x model) mesh: weights {self.weights / gib:.2f} GiB"
            f" + KV cache {self.kv_cache / gib:.2f} GiB"
        )
        if self.attention:
            line += f" + attention ({self.kernel}) {self.attention[self.kernel] / gib:.2f} GiB"
        line += f" = {self.total / gib:.2f} GiB"
        if device_bytes is not None:
            line += f" of {device_bytes / gib:.2f} GiB: " + ("fits" if self.fits(device_bytes) else "does NOT fit")
            if not self.fits(device_bytes) and self.attention:
                fitting = self.fitting_kernels(device_bytes)
                line += (
                    f"; it would with {' or '.join(fitting)} attention" if fitting else " under any attention kernel"
                )
        return line


def attention_bytes(
    kernel: str, rows: int, heads: int, kv_heads: int, length: int, head_dim: int, itemsize: int, model: int = 1
) -> int:
    """What one attention call of `kernel` holds beyond its operands and output (KERNELS says what),
    its heads split over `model` devices as the kernel splits them: the scores' query heads where
    `model` divides them (GSPMD); splash's heads where it divides both counts (splash.py)."""
    scores, mask = 4 + itemsize, rows * length * length
    query_heads = heads // model if heads % model == 0 else heads
    if kernel == "xla":
        return rows * query_heads * length * length * scores + mask
    if kernel == "reference":
        return rows * query_heads * length * (min(length, QUERY_CHUNK) * scores + length * itemsize) + mask
    if kernel == "tiled":
        return (heads // kv_heads) * min(length, QUERY_TILE) * length * 12 + 2 * mask
    if kernel == "splash":
        split = model if heads % model == 0 and kv_heads % model == 0 else 1
        padded = -(-length // BLOCKS[-1]) * BLOCKS[-1]
        return rows * (2 * heads + 2 * kv_heads) // split * padded * head_dim * itemsize
    if kernel == "cudnn":
        return 0
    raise ValueError(f"unknown attention kernel {kernel!r}; choose one of {KERNELS}")


def attention_sites(config, batch_rows: int, sequence: int, patches: int, reads_first_layer: bool) -> dict:
    """The attention sites of `batch_rows` rows, {site: (its kernel, or None for the plan's; (rows,
    heads, kv heads, T, H))}: the LLM prefill of `sequence` tokens; with `reads_first_layer` (a
    pruning method reading its attention), the first layer, which returns its probabilities (the
    reference, under every kernel); and with `patches`, a vision block of that many patches per image,
    one image per row attending alone (blocked by image, as the families' vision inputs are)."""
    text, vision = config.text, config.vision
    llm = (batch_rows, text.num_attention_heads, text.num_key_value_heads, sequence, text.head_dim)
    sites = {"LLM prefill": (None, llm)} | ({"LLM layer 1 (read)": ("reference", llm)} if reads_first_layer else {})
    if patches:
        heads = getattr(vision, "num_heads", None) or vision.num_attention_heads
        sites["vision block"] = (None, (batch_rows, heads, heads, patches, vision.head_dim))
    return sites


def plan_kernel(config, implementation: str, dtype: str, sequence: int) -> str:
    """The kernel (KERNELS) `implementation` (attention.IMPLEMENTATIONS) gives an LLM prefill of
    `sequence` tokens in `dtype` on this machine's backend."""
    text, dtype = config.text, jax_dtype(dtype)
    query = jax.ShapeDtypeStruct((1, sequence, text.num_attention_heads, text.head_dim), dtype)
    key = jax.ShapeDtypeStruct((1, sequence, text.num_key_value_heads, text.head_dim), dtype)
    return attention_kernel(query, key, implementation)


def image_patches(config, visual_tokens: int) -> int:
    """The patches of one vision block's attention segment for `visual_tokens` visual tokens: the
    Qwen families' image (merge x merge patches per token), SigLIP's tile (image_size / patch_size squared)."""
    vision = config.vision
    if hasattr(vision, "spatial_merge_size"):
        return visual_tokens * vision.spatial_merge_size**2
    return (vision.image_size // vision.patch_size) ** 2


def memory_plan(
    config,
    data: int,
    model: int,
    dtype: str,
    batch_size: int,
    sequence: int,
    kernel: str = "xla",
    patches: int = 0,
    reads_first_layer: bool = True,
) -> MemoryPlan:
    """The plan of `config`'s model (any family) with parameters and cache in `dtype`, attention by
    `kernel` (KERNELS) at the sites attention_sites names."""
    dtype = jax_dtype(dtype)
    if min(data, model, batch_size, sequence) < 1:
        raise ValueError(f"data {data}, model {model}, batch_size {batch_size}, sequence {sequence} must be >= 1")
    if kernel not in KERNELS:
        raise ValueError(f"unknown attention kernel {kernel!r}; choose one of {KERNELS}")
    mesh = types.SimpleNamespace(shape={"data": data, "model": model})  # param_spec reads only the axis sizes
    abstract = nnx.eval_shape(family_of(config).builder(config, dtype))
    weights = 0
    for path, variable in nnx.to_flat_state(nnx.state(abstract, nnx.Param)):
        shape = variable.get_value().shape
        spec = param_spec(".".join(map(str, path)), shape, mesh)
        shard = [size // (mesh.shape[axis] if axis else 1) for size, axis in zip(shape, tuple(spec), strict=False)]
        weights += int(np.prod(shard)) * jnp.dtype(variable.get_value().dtype).itemsize
    text = config.text
    columns = text.num_key_value_heads * text.head_dim
    columns = columns // model if columns % model == 0 else columns
    rows = math.ceil(batch_size / data)
    kv_cache = 2 * text.num_hidden_layers * rows * sequence * columns * jnp.dtype(dtype).itemsize
    sites = attention_sites(config, rows, sequence, patches, reads_first_layer)
    itemsize = jnp.dtype(dtype).itemsize
    attention = {
        name: max(attention_bytes(fixed or name, *shape, itemsize, model) for fixed, shape in sites.values())
        for name in KERNELS
    }
    return MemoryPlan(weights=weights, kv_cache=kv_cache, mesh=(data, model), kernel=kernel, attention=attention)


@dataclasses.dataclass(frozen=True)
class PrefillMemory:
    """Bytes of one compiled prefill: XLA's memory analysis beside the exact sizes of its parts."""

    tokens: int  # per row, as prefilled
    weights: int  # the parameters (abstract state)
    kv_cache: int  # the caches the prefill returns (prompt + new-token slots)
    arguments: int  # XLA: weights + embeddings, positions, mask
    outputs: int  # XLA: caches + the last logits, next token and positions
    temporaries: int  # XLA: activations and any copies the backend makes (backend-dependent)


def bytes_of(tree) -> int:
    """Total bytes of a pytree of arrays or ShapeDtypeStructs."""
    return sum(int(np.prod(leaf.shape)) * jnp.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(tree))


def prefill_memory(config, dtype: str, tokens: int, max_new_tokens: int, batch_size: int = 1) -> PrefillMemory:
    """Compile (for the default backend; nothing allocated) the LLM prefill of `config`'s model (any
    family, layers scanned) from embeddings of `batch_size` rows of `tokens` into caches with room for
    `max_new_tokens` more, and read XLA's memory analysis of it."""
    if min(tokens, max_new_tokens, batch_size) < 1:
        raise ValueError(f"tokens {tokens}, max_new_tokens {max_new_tokens}, batch_size {batch_size} must be >= 1")
    graphdef, state = nnx.split(nnx.eval_shape(family_of(config).builder(config, jax_dtype(dtype))))

    def run(state, embeds, position_ids, attention_mask):
        model = nnx.merge(graphdef, state)
        return prefill(model, embeds, position_ids, attention_mask, max_new_tokens=max_new_tokens)

    mask = jax.ShapeDtypeStruct((batch_size, tokens), jnp.int32)
    embeds = jax.eval_shape(lambda state, ids: nnx.merge(graphdef, state).embed_text(ids), state, mask)
    rope_axes = (3,) if config.text.mrope_section else ()  # M-RoPE families take (t, h, w) position ids
    positions = jax.ShapeDtypeStruct((*rope_axes, batch_size, tokens), jnp.int32)
    analysis = jax.jit(run).lower(state, embeds, positions, mask).compile().memory_analysis()
    prefilled = jax.eval_shape(run, state, embeds, positions, mask)
    return PrefillMemory(
        tokens=tokens,
        weights=bytes_of(state),
        kv_cache=bytes_of([segment.cache for segment in prefilled.segments]),
        arguments=analysis.argument_size_in_bytes,
        outputs=analysis.output_size_in_bytes,
        temporaries=analysis.temp_size_in_bytes,
    )
