"""End-to-end demo on an embedded default, no downloads: `make demo`.

Builds the tiny Qwen2-VL preset (random weights), saves it as an orbax model directory and loads
it back, runs a jit-compiled forward on a generated scene and a prompt, and reports the first
decoder layer's text -> visual attention (what the pruning mapper reads) as numbers and a PNG.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

import tokcomp_jax
from tokcomp_jax.data.scenes import scene
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig, prepare_inputs
from tokcomp_jax.models.checkpoint import save
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.preprocess import image_processor, process_images
from tokcomp_jax.visualize import heatmap_overlay, save_panels


def text_to_visual_attention(first_layer_attention: np.ndarray, visual: np.ndarray) -> np.ndarray:
    """Mean over heads and text queries after the image of layer-1 attention to each visual token: [N]."""
    last_visual = np.flatnonzero(visual).max()
    queries = np.arange(last_visual + 1, visual.size)
    return first_layer_attention[0].mean(0)[queries][:, visual].mean(0)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    config = Qwen2VLConfig.tiny()
    model = Qwen2VL(config, rngs=nnx.Rngs(0))
    save(args.out / "model", FAMILIES["qwen2_vl"], config, "float32", nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    model = tokcomp_jax.load(args.out / "model")

    image = scene()
    pixels, grid = process_images(image_processor(config), [image])
    num_visual = int(grid.prod()) // config.vision.spatial_merge_size**2
    prompt = np.random.default_rng(1).integers(0, config.image_token_id, 12)
    ids = [1, 2, config.vision_start_token_id] + [config.image_token_id] * num_visual
    ids = np.array([ids + [config.vision_end_token_id, *prompt]])
    inputs = prepare_inputs(config, ids, pixel_values=pixels, image_grid_thw=grid)

    forward = nnx.jit(lambda m, x: m(x, return_first_layer_attention=True))
    start = time.perf_counter()
    jax.block_until_ready(forward(model, inputs))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(forward(model, inputs))
    run_s = time.perf_counter() - start

    visual = np.asarray(inputs.visual_token_mask[0])
    scores = text_to_visual_attention(np.asarray(out.first_layer_attention), visual)
    grid_hw = (int(grid[0, 1]) // 2, int(grid[0, 2]) // 2)
    save_panels([image, heatmap_overlay(image, scores, grid_hw)], args.out / "first_layer_attention.png")
    report = {
        "sequence_length": int(ids.shape[1]),
        "visual_tokens": num_visual,
        "visual_grid": list(grid_hw),
        "top5_visual_tokens": np.argsort(-scores)[:5].tolist(),
        "attention_mass_on_visual": float(scores.sum()),
        "compile_plus_first_run_s": round(compile_s, 3),
        "jitted_forward_s": round(run_s, 4),
        "outputs": [str(args.out / "model"), str(args.out / "first_layer_attention.png")],
    }
    (args.out / "demo.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
