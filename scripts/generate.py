"""Answer a prompt about images or a video with any family's model, unpruned or pruned at a keep ratio:

    python scripts/generate.py --model DIR --image photo.jpg --prompt "What is on the table?"
    python scripts/generate.py --model DIR --image photo.jpg --prompt "What is on the table?" \\
        --keep 0.5 --scorer mapper --mapper outputs/mapper/mapper --picture kept.png
    python scripts/generate.py --model DIR --image a.jpg --image b.jpg --prompt "What differs?" --keep 0.25 \\
        --scorer attention
    python scripts/generate.py --model DIR --video clip.mp4 --frames 8 --prompt "What happens?"

Flags use underscores (the hyphen spelling works too); a mistake is one `error:` line (--debug: the traceback).

--keep 1.0 (the default) answers unpruned: no scorer or mapper is needed or read. Below 1.0 the
--scorer keeps that fraction of the visual tokens: `mapper` (the trained mapper of --mapper, made for
this model's family) or one that needs no training (attention, hawk, visionzip, vision_attention,
divprune, cdpruner, dart_input, stride, random; fastv, pdrop and dart prune inside the LLM and need a
decoder deep enough for their layers).

Prints the answer, kept / total visual tokens and the jitted prefill time (pruned vs unpruned,
median of 3 after a warm-up call), and can save a picture (--picture): the question, the answer, the
kept count and each image and video step with its pruned tokens greyed out (Qwen families and
VILA1.5, whose tokens tile the media; LLaVA-OneVision's media shown unmarked). The tokenizer (with its chat template) is read
from --tokenizer, by default the model directory (VILA1.5: its llm/); the image processor from
--processor's preprocessor_config.json (default: the model directory, then the family's
defaults). Nothing is downloaded. The flags are checked first, then the media, then the model's
and the mapper's configs (family, depth), and only then are weights read.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import warnings
from pathlib import Path

import jax
import numpy as np
from flax import nnx

import tokcomp_jax
from tokcomp_jax import cli
from tokcomp_jax.benchmark import time_calls
from tokcomp_jax.eval.samples import VideoClip, load_image, load_video_and_rate
from tokcomp_jax.explain.head_importance import read_head_weights
from tokcomp_jax.files import CheckpointError
from tokcomp_jax.generate import check_positions, generate
from tokcomp_jax.mapper import check_mapper_family, load_mapper, read_mapper_config
from tokcomp_jax.models.checkpoint import DTYPES, read_model_config
from tokcomp_jax.models.common.attention import IMPLEMENTATIONS, configure_attention
from tokcomp_jax.models.common.config import PositionWarning
from tokcomp_jax.prune import PruneConfig, prepare_pruning, pruned_forward
from tokcomp_jax.prune.methods import check_mapper_prior, reads_mapper, usable_without_labels
from tokcomp_jax.visualize import media_panels, save_kept_figure


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
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--model", required=True, help="converted model directory (conversion.convert) or HF directory")
    parser.add_argument("--tokenizer", help="directory with the tokenizer files (default: --model; VILA1.5: its llm/)")
    parser.add_argument("--processor", help="directory with preprocessor_config.json (default: --model)")
    parser.add_argument("--image", type=Path, action="append", default=[], help="an image (repeat for several)")
    parser.add_argument("--video", type=Path, help="a video file or a directory of frames")
    parser.add_argument("--frames", type=int, default=8, help="video frames sampled uniformly")
    parser.add_argument("--prompt", required=True, help="the question or instruction")
    parser.add_argument(
        "--keep", type=cli.ratio, help="fraction of visual tokens to keep, in (0, 1] (default: 1.0, unpruned)"
    )
    parser.add_argument(
        "--scorer", choices=usable_without_labels(), help="what ranks the tokens when --keep < 1 (default: mapper)"
    )
    parser.add_argument("--layer", type=int, default=2, help="FastV and DART prune before this decoder layer")
    parser.add_argument(
        "--budget",
        default="fixed",
        help="keep count: fixed (ceil(keep * n)) or mass:TAU[:MIN] (the fewest top tokens holding TAU of the "
        "scorer's mass, at most keep * n, at least MIN * n)",
    )
    parser.add_argument("--mapper", help="trained mapper directory (WORKDIR/mapper of train_mapper.py; scorer mapper)")
    parser.add_argument("--max_new_tokens", type=int, default=32, help="answer length limit in tokens")
    parser.add_argument("--max_prompt_tokens", type=int, default=4096, help="longer prompts are refused")
    parser.add_argument(
        "--scan_layers", action="store_true", help="run the decoder layers by lax.scan (faster compile, slower steps)"
    )
    parser.add_argument(
        "--attention",
        default="auto",
        choices=IMPLEMENTATIONS,
        help="where no probabilities are read (auto: tiled on "
        "CPU, fused on accelerators: cuDNN's flash attention where it applies)",
    )
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        help="compute in this dtype (default: a converted model's own, float32 for a HF directory). On a CPU, "
        "float32 takes less memory than bfloat16: XLA's CPU backend holds a float32 copy of every bfloat16 weight",
    )
    parser.add_argument(
        "--head_weights", type=Path, help="--scorer hawk: layer-0 head weights (scripts/label.py --head_importance)"
    )
    parser.add_argument("--picture", type=Path, help="save a PNG of the media with their kept tokens here")
    args = parser.parse_args(argv)
    if args.keep is None and (args.scorer or args.mapper):  # unpruned, and said so
        given = " and ".join(flag for flag, value in (("--scorer", args.scorer), ("--mapper", args.mapper)) if value)
        print(f"note: without --keep every visual token is kept (unpruned); {given} prune at --keep below 1 "
              "(e.g. --keep 0.5)", file=sys.stderr)  # fmt: skip
    args.keep, args.scorer = 1.0 if args.keep is None else args.keep, args.scorer or "mapper"
    if problem := cli.keep_ratio_problem(args.keep):
        raise SystemExit(f"--keep {args.keep}: {problem}")
    pruned = args.keep < 1.0  # 1.0 keeps every token: the unpruned model, no scorer
    if pruned and reads_mapper(args.scorer) and not args.mapper:
        raise SystemExit(
            f"--keep {args.keep} with --scorer {args.scorer} needs --mapper DIR (train_mapper.py's WORKDIR/mapper), or choose "
            "a scorer that needs no training (e.g. --scorer attention)"
        )
    if args.head_weights and args.scorer != "hawk":
        raise SystemExit(f"--head_weights are HAWK's; use them with --scorer hawk (not {args.scorer})")
    if args.budget != "fixed" and not pruned:
        raise SystemExit(f"--budget {args.budget} chooses counts below --keep's ceiling; give --keep below 1")
    try:
        prune = PruneConfig(args.scorer, args.keep, "gather", args.layer, budget=args.budget) if pruned else None
    except ValueError as err:
        raise SystemExit(f"--budget: {err}") from None
    if args.picture is not None:  # the flags first, then the media, then the model
        if not args.image and not args.video:
            raise SystemExit("--picture shows the kept tokens of the --image(s) and --video; give one")
        folder = args.picture.absolute().parent
        if args.picture.is_dir() or not folder.is_dir():
            problem = "is a directory" if args.picture.is_dir() else f"its folder {folder} does not exist"
            raise SystemExit(f"--picture {args.picture}: {problem}; choose a file in an existing folder")
    for flag, path in [("--image", path) for path in args.image] + [("--video", args.video)] * bool(args.video):
        if not path.exists():
            raise SystemExit(f"{flag} {path} does not exist; check the path")
    try:
        images = [load_image(path) for path in args.image]
        video, video_fps = (
            load_video_and_rate(VideoClip(args.video, num_frames=args.frames)) if args.video else (None, None)
        )
    except ValueError as err:
        raise SystemExit(str(err)) from None
    try:  # the model's and the mapper's configs, before any weight: family and depth
        family, config, _ = read_model_config(args.model)
        mapper_config = read_mapper_config(args.mapper) if prune is not None and reads_mapper(args.scorer) else None
        if mapper_config is not None:
            check_mapper_family(mapper_config, family.name, args.mapper, args.model)
            check_mapper_prior(args.scorer, mapper_config)
        if prune is not None:
            prune.check_depth(config.text.num_hidden_layers)
        if prune is not None and args.head_weights:
            weights = read_head_weights(args.head_weights, family.name, config.text.num_attention_heads)
            prune = dataclasses.replace(prune, head_weights=weights)
    except (ValueError, FileNotFoundError) as err:  # CheckpointError names the file, field or parameter at fault
        raise SystemExit(str(err)) from None
    try:
        tokenizer = family.load_tokenizer(args.processor or args.model, args.tokenizer)
    except CheckpointError as err:  # a directory without tokenizer files, named
        raise SystemExit(f"--tokenizer: {err}" if args.tokenizer else str(err)) from None
    chat = family.chat(config, tokenizer, family.read_side_files(args.processor or args.model))
    batch = chat.encode(args.prompt, images=images, video=video, video_fps=video_fps)
    num_text, num_visual = family.token_counts(config, batch)
    if num_text > args.max_prompt_tokens:  # before any device memory: attention grows with its square
        raise SystemExit(
            f"the prompt is {num_text} text tokens, more than --max_prompt_tokens {args.max_prompt_tokens}"
        )
    try:
        model = tokcomp_jax.load(args.model, dtype=args.dtype)
        mapper = load_mapper(args.mapper) if mapper_config is not None else None
    except CheckpointError as err:  # names the file, field or parameter at fault
        raise SystemExit(str(err)) from None
    model.language_model.layers.configure(scan=args.scan_layers)
    configure_attention(model, args.attention)
    buckets = family.buckets(config, batch, round_up(num_text, 16), round_up(max(num_visual, 1), 64), 1)
    buckets = dataclasses.replace(buckets, queries=round_up(num_text, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PositionWarning)  # refused just below, new tokens counted
        inputs, scoring = prepare_pruning(config, batch, buckets, mapper=mapper)
    try:
        check_positions(config, inputs.position_ids, inputs.attention_mask, args.max_new_tokens, names=["the prompt"])
    except ValueError as err:
        raise SystemExit(str(err)) from None

    out = generate(
        model, inputs, max_new_tokens=args.max_new_tokens, eos_token_id=chat.eos_token_id, mapper=mapper,
        scoring=scoring, prune=prune,
    )  # fmt: skip
    tokens = np.asarray(out.tokens[0, : int(out.lengths[0])])
    unpruned_s = median_seconds(lambda: unpruned_forward(model, inputs))
    if prune is None:
        kept_slots = np.arange(num_visual)
        timing = {"prefill_s_unpruned": round(unpruned_s, 4)}
    else:
        selection = pruned_forward(model, mapper, inputs, scoring, prune).selection
        kept_slots = np.asarray(selection.kept_slots[0])[np.asarray(selection.kept_valid[0])]
        pruned_s = median_seconds(lambda: pruned_forward(model, mapper, inputs, scoring, prune).logits)
        timing = {"prefill_s_pruned": round(pruned_s, 4), "prefill_s_unpruned": round(unpruned_s, 4)}
    report = {
        "answer": chat.decode(tokens),
        "pruning": "none (--keep 1.0)"
        if prune is None
        else f"{prune.scorer} at keep {prune.keep_ratio}"
        + ("" if prune.budget == "fixed" else f", budget {prune.budget}"),
        "visual_tokens_kept": int(kept_slots.size),
        "visual_tokens_total": num_visual,
        **timing,
    }
    if args.picture:
        panels, note = media_panels(family, config, batch, images, video, kept_slots, num_visual)
        try:
            save_kept_figure(panels, args.prompt, report["answer"], kept_slots.size, num_visual, args.picture, note)
        except OSError as err:  # the answer is printed all the same
            print(json.dumps(report, indent=2))
            raise SystemExit(f"--picture {args.picture} cannot be written ({err})") from None
        report["picture"] = str(args.picture)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    cli.run_main(main)
