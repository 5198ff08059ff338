"""Random scenes (coloured squares on grey) as image + prompt samples for the tiny model's pipelines."""

from __future__ import annotations

import numpy as np

from tokcomp_jax.models.qwen2_vl.processor import image_processor, process_images

COLOURS = ([220, 40, 40], [40, 200, 60], [40, 80, 220])


def scene(height: int = 112, width: int = 168, seed: int = 0) -> np.ndarray:
    """A grey canvas with three coloured squares, [H, W, 3] uint8."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 128, np.uint8)
    side = max(8, min(height, width) // 4)
    for colour in COLOURS:
        top, left = rng.integers(0, height - side), rng.integers(0, width - side)
        image[top : top + side, left : left + side] = colour
    return image


def scene_samples(config, count: int, sizes: list[tuple[int, int]], seed: int = 0) -> list[dict]:
    """`count` samples of a random scene (size cycling through `sizes`) with random prompt and reference ids.

    Each sample: sample_id, image [H, W, 3], input_ids [T] (pads expanded), pixel_values [P, F],
    image_grid_thw [1, 3], reference_ids (the answer a correct model would give).
    """
    rng = np.random.default_rng(seed)
    processor = image_processor(config)
    text_ids = min(config.image_token_id, config.video_token_id, config.vision_start_token_id)
    samples = []
    for index in range(count):
        height, width = sizes[index % len(sizes)]
        image = scene(height, width, seed=int(rng.integers(1 << 30)))
        pixels, grid = process_images(processor, [image])
        num_visual = int(grid.prod()) // config.vision.spatial_merge_size**2
        input_ids = [1, config.vision_start_token_id] + [config.image_token_id] * num_visual
        input_ids = np.array(input_ids + [config.vision_end_token_id, *rng.integers(0, text_ids, 6).tolist()])
        samples.append(
            {
                "sample_id": f"scene-{seed}-{index:06d}",
                "image": image,
                "input_ids": input_ids,
                "pixel_values": pixels,
                "image_grid_thw": grid,
                "reference_ids": rng.integers(0, text_ids, 1).tolist(),
            }
        )
    return samples
