"""`make demo` runs scripts/demo.py; this keeps it working."""

from __future__ import annotations

import json
import runpy
import sys

from PIL import Image


def test_demo_writes_model_picture_and_report(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["demo.py", "--out", str(tmp_path)])
    runpy.run_path("scripts/demo.py", run_name="__main__")
    report = json.loads((tmp_path / "demo.json").read_text())
    assert report["visual_tokens"] == 24 and report["visual_grid"] == [4, 6]
    assert 0.0 < report["attention_mass_on_visual"] <= 1.0
    assert (tmp_path / "model" / "tokcomp_model.json").exists()
    assert Image.open(tmp_path / "first_layer_attention.png").size == (2 * 168, 112)
