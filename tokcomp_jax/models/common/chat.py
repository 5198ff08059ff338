"""The prompt side every family shares: one user turn through the tokenizer's chat template, the
token a reply ends with, and input checks."""

from __future__ import annotations

import numpy as np

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>")  # Qwen2 / ChatML, Llama 3


def user_turn(tokenizer, prompt: str, num_images: int = 0, num_videos: int = 0) -> str:
    """The chat-template text of one user turn (media first, then the prompt) and the assistant's cue.

    The prompt is user text: one that spells a control token (`<|im_end|>`, `<|vision_start|>`, ...)
    is refused, since the tokenizer would read it as that token and not as the characters typed.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__} (decode bytes first)")
    if not prompt or not prompt.strip():
        raise ValueError("prompt is empty")
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the tokenizer has no chat template; load it from the model's own tokenizer files")
    spelled = sorted(token for token in control_tokens(tokenizer) if token in prompt)
    if spelled:
        raise ValueError(f"prompt contains the control token(s) {spelled}, which user text may not spell")
    content = [{"type": "image"}] * num_images + [{"type": "video"}] * num_videos + [{"type": "text", "text": prompt}]
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)  # fmt: skip


def control_tokens(tokenizer) -> set[str]:
    """The tokenizer's special tokens and its added tokens marked special."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return set(tokenizer.all_special_tokens) | {t.content for t in added.values() if getattr(t, "special", False)}


def end_of_turn_id(tokenizer) -> int:
    """The token a chat model ends its reply with: `<|im_end|>` or `<|eot_id|>` where the vocabulary
    has one, else EOS."""
    for name in END_OF_TURN_TOKENS:
        token = tokenizer.convert_tokens_to_ids(name)
        if isinstance(token, int) and token != tokenizer.unk_token_id:
            return token
    return tokenizer.eos_token_id


def decode_reply(tokenizer, tokens, stop_ids: tuple[int, ...]) -> str:
    """Generated ids -> the reply text, without the stop tokens and special tokens."""
    return tokenizer.decode([int(t) for t in tokens if int(t) not in stop_ids], skip_special_tokens=True).strip()


def check_image(image: np.ndarray, name: str, min_side: int) -> np.ndarray:
    """An [H, W, C] uint8 image with 1 or 3 channels and sides of at least `min_side` pixels.

    Float images must hold values in [0, 1] (they are scaled to 0..255 and rounded); every other
    dtype is refused rather than normalised as if it were 8-bit.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"{name} must be [height, width, channels] with 1 or 3 channels, got shape {image.shape}")
    image = as_uint8(image, name)
    if min(image.shape[:2]) < min_side:
        raise ValueError(f"{name} is {image.shape[0]}x{image.shape[1]} pixels, smaller than one {min_side}px patch")
    return image


def as_uint8(pixels: np.ndarray, name: str) -> np.ndarray:
    """uint8 pixels as they are; float pixels in [0, 1] scaled to 0..255 and rounded; anything else refused."""
    if np.issubdtype(pixels.dtype, np.floating):
        low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
        if not (np.isfinite(low) and np.isfinite(high) and 0.0 <= low and high <= 1.0):
            raise ValueError(
                f"{name} is a {pixels.dtype} array with values in [{low}, {high}]; float pixels must be in [0, 1]"
            )
        return np.round(pixels * 255.0).astype(np.uint8)
    if pixels.dtype != np.uint8:
        raise ValueError(f"{name} has dtype {pixels.dtype}; pass uint8 (0..255) or float in [0, 1]")
    return pixels


def check_video(frames) -> np.ndarray:
    """[F, H, W, C] uint8 frames (an array, or a sequence of equally sized frames; dtypes as `as_uint8`)."""
    if not isinstance(frames, np.ndarray):
        frames = [np.asarray(frame) for frame in frames]
        sizes = [frame.shape for frame in frames]
        differing = [i for i, size in enumerate(sizes) if size != sizes[0]]
        if differing:
            i = differing[0]
            raise ValueError(f"video frames differ in size: frame 0 is {sizes[0]}, frame {i} is {sizes[i]}")
        frames = np.stack(frames) if frames else np.zeros((0,), np.uint8)
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError(f"video must be [frames, height, width, channels], got shape {frames.shape}")
    return as_uint8(frames, "video")


def pad_right(rows, key: str, length: int) -> np.ndarray:
    """Rows' [1, T_i] arrays under `key`, right-padded with 0 to [B, length]."""
    return np.concatenate([np.pad(row[key], ((0, 0), (0, length - row[key].shape[1]))) for row in rows])


def collate_text(rows) -> dict[str, np.ndarray]:
    """input_ids and attention_mask of one-row batches, right-padded to the longest."""
    length = max(row["input_ids"].shape[1] for row in rows)
    return {key: pad_right(rows, key, length) for key in ("input_ids", "attention_mask")}
