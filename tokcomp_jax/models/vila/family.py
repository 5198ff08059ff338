"""VILA1.5's answers to the Family contract (tokcomp_jax.models.family)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokcomp_jax.models.common.released import SideFiles, read_side_files
from tokcomp_jax.models.family import Family, tile_bucket
from tokcomp_jax.models.layout import Buckets, visual_layout
from tokcomp_jax.models.vila import processor
from tokcomp_jax.models.vila.config import VilaConfig
from tokcomp_jax.models.vila.modeling import Vila, prepare_vila_inputs
from tokcomp_jax.models.vila.params import PARTS, vila_name_map


class VilaFamily(Family):
    name = "vila"
    display_name = "VILA1.5"
    hf_model_types = ("llava_llama",)
    config_class = VilaConfig
    model = Vila
    checkpoint_parts = PARTS
    tokenizer_subdir = "llm"
    processor_subdirs = ("llm", "vision_tower")
    tokens_by_column = True  # the 2x2 fold stores each image's grid transposed (token_grids)

    def read_config(self, directory):
        return VilaConfig.from_directory(directory)

    def name_map(self, config):
        return vila_name_map(config.text.tie_word_embeddings)

    def load_tokenizer(self, checkpoint, tokenizer_dir=None):
        """VILA's own tokenizer of llm/ (tokcomp_jax.models.vila.tokenizer); VILA1.5 has no chat template file."""
        from tokcomp_jax.models.vila.tokenizer import load_vila_tokenizer

        return load_vila_tokenizer(tokenizer_dir or self.tokenizer_directory(checkpoint))

    def read_side_files(self, checkpoint):
        """VILA1.5 keeps its SigLIP preprocessing beside the tower (vision_tower/) and its generation
        config beside the LLM (llm/)."""
        if checkpoint is None:
            return SideFiles()
        return read_side_files(Path(checkpoint) / "vision_tower", Path(checkpoint) / "llm")

    def chat(self, config, tokenizer, files=None):
        return processor.VilaChat(config, tokenizer, files)

    def collate(self, rows):
        return processor.collate(rows)

    def buckets(self, config, row, text, visual, batch_size):
        return Buckets(text=text, visual=visual, tiles=tile_bucket(len(row.get("pixel_values", ())), batch_size))

    def visual_token_ids(self, config):
        return (config.image_token_id,)

    def prepare(self, config, batch, buckets):
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        inputs = prepare_vila_inputs(config, input_ids, attention_mask, batch.get("pixel_values"), buckets.tiles)
        return inputs, visual_layout(input_ids, attention_mask, self.visual_token_ids(config), buckets)

    def token_grids(self, config, batch, counts, layout):
        """One square grid of folded tokens per image / frame (stored column by column: the transposed
        grid, with the same neighbourhoods)."""
        side = int(round(config.tokens_per_image**0.5))
        return [np.array([[count // config.tokens_per_image, side, side]], np.int32) for count in counts]


VILA = VilaFamily()
