"""The Qwen2/Llama decoder shared by every family: embeddings, pre-norm blocks, final norm, LM head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx, struct

from tokcomp_jax.models.common.attention import LayerCache, SelfAttention
from tokcomp_jax.models.common.config import DecoderConfig
from tokcomp_jax.models.common.layers import GatedMLP, RMSNorm, linear
from tokcomp_jax.models.common.masks import CausalMask


def pack_deepstack(embeds: jax.Array, deepstack: jax.Array) -> jax.Array:
    """Token embeddings [B, T, D] and DeepStack features [L, B, T, D] (Qwen3-VL: what to add to the
    outputs of the first L layers, zero at text) -> one sequence-aligned array [B, T, (1 + L) * D].

    Packed, the features travel with their tokens through everything that moves tokens (pruning's
    gather and mask, padding, sharding); `LayerStack` unpacks and adds them."""
    return jnp.concatenate([embeds, *deepstack], axis=-1)


def unpack_deepstack(x: jax.Array, hidden_size: int) -> tuple[jax.Array, jax.Array | None]:
    """The inverse of pack_deepstack: [B, T, (1 + L) * D] -> ([B, T, D], [L, B, T, D]); a plain
    [B, T, D] comes back with None."""
    if x.shape[-1] == hidden_size:
        return x, None
    if x.shape[-1] % hidden_size:
        raise ValueError(f"hidden states of width {x.shape[-1]} are neither {hidden_size} nor a packed multiple of it")
    parts = x.reshape(*x.shape[:-1], -1, hidden_size)
    return parts[..., 0, :], jnp.moveaxis(parts[..., 1:, :], -2, 0)


def causal_mask(attention_mask: jax.Array) -> CausalMask:
    """Padding mask [B, T] (1 = real token) -> the prefill's mask [B, T, T]: query t sees real keys s <= t."""
    return CausalMask(attention_mask.astype(bool))


class DecoderLayer(nnx.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: DecoderConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, dtype=dtype)
        self.self_attn = SelfAttention(
            config.hidden_size,
            config.num_attention_heads,
            config.num_key_value_heads,
            qkv_bias=config.attention_bias,
            dtype=dtype,
            rngs=rngs,
            head_dim=config.head_dim,
            qk_norm_eps=config.rms_norm_eps if config.qk_norm else None,
        )
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, dtype=dtype)
        self.mlp = GatedMLP(config.hidden_size, config.intermediate_size, act=config.hidden_act, dtype=dtype, rngs=rngs)

    def __call__(
        self,
        x,
        cos,
        sin,
        mask,
        cache: LayerCache | None = None,
        cache_index=0,
        hook=None,
        probe=None,
        return_probs=True,
    ):
        """x [B, T, D] -> x [B, T, D], attention probabilities [B, N, T, S] (or None), updated cache (see SelfAttention)."""
        normed = self.input_layernorm(x)
        attended, probs, cache = self.self_attn(normed, cos, sin, mask, cache, cache_index, hook, probe, return_probs)
        x = x + attended
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, probs, cache


REMAT_POLICIES = {
    "none": None,  # keep every residual for the backward pass (fastest, most memory)
    "full": jax.checkpoint_policies.nothing_saveable,  # recompute each layer in the backward pass
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # keep the weight matmuls only
}


@struct.dataclass
class StackOutput:
    hidden: jax.Array  # [B, T, D] after the range's last layer (the stack does not apply the final norm)
    attention: jax.Array | None = None  # [B, N, T, S] probabilities of layer `attention_at`, when asked
    attention_input: jax.Array | None = None  # [B, T, D] the hidden states that entered that layer
    cache: LayerCache | None = None  # the range's caches, stacked [L_range, B, S, K, H], when given


class LayerStack(nnx.Module):
    """The decoder layers, in one of two layouts (`configure(scan=...)` moves the parameters):

    - scanned (the default): every parameter stacked on a leading layer axis (`stack.stacked`, the
      layout checkpoints, conversion and the sharding rules name), the layers run by `lax.scan`:
      one compiled layer body whatever the depth;
    - unrolled: one DecoderLayer per layer (`stack.unrolled`), run as a Python loop. No step copies
      its layer's weights out of a stack first, as a scan step does on CPU (decode ~2x faster
      there, docs/results.md); compiles take longer with depth.

    One run API for every pass (forward, prefill, decode, pruning inside the LLM, relevance):

        out = stack(x, cos, sin, mask, layers=slice(a, b), cache=..., attention_at=a, hook=..., probes=...)

    runs layers [a, b); `remat` (a REMAT_POLICIES key) sets what the backward pass recomputes. Named
    taps instead of per-layer arguments: `attention_at` returns that layer's attention probabilities
    and its input hidden states (the layer runs on its own, the rest of the range scanned around
    it); `hook`/`probes` pass every layer's probabilities through hook(probs, probes[l - a]) (the
    relevance probes); `cache` holds the range's keys/values. `stack[i]` is layer i as a plain
    DecoderLayer (scanned: a view of its parameters).

    DeepStack (Qwen3-VL): x may come packed with features to add to the outputs of the range's first
    layers (pack_deepstack); those layers then run one at a time, each followed by its addition, and
    features left over past the range's end come back packed in `hidden`, for the next range.
    """

    def __init__(
        self, config: DecoderConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs, scan: bool = True, remat: str = "none"
    ):
        @nnx.split_rngs(splits=config.num_hidden_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0, axis_size=config.num_hidden_layers)
        def create(rngs: nnx.Rngs) -> DecoderLayer:
            return DecoderLayer(config, dtype=dtype, rngs=rngs)

        self.stacked = create(rngs)
        self.num_layers = config.num_hidden_layers
        self.hidden_size = config.hidden_size
        self.scan, self.remat = True, "none"
        self.configure(scan=scan, remat=remat)

    def configure(self, scan: bool | None = None, remat: str | None = None) -> None:
        """Choose the layout (scanned or unrolled; switching moves the parameters, one parameter at a
        time, so no second copy of the whole stack is held) and the remat policy (graph only)."""
        if remat is not None and remat not in REMAT_POLICIES:
            raise ValueError(f"unknown remat policy {remat!r}; choose one of {sorted(REMAT_POLICIES)}")
        self.remat = self.remat if remat is None else remat
        if scan is not None and bool(scan) != self.scan:
            self._stack() if scan else self._unstack()
            self.scan = bool(scan)

    def _unstack(self) -> None:
        graphdef, state = nnx.split(self.stacked)
        del self.stacked
        leaves, treedef = jax.tree.flatten(state)
        del state
        per_layer = []
        for i, stacked in enumerate(leaves):
            per_layer.append(_split_layers(stacked, self.num_layers))
            leaves[i] = None  # the stacked array is freed once nothing else holds it
        self.unrolled = nnx.List(
            [nnx.merge(graphdef, jax.tree.unflatten(treedef, [parts[layer] for parts in per_layer]))
             for layer in range(self.num_layers)]
        )  # fmt: skip

    def _stack(self) -> None:
        graphdef = nnx.graphdef(self.unrolled[0])
        flat = [jax.tree.flatten(nnx.split(layer)[1]) for layer in self.unrolled]
        del self.unrolled
        treedef, columns = flat[0][1], [list(parts) for parts in zip(*(leaves for leaves, _ in flat), strict=True)]
        del flat
        stacked = []
        for i, parts in enumerate(columns):
            stacked.append(_stack_layers(parts))
            columns[i] = None
        self.stacked = nnx.merge(graphdef, jax.tree.unflatten(treedef, stacked))

    @property
    def attention(self) -> SelfAttention:
        """Layer 0's attention block: its static fields (heads, KV heads, head width) are every layer's."""
        return (self.stacked if self.scan else self.unrolled[0]).self_attn

    def __len__(self) -> int:
        return self.num_layers

    def __getitem__(self, index: int) -> DecoderLayer:
        if not self.scan:
            return self.unrolled[index]
        graphdef, state = nnx.split(self.stacked)
        return nnx.merge(graphdef, _index(state, index))

    def layer_range(self, layers: slice) -> range:
        """The static layer indices of a slice; refuses steps and empty ranges."""
        if layers.step not in (None, 1):
            raise ValueError(f"a layer range runs consecutive layers; got step {layers.step}")
        indices = range(*layers.indices(self.num_layers))
        if not indices:
            raise ValueError(f"layer range {layers} of a {self.num_layers}-layer decoder is empty")
        return indices

    def __call__(
        self,
        x: jax.Array,
        cos: jax.Array,
        sin: jax.Array,
        mask: jax.Array,
        *,
        layers: slice = slice(None),
        cache: LayerCache | None = None,
        cache_index: jax.Array | int = 0,
        attention_at: int | None = None,
        hook=None,
        probes: jax.Array | None = None,
        remat: str | None = None,
    ) -> StackOutput:
        """x [B, T, D], rope tables, mask [B, T, S] -> StackOutput of layers `layers` (see the class)."""
        indices = self.layer_range(layers)
        if attention_at is not None and attention_at not in indices:
            raise ValueError(f"attention_at={attention_at} is outside the layer range {layers}")
        for name, stacked in (("cache", cache), ("probes", probes)):
            if stacked is not None and jax.tree.leaves(stacked)[0].shape[0] != len(indices):
                raise ValueError(
                    f"{name} covers {jax.tree.leaves(stacked)[0].shape[0]} layers, the range {len(indices)}"
                )
        policy = REMAT_POLICIES[self.remat if remat is None else remat]
        x, deepstack = unpack_deepstack(x, self.hidden_size)
        start, stop = indices.start, indices.stop
        injected = 0 if deepstack is None else min(len(deepstack), len(indices))
        cuts = {start, stop, *(start + i for i in range(1, injected + 1))}
        if attention_at is not None:
            cuts |= {attention_at, attention_at + 1}
        bounds = sorted(cuts)
        attention, attention_input, caches = None, None, []
        for first, end in zip(bounds[:-1], bounds[1:], strict=True):
            part = slice(first - start, end - start)
            attention_input = x if first == attention_at else attention_input
            x, probs, part_cache = self._run(
                x, cos, sin, mask, first, end, _index(cache, part), cache_index, hook, _index(probes, part), policy,
                read_probs=first == attention_at,
            )  # fmt: skip
            if first - start < injected:  # a one-layer piece: add its DeepStack features
                x = x + deepstack[first - start].astype(x.dtype)
            attention = probs if first == attention_at else attention
            caches.append(part_cache)
        if deepstack is not None and len(deepstack) > injected:
            x = pack_deepstack(x, deepstack[injected:])
        if cache is not None:
            cache = jax.tree.map(lambda *parts: jnp.concatenate(parts), *caches) if len(caches) > 1 else caches[0]
        return StackOutput(x, attention, attention_input, cache)

    def _run(self, x, cos, sin, mask, first, end, cache, cache_index, hook, probes, policy, read_probs):
        """Layers [first, end): hidden, the last layer's probabilities (with `read_probs`, a single layer),
        stacked caches. Layers whose probabilities nobody reads attend by their configured implementation."""
        if self.scan:
            graphdef, state = nnx.split(self.stacked)
            layer_state = lambda index: _index(state, index)  # noqa: E731  (a copy of one layer's slice)
        else:
            graphdef = nnx.graphdef(self.unrolled[0])  # every layer's structure
            layer_state = lambda index: nnx.state(self.unrolled[index])  # noqa: E731

        def one_layer(x, layer_state, layer_cache, probe):
            layer = nnx.merge(graphdef, layer_state)
            return layer(x, cos, sin, mask, layer_cache, cache_index, hook, probe, return_probs=read_probs)

        if policy is not None:
            one_layer = jax.checkpoint(one_layer, policy=policy)
        if not self.scan or end - first == 1:
            probs, caches = None, []
            for index in range(first, end):
                x, probs, layer_cache = one_layer(
                    x, layer_state(index), _index(cache, index - first), _index(probes, index - first)
                )
                caches.append(layer_cache)
            stacked = None if cache is None else jax.tree.map(lambda *layers: jnp.stack(layers), *caches)
            return x, probs, stacked

        # The whole stack scans over its parameters (their gradient is a scan output); a sub-range scans
        # over layer indices and reads each layer's slice, so no copy of the sub-range's parameters is made.
        if (first, end) == (0, self.num_layers):
            over, read = state, lambda layer_state: layer_state
        else:
            over = jnp.arange(first, end)
            read = lambda i: jax.tree.map(lambda v: jax.lax.dynamic_index_in_dim(v, i, keepdims=False), state)  # noqa: E731

        def body(x, layer):
            layer_state, layer_cache, probe = layer
            x, _, layer_cache = one_layer(x, read(layer_state), layer_cache, probe)
            return x, layer_cache

        x, caches = jax.lax.scan(body, x, (over, cache, probes))
        return x, None, caches


def _index(stacked, index: int | slice):
    """A layer (or a range of layers) of a stacked pytree; None stays None."""
    return None if stacked is None else jax.tree.map(lambda value: value[index], stacked)


def _split_layers(stacked, num_layers: int) -> list:
    """A stacked parameter [L, ...] (an array, or a shape-only ShapeDtypeStruct) -> L of [...]."""
    if isinstance(stacked, jax.ShapeDtypeStruct):
        return [jax.ShapeDtypeStruct(stacked.shape[1:], stacked.dtype)] * num_layers
    return [stacked[layer] for layer in range(num_layers)]


def _stack_layers(parts: list):
    """The inverse of _split_layers: L parameters [...] -> [L, ...]."""
    if isinstance(parts[0], jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct((len(parts), *parts[0].shape), parts[0].dtype)
    return jnp.stack(parts)


class Decoder(nnx.Module):
    """Token embeddings, the stacked decoder layers and the final norm (transformers' `*TextModel`)."""

    def __init__(self, config: DecoderConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.embed_tokens = nnx.Embed(config.vocab_size, config.hidden_size, dtype=dtype, param_dtype=dtype, rngs=rngs)
        self.layers = LayerStack(config, dtype=dtype, rngs=rngs)
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, dtype=dtype)

    def init_cache(self, batch: int, slots: int, dtype: jnp.dtype, layers: slice = slice(None)) -> LayerCache:
        """Empty key/value caches of S slots for the layers of `layers`, stacked [L_range, B, S, K, H]."""
        attention = self.layers.attention
        shape = (len(self.layers.layer_range(layers)), batch, slots, attention.num_kv_heads, attention.head_dim)
        return LayerCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))

    def __call__(self, inputs_embeds, cos, sin, mask, **taps) -> StackOutput:
        """Embeddings [B, T, D] -> every layer, then the final norm: StackOutput with normed hidden [B, T, D].
        `taps`: LayerStack's keywords (cache, cache_index, attention_at, hook, probes, remat)."""
        out = self.layers(inputs_embeds, cos, sin, mask, **taps)
        return out.replace(hidden=self.norm(out.hidden))


class LMHead(nnx.Module):
    """Hidden states [B, T, D] -> logits [B, T, V]; reads the embedding matrix when tied."""

    def __init__(self, config: DecoderConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.tied = config.tie_word_embeddings
        if not self.tied:
            self.proj = linear(config.hidden_size, config.vocab_size, bias=False, dtype=dtype, rngs=rngs)

    def __call__(self, hidden: jax.Array, embed_tokens: nnx.Embed) -> jax.Array:
        if self.tied:
            return embed_tokens.attend(hidden)
        return self.proj(hidden)
