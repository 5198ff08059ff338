"""Bad checkpoints and bad inputs fail with an error that names the file, tensor or input at fault."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import save_file

import tokcomp_jax
from conversion.verify import random_batch
from tokcomp_jax.files import CheckpointError
from tokcomp_jax.models import prepare_inputs
from tokcomp_jax.models.qwen2_vl.processor import build_inputs, image_processor, process_images
from tokcomp_jax.models.safetensors_io import SafetensorsFile

Q_PROJ = "model.layers.0.self_attn.q_proj.weight"


def _tensors(hf_dir) -> dict[str, np.ndarray]:
    weights = SafetensorsFile(hf_dir / "model.safetensors")
    return {key: np.array(weights.get(key)) for key in weights.keys()}


def _write(hf_dir, out_dir, tensors, config_edit=None):
    out_dir.mkdir()
    config = json.loads((hf_dir / "config.json").read_text())
    if config_edit:
        config_edit(config)
    (out_dir / "config.json").write_text(json.dumps(config))
    save_file(tensors, out_dir / "model.safetensors")
    return out_dir


def test_missing_tensor_is_named(tiny_qwen2vl, tmp_path):
    hf_dir, _, _ = tiny_qwen2vl
    tensors = _tensors(hf_dir)
    del tensors[Q_PROJ]
    with pytest.raises(
        CheckpointError, match=r"missing tensor for language_model\.layers\.0\.self_attn\.q_proj\.kernel"
    ):
        tokcomp_jax.load(_write(hf_dir, tmp_path / "ckpt", tensors))


def test_extra_tensor_is_named(tiny_qwen2vl, tmp_path):
    hf_dir, _, _ = tiny_qwen2vl
    tensors = _tensors(hf_dir) | {"model.layers.0.self_attn.rotary.inv_freq": np.ones(4, np.float32)}
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors: unexpected tensor model\.layers\.0\.self_attn\.rotary"
    ):
        tokcomp_jax.load(_write(hf_dir, tmp_path / "ckpt", tensors))


def test_wrong_shape_is_named_with_both_shapes(tiny_qwen2vl, tmp_path):
    hf_dir, _, _ = tiny_qwen2vl
    tensors = _tensors(hf_dir)
    tensors[Q_PROJ] = tensors[Q_PROJ][:, :32]
    with pytest.raises(CheckpointError, match=rf"{Q_PROJ} has shape \(64, 32\).*shape \(64, 64\)"):
        tokcomp_jax.load(_write(hf_dir, tmp_path / "ckpt", tensors))


def test_integer_tensor_is_rejected(tiny_qwen2vl, tmp_path):
    hf_dir, _, _ = tiny_qwen2vl
    tensors = _tensors(hf_dir)
    tensors[Q_PROJ] = tensors[Q_PROJ].astype(np.int32)
    with pytest.raises(CheckpointError, match=rf"{Q_PROJ} has dtype int32"):
        tokcomp_jax.load(_write(hf_dir, tmp_path / "ckpt", tensors))


def test_truncated_file_is_named(tiny_qwen2vl, tmp_path):
    hf_dir, _, _ = tiny_qwen2vl
    out = tmp_path / "ckpt"
    shutil.copytree(hf_dir, out)
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated safetensors file"):
        tokcomp_jax.load(out)


def test_config_that_disagrees_with_the_weights(tiny_qwen2vl, tmp_path):
    hf_dir, _, _ = tiny_qwen2vl

    def three_layers(config):
        config["text_config"]["num_hidden_layers"] = 3

    with pytest.raises(CheckpointError, match=r"missing tensor for language_model\.layers\.2\."):
        tokcomp_jax.load(_write(hf_dir, tmp_path / "deeper", _tensors(hf_dir), three_layers))

    def one_layer(config):
        config["text_config"]["num_hidden_layers"] = 1

    with pytest.raises(
        CheckpointError, match=r"model\.layers\.1\..* which the model built from config\.json does not have"
    ):
        tokcomp_jax.load(_write(hf_dir, tmp_path / "shallower", _tensors(hf_dir), one_layer))


def test_unknown_model_type_is_rejected(tiny_qwen2vl, tmp_path):
    hf_dir, _, _ = tiny_qwen2vl
    with pytest.raises(ValueError, match="model_type 'bert' is not supported"):
        tokcomp_jax.load(_write(hf_dir, tmp_path / "bert", _tensors(hf_dir), lambda c: c.update(model_type="bert")))


def test_image_smaller_than_a_patch(tiny_qwen2vl):
    _, _, model = tiny_qwen2vl
    with pytest.raises(ValueError, match=r"image 0 is 10x80 pixels, smaller than one 14px patch"):
        process_images(image_processor(model.config), [np.zeros((10, 80, 3), np.uint8)])


def test_pad_tokens_that_disagree_with_the_grid(tiny_qwen2vl):
    _, _, model = tiny_qwen2vl
    batch = random_batch(model.config, [[("image", 56, 56)]])
    batch["image_grid_thw"] = np.array([[1, 4, 8]])
    with pytest.raises(ValueError, match=r"pixel_values has 16 patches but grid_thw implies 32"):
        prepare_inputs(model.config, **batch)
    batch = random_batch(model.config, [[("image", 56, 56)]])
    batch["input_ids"][batch["input_ids"] == model.config.image_token_id] = 7
    with pytest.raises(ValueError, match=r"grid_thw gives 4 visual tokens but input_ids holds 0 pad tokens"):
        prepare_inputs(model.config, **batch)


def test_empty_prompt_is_rejected(tiny_qwen2vl):
    _, _, model = tiny_qwen2vl
    with pytest.raises(ValueError, match="prompt is empty"):
        build_inputs(model.config, tokenizer=None, processor=None, prompt="  ")
    with pytest.raises(ValueError, match="input_ids must be a non-empty"):
        prepare_inputs(model.config, np.zeros((1, 0), np.int64))
