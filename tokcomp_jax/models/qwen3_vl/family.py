"""Qwen3-VL's answers to the Family contract: Qwen2-VL's (collate, buckets, layout), with its own
config, model, weights, prompt side and host bookkeeping (the position-table taps, one grid per
temporal patch of a video)."""

from __future__ import annotations

from tokcomp_jax.models.qwen2_vl.family import Qwen2VLFamily
from tokcomp_jax.models.qwen3_vl.config import Qwen3VLConfig
from tokcomp_jax.models.qwen3_vl.modeling import Qwen3VL, frame_grids, prepare_inputs
from tokcomp_jax.models.qwen3_vl.params import qwen3_vl_name_map
from tokcomp_jax.models.qwen3_vl.processor import Qwen3VLChat


class Qwen3VLFamily(Qwen2VLFamily):
    name = "qwen3_vl"
    hf_model_types = ("qwen3_vl",)
    config_class = Qwen3VLConfig
    model = Qwen3VL
    prepare_inputs = staticmethod(prepare_inputs)
    timestamped_frames = True

    def name_map(self, config):
        return qwen3_vl_name_map(config.text.tie_word_embeddings)

    def chat(self, config, tokenizer, files=None):
        return Qwen3VLChat(config, tokenizer, files)

    def token_grids(self, config, batch, counts, layout):
        """Each temporal patch of a video is its own run of tokens, so its own grid."""
        split = dict(batch, video_grid_thw=frame_grids(batch.get("video_grid_thw")))
        return super().token_grids(config, split, counts, layout)


QWEN3_VL = Qwen3VLFamily()
