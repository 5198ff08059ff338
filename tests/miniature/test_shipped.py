"""The shipped miniature MLLM (assets/miniature-mllm): it loads with the demo's architecture and
reaches the accuracy its manifest records on the held-out slice, generated here from scratch."""

from __future__ import annotations

import pytest

from configs.miniature import get_config
from tokcomp_jax.miniature.shipped import SHIPPED, SLICE, read_manifest, slice_accuracy
from tokcomp_jax.miniature.train import load_pretrained


def test_shipped_miniature_reaches_its_recorded_accuracy():
    config = get_config("demo")
    assert config.mllm.pretrained == str(SHIPPED)
    manifest = read_manifest(SHIPPED)
    assert manifest["data"]["builders"] == list(config.data.builders) and manifest["slice"]["split"] == SLICE[0]
    model = load_pretrained(SHIPPED, config.mllm.model)
    measured = slice_accuracy(model, config, manifest["data"]["config"])
    recorded = manifest["slice"]["accuracy"]
    questions = 2 * SLICE[1]
    assert measured["accuracy"] == pytest.approx(recorded["accuracy"], abs=1.5 / questions)  # one answer may flip
    assert measured["boxed_digit"] >= 0.9 and measured["sum"] >= 0.9  # the kinds the tables rest on


def test_a_model_of_another_architecture_is_refused(tmp_path):
    config = get_config("demo")
    config.mllm.model.width = 64
    with pytest.raises(ValueError, match="not the configured"):
        load_pretrained(SHIPPED, config.mllm.model)


def test_a_missing_manifest_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        read_manifest(tmp_path)
