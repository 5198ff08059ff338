"""scripts/released_sizes.py: the released config.json it builds each family from is the family's preset, and
(slow) the whole journey on Qwen2-VL-2B's widths at 2 layers exits 0 everywhere and removes its checkpoints."""

from __future__ import annotations

import json

import pytest

from configs.models.vila import vila_3b
from tests.scripts_module import load_script
from tokcomp_jax.models.checkpoint import read_hf_config
from tokcomp_jax.models.llava_onevision.config import LlavaOnevisionConfig
from tokcomp_jax.models.qwen2_5_vl.config import Qwen25VLConfig
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig
from tokcomp_jax.models.qwen3_vl.config import Qwen3VLConfig

PRESETS = {
    "llava_onevision": LlavaOnevisionConfig.llava_onevision_0_5b,
    "qwen2_vl": Qwen2VLConfig.qwen2_vl_2b,
    "qwen3_vl": Qwen3VLConfig.qwen3_vl_2b,
    "qwen2_5_vl": Qwen25VLConfig.qwen2_5_vl_3b,
    "vila": vila_3b,
}


@pytest.mark.parametrize("family", list(PRESETS))
def test_released_config_is_the_preset(family, tmp_path):
    script = load_script("released_sizes")
    (tmp_path / "config.json").write_text(json.dumps(script.released_config(family, None)))
    _, config = read_hf_config(tmp_path)
    assert config == PRESETS[family]()
    (tmp_path / "config.json").write_text(json.dumps(script.released_config(family, 3)))
    assert read_hf_config(tmp_path)[1].text.num_hidden_layers == 3


@pytest.mark.slow
def test_journey_at_two_layers(tmp_path):
    records = load_script("released_sizes").main(["--out", str(tmp_path), "--family", "qwen2_vl", "--layers", "2"])
    record = records["qwen2_vl"]
    assert record["llm_layers"] == 2 and record["verify_dtype"] == "float32"
    assert record["verify"]["passed"], record["verify"]
    for step in ("write", "convert", "convert_bf16", "load_compile", "evaluate", "generate"):
        assert record[step]["exit"] == 0, (step, record[step])
    assert record["logits_finite"] and record["generated"]["visual_tokens_kept"] > 0
    assert not list((tmp_path / "qwen2_vl").glob("*model-*")) and not (tmp_path / "qwen2_vl" / "hf").exists()
    assert "| qwen2_vl (Qwen2-VL-2B-Instruct) | 2 |" in (tmp_path / "released_sizes.md").read_text()
