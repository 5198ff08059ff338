"""Tiny random-init checkpoints of every family in its released layout, with a tokenizer (a word
vocabulary, the family's special tokens and chat template) and preprocessor_config.json, for tests
and for trying the whole journey (README: "From a released checkpoint to a pruned benchmark table"):

    python -m conversion.tiny --family qwen2_vl --dst /tmp/tiny-qwen2-vl
    python -m conversion.tiny --family qwen2_5_vl --dst /tmp/tiny-qwen2.5-vl
    python -m conversion.tiny --family qwen3_vl --dst /tmp/tiny-qwen3-vl
    python -m conversion.tiny --family llava_onevision --dst /tmp/tiny-llava
    python -m conversion.tiny --family vila --dst /tmp/tiny-vila
    python -m conversion.tiny --jsonl-sample --dst /tmp/tiny-data  # 8 images and questions, jsonl + media
    python -m conversion.tiny --dst /tmp/tiny --hidden 96 --heads 6 --kv-heads 1 --mrope 2 2 4 --tie  # Qwen2-VL sizes

Ids 250..253 are the image, video, vision-start and vision-end tokens (vocabulary of 256).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from transformers import LlavaOnevisionConfig as HFLlavaOnevisionConfig
from transformers import (
    LlavaOnevisionForConditionalGeneration,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLForConditionalGeneration,
    Qwen3VLForConditionalGeneration,
)
from transformers import Qwen2_5_VLConfig as HFQwen25VLConfig
from transformers import Qwen2VLConfig as HFQwen2VLConfig
from transformers import Qwen3VLConfig as HFQwen3VLConfig

from tokcomp_jax.models.qwen2_vl.config import Qwen2VLConfig

TEMPLATES = Path(__file__).parent / "chat_templates"
WORDS = (
    "system user assistant You are a helpful assistant. A chat between a curious and an artificial intelligence "
    "what which how many colour color is are the a an of in on to square circle triangle digit box boxed red green "
    "blue yellow left right above below yes no one two three four zero five six seven eight nine ? . , : picture "
    "image video frame describe answer with word question"
).split()
SPECIAL_TOKENS = {  # family -> (token, id) at the tiny configs' ids; the chat template's markers after them
    "qwen2_vl": {"<|image_pad|>": 250, "<|video_pad|>": 251, "<|vision_start|>": 252, "<|vision_end|>": 253},
    "qwen2_5_vl": {"<|image_pad|>": 250, "<|video_pad|>": 251, "<|vision_start|>": 252, "<|vision_end|>": 253},
    "qwen3_vl": {"<|image_pad|>": 250, "<|video_pad|>": 251, "<|vision_start|>": 252, "<|vision_end|>": 253},
    "llava_onevision": {"<image>": 250, "<video>": 251},
    "vila": {},
}
# Qwen2.5-VL was released with Qwen2-VL's chat template; Qwen3-VL's writes the same turns without a system one
TEMPLATE_OF = {"qwen2_5_vl": "qwen2_vl", "qwen3_vl": "qwen2_vl"}
CHAT_MARKERS = {"qwen2_vl": ("<|im_start|>", "<|im_end|>"), "qwen2_5_vl": ("<|im_start|>", "<|im_end|>"),
                "qwen3_vl": ("<|im_start|>", "<|im_end|>"),
                "llava_onevision": ("<|im_start|>", "<|im_end|>"), "vila": ("<s>", "</s>")}  # fmt: skip


def perturb_norms(model):
    """Random init leaves norms at 1 and 0; perturb them so a transposed or dropped norm cannot pass."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or "ln_q" in name:
                param.add_(0.1 * torch.randn_like(param))
    return model.eval()


def tiny_hf_config(
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    layers: int = 2,
    mrope: tuple[int, ...] = (2, 3, 3),
    tie: bool = False,
    **vision,
) -> HFQwen2VLConfig:
    """A few-hundred-kilobyte Qwen2-VL config; `vision` overrides the vision tower's fields."""
    vision_config = dict(depth=2, embed_dim=32, num_heads=4, hidden_size=hidden, patch_size=14)
    vision_config.update(vision)
    return HFQwen2VLConfig(
        text_config=dict(
            vocab_size=256, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
            num_attention_heads=heads, num_key_value_heads=kv_heads, rms_norm_eps=1e-6, max_position_embeddings=512,
            rope_parameters={"rope_type": "default", "mrope_section": list(mrope), "rope_theta": 10000.0},
            bos_token_id=None, eos_token_id=None, tie_word_embeddings=tie,
        ),
        vision_config=vision_config,
        image_token_id=250, video_token_id=251, vision_start_token_id=252, vision_end_token_id=253,
        tie_word_embeddings=tie,
    )  # fmt: skip


def hf_config_of(config: Qwen2VLConfig) -> HFQwen2VLConfig:
    """The transformers config of one of our Qwen2-VL configs (inverse of Qwen2VLConfig.from_hf_config)."""
    text, vision = config.text, config.vision
    return HFQwen2VLConfig(
        text_config=dict(
            vocab_size=text.vocab_size, hidden_size=text.hidden_size, intermediate_size=text.intermediate_size,
            num_hidden_layers=text.num_hidden_layers, num_attention_heads=text.num_attention_heads,
            num_key_value_heads=text.num_key_value_heads, rms_norm_eps=text.rms_norm_eps, hidden_act=text.hidden_act,
            rope_parameters={"rope_type": "default", "mrope_section": list(text.mrope_section),
                             "rope_theta": text.rope_theta},
            bos_token_id=None, eos_token_id=None, tie_word_embeddings=text.tie_word_embeddings,
        ),
        vision_config=dict(
            depth=vision.depth, embed_dim=vision.embed_dim, num_heads=vision.num_heads, mlp_ratio=vision.mlp_ratio,
            hidden_act=vision.hidden_act, in_channels=vision.in_channels, patch_size=vision.patch_size,
            temporal_patch_size=vision.temporal_patch_size, spatial_merge_size=vision.spatial_merge_size,
            hidden_size=vision.out_hidden_size,
        ),
        image_token_id=config.image_token_id, video_token_id=config.video_token_id,
        vision_start_token_id=config.vision_start_token_id, vision_end_token_id=config.vision_end_token_id,
        tie_word_embeddings=text.tie_word_embeddings,
    )  # fmt: skip


def save_tiny_model(directory: str | os.PathLike, seed: int = 0, **config_overrides):
    """Random-init a tiny transformers Qwen2-VL (eager attention), save it as a HF directory, return it."""
    torch.manual_seed(seed)
    config = tiny_hf_config(**config_overrides)
    model = perturb_norms(Qwen2VLForConditionalGeneration._from_config(config, attn_implementation="eager"))
    model.save_pretrained(directory)
    return model


def tiny_qwen2_5_vl_hf_config(hidden: int = 64, layers: int = 2, tie: bool = False, **vision) -> HFQwen25VLConfig:
    """A tiny Qwen2.5-VL: windows of 2x2 merge units (56 pixels), block 0 windowed, block 1 full;
    `vision` overrides the vision tower's fields."""
    vision_config = dict(depth=2, hidden_size=32, intermediate_size=48, num_heads=4, out_hidden_size=hidden,
                         patch_size=14, window_size=56, fullatt_block_indexes=[1], tokens_per_second=2)  # fmt: skip
    vision_config.update(vision)
    return HFQwen25VLConfig(
        text_config=dict(
            vocab_size=256, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
            num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=512,
            rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
            bos_token_id=None, eos_token_id=None, tie_word_embeddings=tie,
        ),
        vision_config=vision_config,
        image_token_id=250, video_token_id=251, vision_start_token_id=252, vision_end_token_id=253,
        tie_word_embeddings=tie,
    )  # fmt: skip


def tiny_qwen2_5_vl_model(seed: int = 0, **config_overrides):
    """A random-init tiny transformers Qwen2.5-VL (eager attention) with perturbed norms."""
    torch.manual_seed(seed)
    config = tiny_qwen2_5_vl_hf_config(**config_overrides)
    return perturb_norms(Qwen2_5_VLForConditionalGeneration._from_config(config, attn_implementation="eager"))


def _save_tiny_qwen2_5_vl(directory: Path, seed: int) -> None:
    tiny_qwen2_5_vl_model(seed).save_pretrained(directory)


def tiny_qwen3_vl_hf_config(hidden: int = 64, layers: int = 2, tie: bool = False, **vision) -> HFQwen3VLConfig:
    """A tiny Qwen3-VL: head_dim 24 (heads x head_dim != hidden), interleaved M-RoPE sections (6, 3, 3)
    (so the last three frequencies are temporal), 16-pixel patches, an 8 x 8 position table, 3 vision
    blocks with DeepStack after blocks 0 and 1; `vision` overrides the vision tower's fields."""
    vision_config = dict(depth=3, hidden_size=32, intermediate_size=48, num_heads=4, out_hidden_size=hidden,
                         patch_size=16, num_position_embeddings=64, deepstack_visual_indexes=[0, 1])  # fmt: skip
    vision_config.update(vision)
    return HFQwen3VLConfig(
        text_config=dict(
            vocab_size=256, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
            num_attention_heads=4, num_key_value_heads=2, head_dim=24, rms_norm_eps=1e-6, max_position_embeddings=512,
            rope_parameters={"rope_type": "default", "mrope_section": [6, 3, 3], "mrope_interleaved": True,
                             "rope_theta": 10000.0},
            bos_token_id=None, eos_token_id=None, tie_word_embeddings=tie,
        ),
        vision_config=vision_config,
        image_token_id=250, video_token_id=251, vision_start_token_id=252, vision_end_token_id=253,
        tie_word_embeddings=tie,
    )  # fmt: skip


def tiny_qwen3_vl_model(seed: int = 0, **config_overrides):
    """A random-init tiny transformers Qwen3-VL (eager attention) with perturbed norms."""
    torch.manual_seed(seed)
    config = tiny_qwen3_vl_hf_config(**config_overrides)
    return perturb_norms(Qwen3VLForConditionalGeneration._from_config(config, attn_implementation="eager"))


def _save_tiny_qwen3_vl(directory: Path, seed: int) -> None:
    tiny_qwen3_vl_model(seed).save_pretrained(directory)


LLAVA_PINPOINTS = ((56, 56), (56, 112), (112, 56), (112, 112), (56, 168), (168, 56), (112, 168), (168, 112))


def tiny_llava_hf_config(
    hidden: int = 64, heads: int = 4, kv_heads: int = 2, layers: int = 2, tie: bool = False,
    aspect_ratio: str = "anyres_max_9", vision_layers: int = 2,
) -> HFLlavaOnevisionConfig:  # fmt: skip
    """A tiny LLaVA-OneVision: 56-pixel SigLIP tiles of 14-pixel patches, a Qwen2 over 256 ids (250 image, 251 video)."""
    return HFLlavaOnevisionConfig(
        text_config=dict(
            model_type="qwen2", vocab_size=256, hidden_size=hidden, intermediate_size=2 * hidden,
            num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, tie_word_embeddings=tie,
        ),
        vision_config=dict(
            model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=vision_layers,
            num_attention_heads=4, image_size=56, patch_size=14,
        ),
        image_token_index=250, video_token_index=251, image_grid_pinpoints=[list(p) for p in LLAVA_PINPOINTS],
        vision_feature_layer=-1, vision_feature_select_strategy="full", vision_aspect_ratio=aspect_ratio,
        tie_word_embeddings=tie,
    )  # fmt: skip


def tiny_llava_model(seed: int = 0, **config_overrides):
    """A random-init tiny transformers LLaVA-OneVision (eager attention) with perturbed norms."""
    torch.manual_seed(seed)
    config = tiny_llava_hf_config(**config_overrides)
    return perturb_norms(LlavaOnevisionForConditionalGeneration._from_config(config, attn_implementation="eager"))


def tiny_tokenizer(family: str):
    """A word-level tokenizer with the family's special tokens at the tiny configs' ids and its chat
    template (VILA1.5: none; its processor writes VILA's vicuna_v1 conversation, `</s>` ends a reply)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    markers, special = CHAT_MARKERS[family], SPECIAL_TOKENS[family]
    vocab = {"[UNK]": 0, **{word: i + 1 for i, word in enumerate([*markers, *WORDS])}, **special}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    tokenizer.add_special_tokens({"additional_special_tokens": [*markers, *special]})
    if (template := TEMPLATES / f"{TEMPLATE_OF.get(family, family)}.jinja").exists():
        tokenizer.chat_template = template.read_text()
    else:  # VILA1.5's LLM tokenizer: BOS / EOS, and the processor writes the conversation
        tokenizer.add_special_tokens({"bos_token": "<s>", "eos_token": "</s>"})
    return tokenizer


def _save_tiny_llava(directory: Path, seed: int) -> None:
    tiny_llava_model(seed).save_pretrained(directory)


def _save_tiny_vila(directory: Path, seed: int) -> None:
    from conversion.verify_vila import save_tiny_vila

    save_tiny_vila(directory, seed)


SIGLIP_PIXELS = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3}
# Qwen3-VL's released video_preprocessor_config.json bounds frames x pixels; the tiny one keeps clips small.
TINY_VIDEO_PREPROCESSORS = {
    "qwen3_vl": {"size": {"shortest_edge": 64 * 64, "longest_edge": 4 * 128 * 128}, **SIGLIP_PIXELS}
}
# family -> (weights + config writer, preprocessor_config.json, its subdirectory, the tokenizer's)
TINY_CHECKPOINTS = {
    "qwen2_vl": (save_tiny_model, {"min_pixels": 56 * 56, "max_pixels": 112 * 112}, "", ""),
    "qwen2_5_vl": (_save_tiny_qwen2_5_vl, {"min_pixels": 56 * 56, "max_pixels": 112 * 112}, "", ""),
    "qwen3_vl": (_save_tiny_qwen3_vl, {"min_pixels": 64 * 64, "max_pixels": 128 * 128, **SIGLIP_PIXELS}, "", ""),
    "llava_onevision": (_save_tiny_llava, SIGLIP_PIXELS, "", ""),
    "vila": (_save_tiny_vila, SIGLIP_PIXELS, "vision_tower", "llm"),
}


def save_tiny_checkpoint(family: str, directory: str | os.PathLike, seed: int = 0) -> Path:
    """A complete tiny HF checkpoint of `family`: weights, config.json and generation_config.json
    (VILA1.5: its three parts), tokenizer files (VILA1.5: in llm/), preprocessor_config.json (small
    images) and, where the family releases one, video_preprocessor_config.json. Returns the
    tokenizer's directory."""
    if family not in TINY_CHECKPOINTS:
        raise ValueError(f"unknown family {family!r}; choose one of {sorted(TINY_CHECKPOINTS)}")
    write_weights, preprocessor, preprocessor_dir, tokenizer_dir = TINY_CHECKPOINTS[family]
    directory = Path(directory)
    write_weights(directory, seed)
    tiny_tokenizer(family).save_pretrained(directory / tokenizer_dir)
    (directory / preprocessor_dir / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    if family in TINY_VIDEO_PREPROCESSORS:
        video = json.dumps(TINY_VIDEO_PREPROCESSORS[family], indent=2)
        (directory / preprocessor_dir / "video_preprocessor_config.json").write_text(video)
    return directory / tokenizer_dir


def write_jsonl_sample(directory: str | os.PathLike, count: int = 8, seed: int = 0) -> Path:
    """A tiny benchmark in the generic jsonl format (tokcomp_jax/data/jsonl_vqa.py): `count` random
    images of a few sizes, one question each, in DIR/train.jsonl and DIR/test.jsonl (half each)."""
    import numpy as np
    from PIL import Image

    directory = Path(directory)
    (directory / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(count):
        size = [(56, 84), (84, 84), (70, 112), (84, 56)][i % 4]
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(directory / f"img/{i}.png")
        answer = ["red", "green", "blue", "yellow"][i % 4]
        lines.append(json.dumps({"id": f"q{i}", "question": "what colour is the square ?", "answers": [answer],
                                 "images": [f"img/{i}.png"]}))  # fmt: skip
    half = count // 2
    (directory / "train.jsonl").write_text("\n".join(lines[:half]) + "\n")
    (directory / "test.jsonl").write_text("\n".join(lines[half:]) + "\n")
    return directory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dst", required=True)
    parser.add_argument("--family", choices=sorted(SPECIAL_TOKENS), help="a complete tiny checkpoint of this family")
    parser.add_argument("--jsonl-sample", action="store_true", help="write a tiny jsonl benchmark into --dst instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--mrope", type=int, nargs=3, default=(2, 3, 3))
    parser.add_argument("--tie", action="store_true")
    parser.add_argument("--vision-depth", type=int, default=2)
    parser.add_argument("--vision-dim", type=int, default=32)
    parser.add_argument("--vision-heads", type=int, default=4)
    args = parser.parse_args(argv)
    if args.jsonl_sample:
        print(f"wrote a tiny jsonl benchmark to {write_jsonl_sample(args.dst, seed=args.seed)}")
        return
    if args.family:
        save_tiny_checkpoint(args.family, args.dst, args.seed)
        print(f"wrote a tiny {args.family} checkpoint to {args.dst}")
        return
    save_tiny_model(
        args.dst, args.seed, hidden=args.hidden, heads=args.heads, kv_heads=args.kv_heads, layers=args.layers,
        mrope=tuple(args.mrope), tie=args.tie, depth=args.vision_depth, embed_dim=args.vision_dim,
        num_heads=args.vision_heads,
    )  # fmt: skip


if __name__ == "__main__":
    main()
