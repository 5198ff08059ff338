"""Answer a prompt about an image, pruned at a keep ratio:

    python scripts/generate.py --model DIR --image photo.jpg --prompt "What is on the table?" \\
        --keep 0.5 --scorer mapper --mapper outputs/mapper/mapper --picture kept.png

Prints the answer, kept / total visual tokens and the jitted prefill time pruned vs unpruned
(median of 3 after a warm-up call), and can save the picture of the kept tokens. The tokenizer
(with its chat template) is read from --tokenizer, by default the model directory; nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from PIL import Image
from transformers import AutoTokenizer

import tokcomp_jax
from tokcomp_jax.benchmark import time_calls
from tokcomp_jax.generate import generate
from tokcomp_jax.mapper import load_mapper
from tokcomp_jax.models.qwen2_vl.processor import build_inputs, end_of_turn_id, image_processor
from tokcomp_jax.prune import SCORERS, Buckets, PruneConfig, prepare_pruning, pruned_forward
from tokcomp_jax.visualize import kept_overlay, save_panels


@nnx.jit
def unpruned_forward(model, inputs):
    return model(inputs).logits


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def median_seconds(function, repeats: int = 3) -> float:
    """Median of `repeats` calls after a first (compiling) one."""
    _, runs, _ = time_calls(lambda: jax.block_until_ready(function()), repeats)
    return statistics.median(runs)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="orbax model directory (conversion) or HF directory")
    parser.add_argument("--tokenizer", help="directory with the tokenizer files (default: --model)")
    parser.add_argument("--image", required=True, type=Path)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--scorer", default="mapper", choices=SCORERS)
    parser.add_argument("--mapper", help="trained mapper directory (scorer mapper)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--picture", type=Path, help="save the image beside its kept tokens here")
    args = parser.parse_args(argv)

    model = tokcomp_jax.load(args.model)
    config = model.config
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model, local_files_only=True)
    image = np.asarray(Image.open(args.image).convert("RGB"))
    batch = build_inputs(config, tokenizer, image_processor(config), args.prompt, images=[image])
    if args.scorer == "mapper" and not args.mapper:
        raise SystemExit("--scorer mapper needs --mapper DIR (or choose a baseline scorer)")
    mapper = load_mapper(args.mapper) if args.scorer == "mapper" else None
    num_visual = int((batch["input_ids"] == config.image_token_id).sum())
    num_text = batch["input_ids"].shape[1] - num_visual
    buckets = Buckets(text=round_up(num_text, 16), visual=round_up(num_visual, 64), queries=round_up(num_text, 16))
    inputs, scoring = prepare_pruning(config, batch, buckets, mapper=mapper)
    prune = PruneConfig(scorer=args.scorer, keep_ratio=args.keep, mode="gather")
    eos = end_of_turn_id(tokenizer)

    out = generate(
        model, inputs, max_new_tokens=args.max_new_tokens, eos_token_id=eos, mapper=mapper, scoring=scoring, prune=prune
    )
    tokens = np.asarray(out.tokens[0, : int(out.lengths[0])])
    selection = pruned_forward(model, mapper, inputs, scoring, prune).selection
    kept_slots = np.asarray(selection.kept_slots[0])[np.asarray(selection.kept_valid[0])]
    pruned_s = median_seconds(lambda: pruned_forward(model, mapper, inputs, scoring, prune).logits)
    unpruned_s = median_seconds(lambda: unpruned_forward(model, inputs))
    report = {
        "answer": tokenizer.decode(tokens[tokens != eos], skip_special_tokens=True),
        "visual_tokens_kept": int(kept_slots.size),
        "visual_tokens_total": num_visual,
        "prefill_s_pruned": round(pruned_s, 4),
        "prefill_s_unpruned": round(unpruned_s, 4),
    }
    if args.picture:
        merge = config.vision.spatial_merge_size
        _, rows, cols = (int(n) for n in batch["image_grid_thw"][0] // [1, merge, merge])
        kept = np.zeros(num_visual, bool)
        kept[kept_slots] = True
        token_pixels = config.vision.patch_size * merge
        resized = np.asarray(Image.fromarray(image).resize((cols * token_pixels, rows * token_pixels)))
        save_panels([resized, kept_overlay(resized, kept, (rows, cols))], args.picture)
        report["picture"] = str(args.picture)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
