"""scripts/generate.py answers a prompt about an image with a local tokenizer, pruned, and saves the picture."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from tests.scripts_module import load_script


def test_generate_script(tiny_qwen2vl, tokenizer, tmp_path):
    hf_dir, _, _ = tiny_qwen2vl
    model_dir = tmp_path / "model"
    shutil.copytree(hf_dir, model_dir)
    tokenizer.save_pretrained(model_dir)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (84, 112, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    module = load_script("generate")
    report = module.main([
        "--model", str(model_dir), "--image", str(tmp_path / "x.png"), "--prompt", "what colour is the square ?",
        "--scorer", "attention", "--keep", "0.25", "--max-new-tokens", "3", "--picture", str(tmp_path / "kept.png"),
    ])  # fmt: skip
    assert report["visual_tokens_total"] == 12  # 84x112 pixels -> 6x8 patches -> 3x4 tokens
    assert report["visual_tokens_kept"] == 3
    assert isinstance(report["answer"], str)
    assert report["prefill_s_pruned"] > 0 and report["prefill_s_unpruned"] > 0
    with Image.open(tmp_path / "kept.png") as picture:  # the question, answer, count and legend around the image
        assert picture.size[0] >= 400 and picture.size[1] >= 300
    scanned = module.main([
        "--model", str(model_dir), "--image", str(tmp_path / "x.png"), "--prompt", "what colour is the square ?",
        "--scorer", "attention", "--keep", "0.25", "--max-new-tokens", "3", "--scan-layers", "--attention", "reference",
    ])  # fmt: skip
    assert scanned["answer"] == report["answer"]  # layout and attention kernel change the graph, not the reply
    budget = module.main([
        "--model", str(model_dir), "--image", str(tmp_path / "x.png"), "--prompt", "what colour is the square ?",
        "--scorer", "attention", "--keep", "0.5", "--budget", "mass:0.01", "--max-new-tokens", "3",
    ])  # fmt: skip
    assert budget["visual_tokens_kept"] == 1 and budget["pruning"] == "attention at keep 0.5, budget mass:0.01"
    with pytest.raises(SystemExit, match="needs a score mass; the 'random' scorer has none"):
        module.main(["--model", str(model_dir), "--prompt", "hi", "--scorer", "random", "--keep", "0.5",
                     "--budget", "mass:0.9"])  # fmt: skip
    long_prompt = " ".join(["what colour is the square ?"] * 400)  # 2000 words, a token each
    with pytest.raises(SystemExit, match=r"the prompt is \d+ text tokens, more than --max_prompt_tokens 1024"):
        module.main(["--model", str(model_dir), "--prompt", long_prompt, "--scorer", "attention",
                     "--max-prompt-tokens", "1024"])  # fmt: skip
    prompt_positions = " ".join(["what colour is the square ?"] * 80)  # ~400 tokens; the tiny model has 512 positions
    with pytest.raises(SystemExit, match=r"\['the prompt'\] reach position \d+; with 200 new tokens that passes "
                                         r"the model's max_position_embeddings 512"):  # fmt: skip
        module.main(["--model", str(model_dir), "--prompt", prompt_positions, "--scorer", "attention",
                     "--max-new-tokens", "200"])  # fmt: skip
