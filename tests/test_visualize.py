"""The kept-token figure: one panel per image and video step, the kept tokens where the family's
tokens tile the medium (VILA1.5's grids are stored column by column), a readable PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conversion.tiny import save_tiny_checkpoint
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.visualize import media_panels, save_kept_figure

RNG = np.random.default_rng(0)
IMAGE, VIDEO = RNG.integers(0, 256, (56, 84, 3), np.uint8), RNG.integers(0, 256, (4, 56, 56, 3), np.uint8)


def encoded(name, directory, images, video=None):
    save_tiny_checkpoint(name, directory)
    family = FAMILIES[name]
    config = family.read_config(directory)
    chat = family.chat(config, family.load_tokenizer(directory), family.read_side_files(directory))
    batch = chat.encode("what colour is the square ?", images=images, video=video)
    return family, config, batch, family.token_counts(config, batch)[1]


def test_qwen_panels_mark_the_kept_tokens_of_each_image_and_video_step(tmp_path):
    family, config, batch, total = encoded("qwen2_vl", tmp_path / "model", [IMAGE], VIDEO)
    kept_slots = np.arange(0, total, 3)
    panels, note = media_panels(family, config, batch, [IMAGE], VIDEO, kept_slots, total)
    assert not note and [p.title for p in panels] == ["image 1", "video, step 1 of 2", "video, step 2 of 2"]
    assert sum(int(p.kept.sum()) for p in panels) == len(kept_slots)
    assert panels[0].kept.reshape(-1)[0] and not panels[0].kept.reshape(-1)[1]  # reading order
    path = save_kept_figure(panels, "what colour ?", "red", len(kept_slots), total, tmp_path / "kept.png")
    with Image.open(path) as picture:
        assert picture.size[0] >= 800 and picture.size[1] >= 400


def test_vila_grids_are_read_column_by_column(tmp_path):
    family, config, batch, total = encoded("vila", tmp_path / "model", [IMAGE])
    panels, _ = media_panels(family, config, batch, [IMAGE], None, np.array([1]), total)
    (panel,) = panels
    assert panel.kept.sum() == 1 and panel.kept[1, 0]  # the second stored token: row 1 of column 0


def test_llava_onevision_panels_say_why_tokens_are_not_marked(tmp_path):
    family, config, batch, total = encoded("llava_onevision", tmp_path / "model", [IMAGE])
    panels, note = media_panels(family, config, batch, [IMAGE], None, np.arange(total // 2), total)
    assert [p.kept for p in panels] == [None] and "form no single" in note
    save_kept_figure(panels, "what ?", "red", total // 2, total, tmp_path / "kept.png", note)
    assert (tmp_path / "kept.png").stat().st_size > 0


@pytest.mark.parametrize("name", ["qwen2_5_vl", "qwen3_vl"])
def test_other_qwen_families_tile_too(name, tmp_path):
    family, config, batch, total = encoded(name, tmp_path / "model", [IMAGE], VIDEO)
    panels, note = media_panels(family, config, batch, [IMAGE], VIDEO, np.arange(total), total)
    assert not note and all(p.kept.all() for p in panels)
