"""HF/PyTorch checkpoint directory -> orbax model directory, optionally verified against transformers.

    python -m conversion.convert --src HF_DIR --dst OUT_DIR [--dtype float32|bfloat16] [--verify]

Flags use underscores; a mistake is one `error:` line and exit status 2 (--debug: the traceback).

The family (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision, VILA1.5) is read from config.json's
model_type; `--family` (a family or a model_type, e.g. llava_llama) makes a mismatch an error. The
weights are written in the checkpoint's own dtype (config.json's torch_dtype: bfloat16 or float32;
float32 for any other or none) unless --dtype says otherwise, and the dtype written is printed.
A VILA1.5 directory's llm/, vision_tower/ and mm_projector/ are read directly; --verify compares
with transformers' model, or for VILA1.5 with a reference assembled from transformers' Llama and
SigLIP and the projector (conversion/verify_vila.py).

Tensors stream one at a time (safetensors are memory-mapped; `*.bin` is read with
`torch.load(weights_only=True, mmap=True)`), are renamed by the family's name map, checked
against the shapes the config implies and cast, so the model is held once, in the target dtype.
`--verify` prints one JSON line of max abs diffs and exits 1 above tolerance; a bfloat16 model above it
is measured again against transformers in float32 (its model alone in memory) and passes when it
rounds no worse than 1.5x transformers' own bfloat16 (deep bfloat16 models drift apart by rounding). The tokenizer, chat
template and the processor files (PROCESSOR_FILES) are copied beside the weights (VILA1.5: into llm/ and
vision_tower/), so the converted directory is a complete model for scripts/generate.py and evaluate.py.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import jax
import ml_dtypes
import numpy as np
import torch

from conversion.references import REFERENCES
from tokcomp_jax import cli
from tokcomp_jax.files import CheckpointError, check_apart, directory_written_atomically, read_json_object
from tokcomp_jax.models import checkpoint
from tokcomp_jax.models.families import family_named, family_names
from tokcomp_jax.models.loading import abstract_state, map_weights, nest
from tokcomp_jax.models.safetensors_io import safetensors_files

# Allowed max abs diff of (logits, layer-1 attention) for --verify. float32: only the summation
# order differs (~1e-6 seen on tiny models). bfloat16: both sides round every op to 8 mantissa
# bits, in different places; the logits bound is relative to max |logits| (0.7% seen).
TOLERANCE = {"float32": (1e-4, 1e-4), "bfloat16": (2e-2, 1e-2)}
# A bfloat16 model beyond TOLERANCE still passes when its distance from the float32 reference is at most this
# times the reference's own in bfloat16 (tests/conversion/test_bf16_parity.py: measured 0.7-1.05x on tiny models,
# 1.14x on VILA1.5-3B's logits; a norm or softmax done in bfloat16 instead of float32 is several times worse).
ROUNDING_RATIO = 1.5


def iter_torch_bin(directory: Path) -> Iterator[tuple[str, str, np.ndarray]]:
    """(file, name, array) from PyTorch `*.bin` files, never unpickling arbitrary objects."""
    for path in sorted(directory.glob("*.bin")):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # torch raises several types for corrupt or unsafe files
            raise CheckpointError(f"{path}: cannot read as a weights-only PyTorch file ({err})") from None
        for name, tensor in state.items():
            if tensor.dtype == torch.bfloat16:
                yield path.name, name, tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
            else:
                yield path.name, name, tensor.numpy()


PROCESSOR_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
    "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json", "preprocessor_config.json",
    "video_preprocessor_config.json", "processor_config.json", "generation_config.json",
)  # fmt: skip


def copy_processor_files(src: Path, dst: Path, family) -> list[str]:
    """The tokenizer, chat template and preprocessor files beside the weights, in the family's
    subdirectories, so the converted directory is all scripts/generate.py and evaluate.py need."""
    copied = []
    for subdir in family.processor_subdirs:
        for name in PROCESSOR_FILES:
            if (source := src / subdir / name).is_file():
                (dst / subdir).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dst / subdir / name)
                copied.append(str(Path(subdir) / name))
    return copied


def as_jax_arrays(tree: dict) -> dict:
    """Every numpy leaf of a nested dict replaced by a jax array, one at a time, each numpy array freed as it
    goes: orbax's save copies numpy leaves before writing (two copies of the model in memory), jax arrays it
    writes as they are."""
    for key, value in tree.items():
        tree[key] = as_jax_arrays(value) if isinstance(value, dict) else jax.numpy.asarray(value)
    return tree


def convert(
    src: Path, dst: Path, dtype: str | None = None, family_name: str | None = None, overwrite: bool = False
) -> tuple[str, str]:
    """Convert `src` into the orbax model directory `dst`, written beside it and renamed into place
    (tokcomp_jax.files): a killed conversion leaves an existing `dst` as it was. A `dst` that is `src`,
    lies inside it or holds it is refused before anything is read or written, and so is replacing
    (`overwrite`) a non-empty `dst` that is not a model directory this project wrote. Returns (the
    dtype written, why): `dtype`, by default the checkpoint's own (checkpoint_dtype)."""
    check_apart(src, dst, "--src", "--dst")
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"--dst {dst} is a file; choose a directory to write the model into")
    if overwrite and dst.is_dir() and any(dst.iterdir()) and not (dst / checkpoint.MODEL_FILE).is_file():
        raise ValueError(f"--dst {dst} holds files but no converted model ({checkpoint.MODEL_FILE}); --overwrite "
                         "replaces only a model directory: choose another --dst")  # fmt: skip
    check_source(src)
    dtype, why = (dtype, "--dtype") if dtype is not None else checkpoint_dtype(src)
    family, config = checkpoint.read_hf_config(src)
    if family_name is not None and family_named(family_name) is not family:
        raise CheckpointError(f"{src}/config.json is a {family.name} checkpoint, not {family_name}")
    if family.checkpoint_parts or safetensors_files(src):
        tensors = checkpoint.hf_tensors(src, family)
    else:
        tensors = iter_torch_bin(src)
    _, abstract = abstract_state(family.builder(config, checkpoint.jax_dtype(dtype)))
    with directory_written_atomically(dst, overwrite) as partial:
        params = as_jax_arrays(nest(map_weights(abstract, tensors, family.name_map(config))))
        checkpoint.save(partial, family, config, dtype, params)
        copy_processor_files(src, partial, family)
    return dtype, why


def check_source(src: Path) -> None:
    """Tell a missing --src, a converted model, a file and a folder without config.json apart."""
    if not src.exists():
        raise CheckpointError(f"--src {src} does not exist")
    if (src / checkpoint.MODEL_FILE).is_file():
        raise CheckpointError(
            f"--src {src} is a converted tokcomp model ({checkpoint.MODEL_FILE}); convert takes a Hugging Face "
            f"directory (config.json + weights), and the scripts read {src} as it is (--model)"
        )
    if not src.is_dir():
        raise CheckpointError(f"--src {src} is a file; give the Hugging Face checkpoint's directory")
    if not (src / "config.json").is_file():
        raise CheckpointError(f"--src {src} holds no config.json: not a model directory")


def checkpoint_dtype(src: Path) -> tuple[str, str]:
    """(the dtype to write by default, why): the checkpoint's own (config.json's torch_dtype or dtype,
    else its text model's) where it is one of TOLERANCE's, else float32, which holds any exactly."""
    hf_config = read_json_object(src / "config.json")
    for part in (hf_config, hf_config.get("text_config"), hf_config.get("llm_cfg")):
        stored = part.get("torch_dtype") or part.get("dtype") if isinstance(part, dict) else None
        if isinstance(stored, str):
            if stored in TOLERANCE:
                return stored, "the checkpoint's own (config.json), as --dtype was not given"
            return "float32", f"the checkpoint's {stored} is not one of {sorted(TOLERANCE)}; float32 holds it exactly"
    return "float32", "config.json records no dtype"


def verify(src: Path, dst: Path, dtype: str) -> dict[str, float]:
    """Diffs of the converted model against transformers on generated media and text. transformers' side
    runs first and its model is freed before ours loads: one model in memory at a time. A bfloat16 model
    beyond TOLERANCE is judged again by its rounding (bfloat16_rounding)."""
    from tokcomp_jax import load

    jax.config.update("jax_default_matmul_precision", "highest")
    family, _ = checkpoint.read_hf_config(src)
    reference = REFERENCES[family.name]
    batch, *theirs = reference.run(src, dtype)
    ours = reference.forward(load(dst, dtype=dtype), batch)  # its outputs kept, the model freed
    diffs = reference.between(batch, *ours, *theirs)
    logits_tolerance, attention_tolerance = TOLERANCE[dtype]
    if dtype == "bfloat16":
        logits_tolerance *= max(1.0, diffs["logits_max_abs"])
    diffs["logits_tolerance"], diffs["attn1_tolerance"] = logits_tolerance, attention_tolerance
    diffs["passed"] = (
        diffs["logits_max_abs_diff"] <= logits_tolerance and diffs["attn1_max_abs_diff"] <= attention_tolerance
    )
    if dtype == "bfloat16" and not diffs["passed"]:
        diffs["rounding"] = bfloat16_rounding(src, reference, batch, ours, theirs)
        diffs["passed"] = diffs["rounding"]["passed"]
    return diffs


def bfloat16_rounding(src: Path, reference, batch, ours, theirs) -> dict:
    """Each bfloat16 side's outputs (logits, attention) against transformers in float32: ours passes when its
    distance is within ROUNDING_RATIO of transformers' own. Two bfloat16 models round in different places, so
    their difference grows with depth (VILA1.5-3B at 32 layers: 0.23 on logits of max 4.8, each side ~0.18
    from float32) while a port error stays far above either side's rounding."""
    _, *float32 = reference.run(src, "float32")  # the only model in memory: ours is freed, its outputs kept
    ours, theirs = reference.between(batch, *ours, *float32), reference.between(batch, *theirs, *float32)
    keys = ("logits_max_abs_diff", "attn1_max_abs_diff")
    return {
        "ours_vs_float32": [ours[key] for key in keys],
        "transformers_bfloat16_vs_float32": [theirs[key] for key in keys],
        "ratio": ROUNDING_RATIO,
        "passed": all(ours[key] <= ROUNDING_RATIO * max(theirs[key], TOLERANCE["float32"][0]) for key in keys),
    }


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--src", type=Path, required=True, help="HF directory: config.json + weights")
    parser.add_argument("--dst", type=Path, required=True, help="orbax model directory to write")
    parser.add_argument(
        "--dtype", choices=sorted(TOLERANCE), help="dtype of the weights written (default: the checkpoint's own)"
    )
    parser.add_argument(
        "--family", choices=family_names(), help="fail unless the checkpoint is this family (or model_type)"
    )
    parser.add_argument("--verify", action="store_true", help="compare with transformers on generated inputs")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --dst")
    args = parser.parse_args(argv)
    try:
        dtype, why = convert(args.src, args.dst, args.dtype, args.family, args.overwrite)
    except (CheckpointError, ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst} in {dtype} ({why})", file=sys.stderr)
    if not args.verify:
        return 0
    diffs = verify(args.src, args.dst, dtype)
    print(json.dumps(diffs))
    return 0 if diffs["passed"] else 1


if __name__ == "__main__":
    cli.run_main(main)
