"""LLaVA-OneVision's answers to the Family contract (tokcomp_jax.models.family)."""

from __future__ import annotations

import numpy as np

from tokcomp_jax.models.family import Family, tile_bucket
from tokcomp_jax.models.layout import Buckets, visual_layout
from tokcomp_jax.models.llava_onevision import processor
from tokcomp_jax.models.llava_onevision.config import LlavaOnevisionConfig
from tokcomp_jax.models.llava_onevision.modeling import LlavaOnevision, prepare_llava_inputs
from tokcomp_jax.models.llava_onevision.params import llava_onevision_name_map

MEDIA = ("pixel_values", "image_sizes", "pixel_values_videos", "batch_num_images")


class LlavaOnevisionFamily(Family):
    name = "llava_onevision"
    hf_model_types = ("llava_onevision",)
    config_class = LlavaOnevisionConfig
    model = LlavaOnevision

    def name_map(self, config):
        return llava_onevision_name_map(config.text.tie_word_embeddings)

    def chat(self, config, tokenizer, files=None):
        return processor.LlavaOnevisionChat(config, tokenizer, files)

    def collate(self, rows):
        return processor.collate(rows)

    def buckets(self, config, row, text, visual, batch_size):
        return Buckets(text=text, visual=visual, tiles=tile_bucket(processor.row_tiles(config, row), batch_size))

    def token_counts(self, config, row):
        text, visual = super().token_counts(config, row)
        newlines = processor.row_newlines(config, row)
        return text + newlines, visual - newlines

    def prepare(self, config, batch, buckets):
        """The row newlines are never pruned: they are the only layout the LLM gets of a tiled image."""
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        media = {key: batch.get(key) for key in MEDIA}
        inputs = prepare_llava_inputs(config, input_ids, attention_mask, **media, tile_bucket=buckets.tiles)
        kept = None if inputs.newline_mask is None else np.asarray(inputs.newline_mask)
        return inputs, visual_layout(input_ids, attention_mask, self.visual_token_ids(config), buckets, kept=kept)

    def token_grids(self, config, batch, counts, layout):
        if layout != "sequence":
            raise ValueError(
                "LLaVA-OneVision's visual tokens (overview tile, then unpadded rows of tiles) form no single "
                "grid: use a mapper with the sequence layout"
            )
        return [np.array([[1, 1, count]], np.int32) for count in counts]


LLAVA_ONEVISION = LlavaOnevisionFamily()
