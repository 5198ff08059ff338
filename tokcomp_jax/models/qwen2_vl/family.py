"""Qwen2-VL's answers to the Family contract (tokcomp_jax.models.family)."""

from __future__ import annotations

import numpy as np

from tokcomp_jax.models.family import Family
from tokcomp_jax.models.layout import Buckets, token_grids, visual_layout
from tokcomp_jax.models.qwen2_vl import processor
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.models.qwen2_vl.modeling import Qwen2VL, prepare_inputs
from tokcomp_jax.models.qwen2_vl.params import qwen2vl_name_map

MEDIA = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw")


class Qwen2VLFamily(Family):
    name = "qwen2_vl"
    hf_model_types = ("qwen2_vl",)
    config_class = Qwen2VLConfig
    model = Qwen2VL
    media_keys = MEDIA  # what prepare_inputs takes from a batch beside the ids
    timestamped_frames = False  # whether each temporal patch of a video is its own run of tokens (Qwen3-VL)
    prepare_inputs = staticmethod(prepare_inputs)

    def name_map(self, config):
        return qwen2vl_name_map(config.text.tie_word_embeddings)

    def chat(self, config, tokenizer, files=None):
        return processor.Qwen2VLChat(config, tokenizer, files)

    def collate(self, rows):
        return processor.collate(rows)

    def buckets(self, config, row, text, visual, batch_size):
        """One block of the vision tower's patches per image / video frame group: a row of G such
        segments in visual bucket N gets blocks of N // G tokens' patches."""
        segments = sum(
            int(np.asarray(row[key])[:, 0].sum()) for key in ("image_grid_thw", "video_grid_thw") if key in row
        )
        merge = config.vision.spatial_merge_size
        return Buckets(text=text, visual=visual, frame_patches=max(visual // max(segments, 1), 1) * merge**2)

    def prepare(self, config, batch, buckets):
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        layout = visual_layout(
            input_ids, attention_mask, self.visual_token_ids(config), buckets
        )  # clearer errors first
        media = {key: batch.get(key) for key in self.media_keys}
        has_media = media["pixel_values"] is not None or media["pixel_values_videos"] is not None
        merge = config.vision.spatial_merge_size
        patch_bucket = len(input_ids) * buckets.visual * merge**2 if has_media else None
        inputs = self.prepare_inputs(
            config, input_ids, attention_mask, **media, patch_bucket=patch_bucket, frame_patches=buckets.frame_patches
        )
        return inputs, layout

    def token_grids(self, config, batch, counts, layout):
        grids = (batch.get("image_grid_thw"), batch.get("video_grid_thw"))
        return token_grids(batch["input_ids"], *self.visual_token_ids(config), *grids, config.vision.spatial_merge_size)


QWEN2_VL = Qwen2VLFamily()
