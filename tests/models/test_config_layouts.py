"""config.json layouts of released and re-saved checkpoints parse, as transformers parses them.

Fixtures (tests/fixtures/configs), copied from published files:
- qwen2_vl_2b_instruct.json: Qwen/Qwen2-VL-2B-Instruct's original flat layout (values as in
  huggingface.co/mlx-community/Qwen2-VL-2B-Instruct-4bit config.json, its quantization block dropped);
- qwen2_vl_2b_resaved.json: the same model re-saved by transformers 4.46 (huggingface.co/lightonai/
  MonoQwen2-VL-v0.1 @0413559): `vision_config` holds only hidden_size, in_chans, model_type,
  spatial_patch_size;
- qwen2_vl_7b_resaved.json: Qwen2-VL-7B-Instruct re-saved by transformers 4.47 (huggingface.co/
  pbarker/Qwen2-VL-7B-sk-googleflights-full-750-47ep): `vision_config` without even hidden_size;
- vila1.5_3b.json: Efficient-Large-Model/VILA1.5-3b's top config.json (the copy in NVIDIA/TensorRT-LLM
  tests/unittest/_torch/modeling/test_modeling_vila.py), with llm_cfg and vision_tower_cfg.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import LlavaOnevisionConfig as HFLlavaOnevisionConfig
from transformers import Qwen2VLConfig as HFQwen2VLConfig

from configs.models import llava_onevision, vila
from tokcomp_jax.models.checkpoint import read_hf_config
from tokcomp_jax.models.llava_onevision.config import LlavaOnevisionConfig
from tokcomp_jax.models.loading import abstract_state
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.models.vila.config import VilaConfig

FIXTURES = Path(__file__).parents[1] / "fixtures" / "configs"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize(
    "name,preset",
    [("qwen2_vl_2b_instruct.json", Qwen2VLConfig.qwen2_vl_2b), ("qwen2_vl_2b_resaved.json", Qwen2VLConfig.qwen2_vl_2b),
     ("qwen2_vl_7b_resaved.json", Qwen2VLConfig.qwen2_vl_7b)],
)  # fmt: skip
def test_qwen2_vl_layouts_give_the_preset_as_transformers_reads_them(name, preset):
    """Ours on the file == the preset == ours on transformers' own full reading of the file (the
    nested layout transformers 5 writes, every default filled in)."""
    hf = fixture(name)
    assert Qwen2VLConfig.from_hf_config(hf) == preset()
    assert Qwen2VLConfig.from_hf_config(HFQwen2VLConfig.from_dict(hf).to_dict()) == preset()


def test_a_resaved_qwen2_vl_checkpoint_reads_and_builds(tmp_path):
    """The layout that stopped conversion with KeyError: 'depth' gives a family, a config and the
    model's abstract state (no weights allocated)."""
    (tmp_path / "config.json").write_text(json.dumps(fixture("qwen2_vl_2b_resaved.json")))
    family, config = read_hf_config(tmp_path)
    assert family.name == "qwen2_vl" and config.vision.depth == 32 and config.vision.out_hidden_size == 1536
    _, abstract = abstract_state(family.builder(config, "bfloat16"))
    assert abstract["visual"]["blocks"][31]["attn"]["qkv"]["kernel"].shape == (1280, 3840)


@pytest.mark.parametrize("variant", ["0.5b", "7b"])
def test_llava_onevision_layouts(variant):
    """llava-hf's configs are transformers' LlavaOnevisionConfig over a Qwen2 text config (transformers'
    convert_llava_onevision_weights_to_hf.py); full and diff-only (re-saved) forms both parse."""
    preset = llava_onevision.PRESETS[variant]()
    text = preset.text
    hf = HFLlavaOnevisionConfig(
        text_config=dict(model_type="qwen2", vocab_size=text.vocab_size, hidden_size=text.hidden_size,
                         intermediate_size=text.intermediate_size, num_hidden_layers=text.num_hidden_layers,
                         num_attention_heads=text.num_attention_heads, num_key_value_heads=text.num_key_value_heads,
                         rope_theta=text.rope_theta, tie_word_embeddings=text.tie_word_embeddings),
        vision_config=dict(model_type="siglip_vision_model", hidden_size=1152, image_size=384, intermediate_size=4304,
                           num_attention_heads=16, num_hidden_layers=26, patch_size=14, vision_use_head=False),
        tie_word_embeddings=text.tie_word_embeddings,
    )  # fmt: skip
    assert LlavaOnevisionConfig.from_hf_config(hf.to_dict()) == preset
    assert LlavaOnevisionConfig.from_hf_config(hf.to_diff_dict()) == preset


def test_vila_three_part_layout(tmp_path):
    """VILA1.5-3b's top config alone gives the 3b preset; in a checkpoint directory the parts' own
    config files win over the top's copies (their weights were saved with them)."""
    top = fixture("vila1.5_3b.json")
    assert VilaConfig.from_vila_top_config(top) == vila.PRESETS["3b"]()
    (tmp_path / "llm").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(top))
    (tmp_path / "llm" / "config.json").write_text(json.dumps({**top["llm_cfg"], "vocab_size": 32001}))
    family, config = read_hf_config(tmp_path)
    assert family.name == "vila" and config.text.vocab_size == 32001 and config.vision.num_hidden_layers == 27
    with pytest.raises(ValueError, match="needs its LLM's and vision tower's configs"):
        VilaConfig.from_vila_top_config({k: v for k, v in top.items() if k != "llm_cfg"})


@pytest.mark.parametrize(
    "content,message",
    [("{not json", "is not valid JSON"), ("[1, 2]", "holds a JSON list, expected an object"),
     ('{"family": "gpt5", "config": {}}', "unknown family 'gpt5'"),
     ('{"family": "vila", "config": {"text": {}}}', "cannot build a vila config")],
)  # fmt: skip
def test_bad_model_files_name_the_file(tmp_path, content, message):
    from tokcomp_jax import load
    from tokcomp_jax.files import CheckpointError
    from tokcomp_jax.models.checkpoint import MODEL_FILE

    (tmp_path / MODEL_FILE).write_text(content)
    with pytest.raises(CheckpointError, match=message) as error:
        load(tmp_path)
    assert MODEL_FILE in str(error.value)
    (tmp_path / MODEL_FILE).unlink()
    (tmp_path / "config.json").write_text(content.replace('"family"', '"model_type"'))
    if content.startswith(("{not", "[")):
        with pytest.raises(CheckpointError, match=message):
            load(tmp_path)
