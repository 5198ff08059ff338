"""What every MLLM family shares once its visual tokens are embedded: the decoder, the LM head and
the forward pass. A family subclass provides `embed(inputs)` and `rope(position_ids, dtype)`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx, struct

from tokcomp_jax.models.common.decoder import causal_mask


@struct.dataclass
class MLLMOutput:
    logits: jax.Array  # [B, T, V]
    first_layer_attention: jax.Array | None = None  # [B, N, T, T]


@struct.dataclass
class TowerAttention:
    """What the vision tower's last block says of each visual token (`embed(..., return_vision_attention=True)`).

    Per merged token, [N] / [N, d], from the tower; placed in the sequence, [B, T] / [B, T, d], 0 at text.
    """

    received: jax.Array  # attention received: mean over heads, over its image's queries and its merge window
    keys: jax.Array  # its keys (after the tower's rotary embedding, where it has one): mean over heads and window

    @classmethod
    def none(cls, length_shape: tuple[int, ...], head_dim: int) -> TowerAttention:
        """No image in the batch: zeros of shape [B, T] and [B, T, d]."""
        return cls(jnp.zeros(length_shape, jnp.float32), jnp.zeros((*length_shape, head_dim), jnp.float32))

    def placed(self, index: jax.Array, is_visual: jax.Array) -> TowerAttention:
        """Per-token values [N, ...] -> [B, T, ...] at the visual positions (`index` [B, T] into N), 0 elsewhere."""
        place = lambda values: jnp.where(  # noqa: E731
            is_visual.reshape(is_visual.shape + (1,) * (values.ndim - 1)), values[index], 0.0
        )
        return jax.tree.map(place, self)


def last_block_keys(keys: jax.Array, window: int) -> jax.Array:
    """Keys [..., P, H, d] of a tower's last block -> [..., P / window, d]: mean over heads and each merge window."""
    keys = keys.astype(jnp.float32).mean(-2)
    return keys.reshape(*keys.shape[:-2], keys.shape[-2] // window, window, keys.shape[-1]).mean(-2)


class DecoderMLLM(nnx.Module):
    """Subclasses set `language_model` (Decoder) and `lm_head` (LMHead) and define embed / rope."""

    def embed_text(self, input_ids: jax.Array) -> jax.Array:
        """Token embeddings [B, T, D] in the form the decoder takes them (a family that packs more
        features beside them overrides this); `embed` replaces the visual tokens' rows."""
        return self.language_model.embed_tokens(input_ids)

    def forward_embeddings(
        self,
        embeds: jax.Array,
        position_ids: jax.Array,
        attention_mask: jax.Array,
        return_first_layer_attention: bool = False,
        hook=None,
        probes=None,
        remat: str | None = None,
    ) -> MLLMOutput:
        """The decoder and LM head on embeddings [B, T, D] at the family's position ids, padding mask [B, T].

        Pruned inputs come in here: a shorter sequence that keeps its tokens' original positions.
        `hook`/`probes`: an attention-probability hook per layer (see dot_product_attention);
        `remat`: the layer stack's remat policy for this pass (see LayerStack).
        """
        cos, sin = self.rope(position_ids, embeds.dtype)
        mask = causal_mask(attention_mask)
        out = self.language_model(
            embeds,
            cos,
            sin,
            mask,
            attention_at=0 if return_first_layer_attention else None,
            hook=hook,
            probes=probes,
            remat=remat,
        )
        return MLLMOutput(self.lm_head(out.hidden, self.language_model.embed_tokens), out.attention)

    def __call__(self, inputs, return_first_layer_attention: bool = False) -> MLLMOutput:
        """Logits [B, T, V] and, if asked, the first decoder layer's attention probabilities [B, N, T, T]."""
        return self.forward_embeddings(
            self.embed(inputs), inputs.position_ids, inputs.attention_mask, return_first_layer_attention
        )
