"""The conversion CLI: HF safetensors or PyTorch .bin -> orbax, --verify, and the runtime's torch-free load."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
from flax import nnx

import tokcomp_jax
from conversion.convert import PROCESSOR_FILES, main
from conversion.tiny import hf_config_of, save_tiny_model, tiny_llava_model
from conversion.verify import flax_forward, random_batch
from conversion.verify_vila import save_tiny_vila
from tokcomp_jax.files import CheckpointError
from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig


@pytest.fixture(scope="module")
def gqa4_tied_dir(tmp_path_factory):
    """A tiny checkpoint of another shape: 8 heads over 2 KV heads, tied embeddings, other vision depth."""
    directory = tmp_path_factory.mktemp("gqa4_tied")
    save_tiny_model(directory, seed=5, hidden=64, heads=8, kv_heads=2, mrope=(1, 1, 2), tie=True, depth=1)
    return directory


def test_convert_then_verify_passes_and_prints_diffs(gqa4_tied_dir, tmp_path, capsys):
    assert main(["--src", str(gqa4_tied_dir), "--dst", str(tmp_path / "out"), "--verify"]) == 0
    diffs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert diffs["passed"] and diffs["logits_max_abs_diff"] < 1e-4 and diffs["attn1_max_abs_diff"] < 1e-4


def test_llava_onevision_converts_by_auto_detection_and_verifies(tmp_path, capsys):
    """A tiny LLaVA-OneVision of a shape the parity tests do not use (tied embeddings, one KV head,
    one vision layer): model_type picks the family, --verify compares a tiled wide image + a video."""
    src = tmp_path / "llava"
    tiny_llava_model(seed=3, heads=4, kv_heads=1, tie=True, vision_layers=1).save_pretrained(src)
    assert main(["--src", str(src), "--dst", str(tmp_path / "out"), "--verify"]) == 0
    diffs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert diffs["passed"] and diffs["logits_max_abs"] > 0.1, diffs
    assert tokcomp_jax.load(tmp_path / "out").config.family == "llava_onevision"
    assert main(["--src", str(src), "--dst", str(tmp_path / "x"), "--family", "qwen2_vl"]) == 2


def test_vila_converts_by_auto_detection_and_verifies(tmp_path, capsys):
    """A tiny VILA1.5 directory of a shape the parity tests do not use (tied embeddings, one KV head,
    an even 4 x 4 patch grid): llava_llama picks the family, --verify runs two images."""
    src = tmp_path / "vila"
    save_tiny_vila(src, seed=4, llm={"num_key_value_heads": 1, "tie_word_embeddings": True},
                   vision={"image_size": 56, "num_hidden_layers": 2})  # fmt: skip
    assert main(["--src", str(src), "--dst", str(tmp_path / "out"), "--verify"]) == 0
    diffs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert diffs["passed"] and diffs["logits_max_abs"] > 0.1, diffs
    assert tokcomp_jax.load(tmp_path / "out").config.tokens_per_image == 4


def test_orbax_and_hf_directories_load_to_the_same_model(tiny_qwen2vl, tmp_path):
    hf_dir, _, from_hf = tiny_qwen2vl
    assert main(["--src", str(hf_dir), "--dst", str(tmp_path / "out")]) == 0
    from_orbax = tokcomp_jax.load(tmp_path / "out")
    batch = random_batch(from_hf.config, [[("image", 56, 84)]])
    np.testing.assert_array_equal(flax_forward(from_orbax, batch)[0], flax_forward(from_hf, batch)[0])


def test_bfloat16_conversion_stores_bfloat16(tiny_qwen2vl, tmp_path):
    hf_dir, _, _ = tiny_qwen2vl
    assert main(["--src", str(hf_dir), "--dst", str(tmp_path / "bf16"), "--dtype", "bfloat16"]) == 0
    model = tokcomp_jax.load(tmp_path / "bf16")
    dtypes = {leaf.dtype for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))}
    assert dtypes == {np.dtype(jax.numpy.bfloat16)}


def test_pytorch_bin_checkpoint_converts_to_the_same_weights(tiny_qwen2vl, tmp_path):
    hf_dir, torch_model, from_hf = tiny_qwen2vl
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(hf_dir / "config.json", bin_dir / "config.json")
    torch.save(torch_model.state_dict(), bin_dir / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="conversion.convert"):
        tokcomp_jax.load(bin_dir)  # the runtime never reads pickles
    assert main(["--src", str(bin_dir), "--dst", str(tmp_path / "out")]) == 0
    batch = random_batch(from_hf.config, [[("image", 56, 56)]])
    converted = tokcomp_jax.load(tmp_path / "out")
    np.testing.assert_array_equal(flax_forward(converted, batch)[0], flax_forward(from_hf, batch)[0])


def test_missing_directory_fails_cleanly(tmp_path, capsys):
    assert main(["--src", str(tmp_path / "nowhere"), "--dst", str(tmp_path / "out")]) == 2
    assert f"--src {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err


def test_import_loads_no_torch():
    modules = "tokcomp_jax, tokcomp_jax.models.families, tokcomp_jax.eval.codecs, tokcomp_jax.models.checkpoint, "
    modules += "tokcomp_jax.mapper.train, "
    modules += "tokcomp_jax.prune, tokcomp_jax.generate, tokcomp_jax.explain.label_writer, tokcomp_jax.visualize"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_runtime_works_with_torch_unimportable(tiny_qwen2vl):
    """Preprocess, load a HF directory and run the model with `import torch` made to fail."""
    hf_dir, _, model = tiny_qwen2vl
    code = f"""
import sys; sys.modules["torch"] = None
import numpy as np, tokcomp_jax
from tokcomp_jax.models import prepare_inputs
from tokcomp_jax.models.qwen2_vl.processor import image_processor, process_images
model = tokcomp_jax.load({str(hf_dir)!r})
pixels, grid = process_images(image_processor(model.config), [np.zeros((56, 56, 3), np.uint8)])
ids = np.array([[1, {model.config.vision_start_token_id}] + [{model.config.image_token_id}] * 4 + [2]])
print(model(prepare_inputs(model.config, ids, pixel_values=pixels, image_grid_thw=grid)).logits.shape)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("(1, 7, 256)")


@pytest.mark.parametrize("preset", [Qwen2VLConfig.qwen2_vl_2b, Qwen2VLConfig.qwen2_vl_7b, Qwen2VLConfig.tiny])
def test_hf_config_of_inverts_from_hf_config(preset):
    """scripts/bench.py builds transformers' model from our config; reading it back gives the same config."""
    config = preset()
    assert Qwen2VLConfig.from_hf_config(hf_config_of(config).to_dict()) == config


def test_conversion_is_atomic_and_refuses_to_overwrite_unless_asked(gqa4_tied_dir, tmp_path, monkeypatch, capsys):
    """A conversion that fails while writing into an existing --dst leaves the old model loading as
    before; a second conversion into it needs --overwrite, and then replaces it whole."""
    from conversion import convert as convert_module

    other = tmp_path / "other"
    save_tiny_model(other, seed=9, hidden=64, heads=8, kv_heads=2, mrope=(1, 1, 2), tie=True, depth=1)
    dst = tmp_path / "model"
    assert main(["--src", str(gqa4_tied_dir), "--dst", str(dst)]) == 0
    before = nnx.to_pure_dict(nnx.state(tokcomp_jax.load(dst)))
    assert main(["--src", str(other), "--dst", str(dst)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err

    def killed_while_saving(directory, family, config, dtype, params):
        (directory / "tokcomp_model.json").write_text("{}")  # half written, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(convert_module.checkpoint, "save", killed_while_saving)
    with pytest.raises(KeyboardInterrupt):
        main(["--src", str(other), "--dst", str(dst), "--overwrite"])
    monkeypatch.undo()
    after_kill = nnx.to_pure_dict(nnx.state(tokcomp_jax.load(dst)))
    jax.tree.map(np.testing.assert_array_equal, after_kill, before)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    assert main(["--src", str(other), "--dst", str(dst), "--overwrite"]) == 0
    replaced = nnx.to_pure_dict(nnx.state(tokcomp_jax.load(dst)))
    embedding = lambda params: params["language_model"]["embed_tokens"]["embedding"]  # noqa: E731
    assert not np.array_equal(embedding(replaced), embedding(before))  # the other checkpoint's weights


def test_every_processor_file_a_run_reads_is_copied(tiny_qwen2vl, tmp_path):
    """The tokenizer, chat template, image, video and processor configs travel with the weights."""
    hf_dir, _, _ = tiny_qwen2vl
    src = tmp_path / "hf"
    shutil.copytree(hf_dir, src)
    for name in ("video_preprocessor_config.json", "processor_config.json", "preprocessor_config.json"):
        (src / name).write_text(json.dumps({"from": name}))
    assert {"video_preprocessor_config.json", "processor_config.json", "preprocessor_config.json"} <= set(
        PROCESSOR_FILES
    )
    assert main(["--src", str(src), "--dst", str(tmp_path / "out")]) == 0
    for name in ("video_preprocessor_config.json", "processor_config.json", "preprocessor_config.json"):
        assert json.loads((tmp_path / "out" / name).read_text()) == {"from": name}


def test_bfloat16_verify_beyond_its_tolerance_is_judged_by_rounding(tiny_qwen2vl, tmp_path, monkeypatch, capsys):
    """Deep bfloat16 models drift apart by rounding (VILA1.5-3B: 0.23 on logits, each side ~0.18 from float32);
    here the tolerance is forced to 0 so that a tiny model takes that path. A correct conversion then passes by
    rounding no worse than transformers' own bfloat16; a source whose final norm is doubled after the conversion
    (a port error's size) fails."""
    from safetensors.numpy import load_file, save_file

    from conversion.convert import ROUNDING_RATIO, TOLERANCE, verify

    hf_dir, dst = tiny_qwen2vl[0], tmp_path / "bf16"
    monkeypatch.setitem(TOLERANCE, "bfloat16", (0.0, 0.0))
    assert main(["--src", str(hf_dir), "--dst", str(dst), "--dtype", "bfloat16", "--verify"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["logits_max_abs_diff"] > 0 and report["rounding"]["passed"]
    ours, theirs = report["rounding"]["ours_vs_float32"], report["rounding"]["transformers_bfloat16_vs_float32"]
    assert all(0 < theirs[i] and ours[i] <= ROUNDING_RATIO * theirs[i] for i in range(2)), report

    wrong = tmp_path / "wrong"
    shutil.copytree(hf_dir, wrong)
    weights = load_file(wrong / "model.safetensors")
    (final_norm,) = [name for name in weights if name.endswith("norm.weight") and ".layers." not in name
                     and "visual" not in name]  # fmt: skip
    weights[final_norm] = weights[final_norm] * 2
    save_file(weights, wrong / "model.safetensors", metadata={"format": "pt"})
    report = verify(wrong, dst, "bfloat16")
    assert not report["passed"] and not report["rounding"]["passed"], report
