"""What every MLLM family shares once its visual tokens are embedded: the decoder, the LM head and
the forward pass. A family subclass provides `embed(inputs)` and `rope(position_ids, dtype)`."""

from __future__ import annotations

import jax
from flax import nnx, struct

from tokcomp_jax.models.common.decoder import causal_mask


@struct.dataclass
class MLLMOutput:
    logits: jax.Array  # [B, T, V]
    first_layer_attention: jax.Array | None = None  # [B, N, T, T]


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
