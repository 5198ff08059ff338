"""Qwen2.5-VL's answers to the Family contract: Qwen2-VL's (same prompt side, processor, buckets and
token grids), with its own config, model, weights and host bookkeeping (windows, video time).

A video from the chat side carries `second_per_grid_ts` as transformers' processor writes it
(temporal patch size / the kept frames' rate; 24 fps where the clip's rate is not told); a batch
without it spaces temporal patches 1 s apart (frames sampled at 2 fps)."""

from __future__ import annotations

from tokcomp_jax.models.qwen2_5_vl.config import Qwen25VLConfig
from tokcomp_jax.models.qwen2_5_vl.modeling import Qwen25VL, prepare_inputs
from tokcomp_jax.models.qwen2_5_vl.params import qwen2_5_vl_name_map
from tokcomp_jax.models.qwen2_vl.family import MEDIA, Qwen2VLFamily
from tokcomp_jax.models.qwen2_vl.processor import Qwen2VLChat


class Qwen25VLFamily(Qwen2VLFamily):
    name = "qwen2_5_vl"
    hf_model_types = ("qwen2_5_vl",)
    config_class = Qwen25VLConfig
    model = Qwen25VL
    media_keys = (*MEDIA, "second_per_grid_ts")
    prepare_inputs = staticmethod(prepare_inputs)

    def chat(self, config, tokenizer, files=None):
        return Qwen2VLChat(config, tokenizer, files, video_time=True)

    def name_map(self, config):
        return qwen2_5_vl_name_map(config.text.tie_word_embeddings)


QWEN2_5_VL = Qwen25VLFamily()
