"""Grounded-VQA examples (tokcomp_jax.data.vqa) as inputs of the miniature Qwen2-VL.

A prompt is `<vision_start> <image_pad> x N <vision_end> question words`; the answer is one word
followed by EOS. Pixels are processed per batch (`Samples[i:j]`), never for a whole split at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np

from tokcomp_jax.data import vqa
from tokcomp_jax.models.common.config import DecoderConfig
from tokcomp_jax.models.layout import Buckets
from tokcomp_jax.models.qwen2_vl.config import Qwen2VisionConfig, Qwen2VLConfig
from tokcomp_jax.models.qwen2_vl.processor import batch_media, image_processor, process_images, process_video
from tokcomp_jax.runs import digest

NUM_SPECIAL = 4  # image, video, vision start, vision end: right after the words


def miniature_config(
    width: int, layers: int, heads: int, kv_heads: int, mlp: int, vision_width: int, vision_depth: int,
    vision_heads: int,
) -> Qwen2VLConfig:  # fmt: skip
    """A Qwen2-VL of the real architecture over the miniature vocabulary (words, then the 4 vision tokens)."""
    first_special = len(vqa.VOCAB)
    vocab_size = -(-(first_special + NUM_SPECIAL) // 8) * 8
    half = width // heads // 2
    temporal = half // 4  # M-RoPE (t, h, w) split of head_dim / 2 in Qwen2-VL's proportions (16, 24, 24)
    rows = (half - temporal) // 2
    return Qwen2VLConfig(
        text=DecoderConfig(
            vocab_size=vocab_size, hidden_size=width, intermediate_size=mlp, num_hidden_layers=layers,
            num_attention_heads=heads, num_key_value_heads=kv_heads, rope_theta=10_000.0,
            mrope_section=(temporal, rows, half - temporal - rows),
        ),
        vision=Qwen2VisionConfig(depth=vision_depth, embed_dim=vision_width, num_heads=vision_heads, out_hidden_size=width),
        image_token_id=first_special, video_token_id=first_special + 1,
        vision_start_token_id=first_special + 2, vision_end_token_id=first_special + 3,
    )  # fmt: skip


def prompt_ids(config: Qwen2VLConfig, question: str, num_visual: int, video: bool = False) -> np.ndarray:
    pad = config.video_token_id if video else config.image_token_id
    ids = [config.vision_start_token_id] + [pad] * num_visual + [config.vision_end_token_id]
    return np.array(ids + vqa.encode(question), np.int64)


def token_grid(example: dict, merge_pixels: int = vqa.CELL) -> tuple[int, int, int]:
    """(frames, rows, cols) of merged visual tokens; a clip's frames are stacked vertically in its image."""
    frames = int(example.get("frames", 1))
    height, width = example["image"].shape[:2]
    if height % (merge_pixels * frames) or width % merge_pixels:
        raise ValueError(
            f"{example['sample_id']}: image {height}x{width} is not {frames} frame(s) of whole {merge_pixels}-pixel cells"
        )
    return frames, height // merge_pixels // frames, width // merge_pixels


@dataclasses.dataclass(frozen=True, order=True)
class Group:
    """Examples that share compiled graphs: a visual-token bucket and the frames per sample."""

    visual: int
    frames: int = 1

    def buckets(self, text_bucket: int, merge: int = 2) -> Buckets:
        """Buckets of this group: one vision block of patches per image or clip frame."""
        patches = self.visual // self.frames * merge**2
        return Buckets(text=text_bucket, visual=self.visual, queries=text_bucket, frame_patches=patches)


def group_of(example: dict, visual_buckets: Sequence[int]) -> Group:
    frames, rows, cols = token_grid(example)
    fitting = [bucket for bucket in visual_buckets if bucket >= frames * rows * cols]
    if not fitting:
        raise ValueError(
            f"{example['sample_id']}: {frames * rows * cols} visual tokens exceed the largest bucket {visual_buckets[-1]}"
        )
    if frames > 1 and fitting[0] % frames:
        raise ValueError(f"{example['sample_id']}: bucket {fitting[0]} is not a multiple of its {frames} frames")
    return Group(fitting[0], frames)


def group_indices(examples: Sequence[dict], visual_buckets: Sequence[int]) -> dict[Group, list[int]]:
    """Group -> indices of the examples it holds, groups in ascending order."""
    groups: dict[Group, list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(group_of(example, visual_buckets), []).append(index)
    return dict(sorted(groups.items()))


def dataset_of(example: dict) -> str:
    """The generating dataset, from the sample id `{dataset}-{split}-{index}` the builders write."""
    return example["sample_id"].split("-")[0]


class Samples(Sequence):
    """Examples -> label-writer / pruning samples; slicing processes the pixels of that slice only.

    Each sample: sample_id, image, input_ids [T] (prompt), reference_ids [answer id], kind (dataset/kind),
    evidence [N] bool (the visual tokens the answer rests on), and pixel_values / image_grid_thw or,
    for a clip, pixel_values_videos / video_grid_thw (each stored frame is one temporal patch: two
    identical raw frames).
    """

    def __init__(self, config: Qwen2VLConfig, examples: Sequence[dict]):
        if config.vision.patch_size * config.vision.spatial_merge_size != vqa.CELL:
            raise ValueError(f"the miniature's images are drawn on a {vqa.CELL}-pixel grid of merged tokens")
        self.config, self.examples = config, list(examples)
        self.processor = image_processor(config, max_pixels=28 * 28 * 4096)

    def __len__(self) -> int:
        return len(self.examples)

    def sample_ids(self) -> list[str]:
        return [example["sample_id"] for example in self.examples]

    def content_digest(self) -> str:
        """A digest of every example's id, question, answer and pixels, without processing them."""
        return digest([
            (e["sample_id"], e["question"], e["answer"], hashlib.sha256(np.ascontiguousarray(e["image"])).hexdigest())
            for e in self.examples
        ])  # fmt: skip

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.process([self.examples[i] for i in range(*index.indices(len(self)))])
        return self.process([self.examples[index]])[0]

    def process(self, examples: Sequence[dict]) -> list[dict]:
        images = [example for example in examples if token_grid(example)[0] == 1]
        media = {}
        if images:
            pixels, grids = process_images(self.processor, [example["image"] for example in images])
            offsets = np.r_[0, np.cumsum(grids.prod(-1))]
            for i, example in enumerate(images):
                media[example["sample_id"]] = {
                    "pixel_values": pixels[offsets[i] : offsets[i + 1]],
                    "image_grid_thw": grids[i : i + 1],
                }
        for example in examples:
            frames = token_grid(example)[0]
            if frames > 1:
                strip = example["image"]
                video = np.repeat(strip.reshape(frames, -1, *strip.shape[1:]), 2, axis=0)
                pixels, grid = process_video(self.processor, video)
                media[example["sample_id"]] = {"pixel_values_videos": pixels, "video_grid_thw": grid}
        samples = []
        for example in examples:
            frames, rows, cols = token_grid(example)
            samples.append(
                {
                    "sample_id": example["sample_id"],
                    "image": example["image"],
                    "input_ids": prompt_ids(self.config, example["question"], frames * rows * cols, frames > 1),
                    "reference_ids": vqa.encode(example["answer"]),
                    "kind": f"{dataset_of(example)}/{example['kind']}",
                    "evidence": vqa.evidence_tokens(example["evidence"], example["image"].shape[:2]),
                    **media[example["sample_id"]],
                }
            )
        return samples


def collate(samples: Sequence[dict], with_answers: bool = False) -> dict:
    """Samples -> a right-padded transformers-style batch; with_answers appends answer + EOS and
    returns `targets` [B, T] (next-token ids, -1 where no loss)."""
    sequences = [
        np.r_[s["input_ids"], s["reference_ids"], vqa.EOS_ID] if with_answers else s["input_ids"] for s in samples
    ]
    length = max(len(sequence) for sequence in sequences)
    batch = {
        "input_ids": np.stack([np.pad(s, (0, length - len(s))) for s in sequences]),
        "attention_mask": np.stack([np.arange(length) < len(s) for s in sequences]).astype(np.int64),
        **batch_media(samples),
    }
    if with_answers:
        targets = np.full((len(samples), length), -1, np.int64)
        for row, (sample, sequence) in enumerate(zip(samples, sequences, strict=True)):
            prompt = len(sample["input_ids"])
            targets[row, prompt - 1 : len(sequence) - 1] = sequence[prompt:]
        batch["targets"] = targets
    return batch
