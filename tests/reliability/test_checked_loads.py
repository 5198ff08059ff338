"""Loads check everything before a weight is used: a file that lies or is corrupt fails, naming the
file, the field or tensor, and what was expected (issue 20)."""

from __future__ import annotations

import json
import re
import shutil
import struct

import numpy as np
import pytest
from flax import nnx

import tokcomp_jax
from tokcomp_jax.files import CheckpointError
from tokcomp_jax.mapper.checkpoint import load_mapper, save_mapper
from tokcomp_jax.mapper.model import Mapper, MapperConfig
from tokcomp_jax.models.checkpoint import MODEL_FILE, save
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.models.safetensors_io import SafetensorsFile
from tokcomp_jax.prune.pruner import PruneConfig


@pytest.fixture(scope="module")
def orbax_model(tiny_qwen2vl, tmp_path_factory):
    _, _, model = tiny_qwen2vl
    directory = tmp_path_factory.mktemp("orbax") / "model"
    save(directory, FAMILIES["qwen2_vl"], model.config, "float32", nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    return directory


def _edited_copy(source, destination, edit):
    shutil.copytree(source, destination)
    meta = json.loads((destination / MODEL_FILE).read_text())
    edit(meta)
    (destination / MODEL_FILE).write_text(json.dumps(meta))
    return destination


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("intermediate_size", 48, r"mlp\.gate_proj\.kernel is stored with shape \(2, 64, 128\), the config builds \(2, 64, 48\)"),
        ("num_key_value_heads", 4, r"k_proj\.kernel is stored with shape .*, the config builds"),
    ],
)  # fmt: skip
def test_orbax_config_edited_beside_its_weights(orbax_model, tmp_path, field, value, message):
    """Orbax alone restores a larger stored array into a smaller target by reading a slice."""
    edited = _edited_copy(orbax_model, tmp_path / "edited", lambda meta: meta["config"]["text"].update({field: value}))
    with pytest.raises(CheckpointError, match=rf"params does not match .*{MODEL_FILE}: .*{message}"):
        tokcomp_jax.load(edited)


def test_orbax_dtype_that_the_weights_do_not_have(orbax_model, tmp_path):
    edited = _edited_copy(orbax_model, tmp_path / "bf16", lambda meta: meta.update(dtype="bfloat16"))
    with pytest.raises(CheckpointError, match=r"stored as float32, the description says bfloat16"):
        tokcomp_jax.load(edited)
    assert tokcomp_jax.load(orbax_model, dtype="bfloat16") is not None  # casting on load is asked for, not a lie


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda meta: meta.update(family="qwen9"), re.escape(f"unknown family 'qwen9'; known: {sorted(FAMILIES)}")),
        (lambda meta: meta.update(dtype="float8"), r"field 'dtype' is 'float8'; one of \['bfloat16', 'float32'\]"),
        (lambda meta: meta["config"]["text"].update(hidden_sise=64), r"config\.text: unknown fields \['hidden_sise'\]; DecoderConfig has \["),
        (lambda meta: meta["config"]["text"].pop("vocab_size"), r"config\.text: missing fields \['vocab_size'\]"),
        (lambda meta: meta["config"]["vision"].pop("depth"), r"missing parameter visual\.blocks\.10\..*and \d+ more"),  # default depth 32
        (lambda meta: meta["config"]["text"].update(num_hidden_layers="2"), r"DecoderConfig\.num_hidden_layers must be int, got '2'"),
        (lambda meta: meta.update(config=[1, 2]), r"config must be an object of Qwen2VLConfig fields, got a list"),
    ],
)  # fmt: skip
def test_orbax_description_errors_name_the_file_and_field(orbax_model, tmp_path, edit, message):
    edited = _edited_copy(orbax_model, tmp_path / "edited", edit)
    with pytest.raises(CheckpointError, match=rf"{MODEL_FILE}.*{message}"):
        tokcomp_jax.load(edited)


def test_descriptions_that_are_not_json_objects(orbax_model, tiny_qwen2vl, tmp_path):
    broken = _edited_copy(orbax_model, tmp_path / "broken", lambda meta: None)
    (broken / MODEL_FILE).write_text('{"family": "qwen2_vl", ')
    with pytest.raises(CheckpointError, match=rf"{MODEL_FILE} is not valid JSON"):
        tokcomp_jax.load(broken)
    hf_dir, _, _ = tiny_qwen2vl
    listed = tmp_path / "listed"
    shutil.copytree(hf_dir, listed)
    (listed / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"config\.json holds a JSON list, expected an object"):
        tokcomp_jax.load(listed)
    (listed / "config.json").write_text((hf_dir / "config.json").read_text())
    (listed / "model.safetensors.index.json").write_text("not json")
    with pytest.raises(CheckpointError, match=r"model\.safetensors\.index\.json is not valid JSON"):
        tokcomp_jax.load(listed)


def _safetensors(path, entries: dict, data: bytes) -> None:
    header = json.dumps(entries).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


F32 = {"dtype": "F32", "shape": [2]}  # 8 bytes


@pytest.mark.parametrize(
    ("entries", "size", "message"),
    [
        ({"a": F32 | {"data_offsets": [-8, 0]}}, 8, r"tensor a has data_offsets \[-8, 0\] \(negative or reversed\)"),
        ({"a": F32 | {"data_offsets": [0, 8]}, "b": F32 | {"data_offsets": [4, 12]}}, 12, r"tensor b .* overlaps the tensor before it"),
        ({"a": F32 | {"data_offsets": [0, 8]}, "b": F32 | {"data_offsets": [12, 20]}}, 20, r"tensor b .* leaves bytes 8\.\.12 unused"),
        ({"a": F32 | {"data_offsets": [0, 8]}}, 12, r"the tensors end at byte 8 of 12 data bytes"),
        ({"a": F32 | {"data_offsets": [0, 4]}}, 4, r"tensor a has 4 bytes, shape needs 8"),
        ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, 8, r"tensor a has an invalid shape \[-2\]"),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, 8, r"truncated safetensors file \(tensor a ends at byte 16, data has 8\)"),
        ({"a": "F32"}, 8, r"tensor a has unsupported dtype F32"),
    ],
)  # fmt: skip
def test_safetensors_headers_that_lie(tmp_path, entries, size, message):
    path = tmp_path / "model.safetensors"
    _safetensors(path, entries, bytes(size))
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: {message}"):
        SafetensorsFile(path)


def test_a_wellformed_handmade_safetensors_file_reads(tmp_path):
    path = tmp_path / "model.safetensors"
    values = np.arange(4, dtype=np.float32)
    entries = {"b": F32 | {"data_offsets": [8, 16]}, "a": F32 | {"data_offsets": [0, 8]}}  # order of the header is free
    _safetensors(path, entries, values.tobytes())
    np.testing.assert_array_equal(SafetensorsFile(path).get("b"), values[2:])


def test_mapper_description_that_lies(tmp_path):
    directory = save_mapper(tmp_path / "mapper", Mapper(MapperConfig(channels=(4, 8)), rngs=nnx.Rngs(0)))
    config = json.loads((directory / "mapper.json").read_text())
    (directory / "mapper.json").write_text(json.dumps(config | {"channels": [4, 6]}))
    with pytest.raises(
        CheckpointError,
        match=r"mapper\.json: .*pointwise\.kernel is stored with shape \(4, 8\), the config builds \(4, 6\)",
    ):
        load_mapper(directory)
    (directory / "mapper.json").write_text(json.dumps(config | {"chanels": [4, 8]}))
    with pytest.raises(CheckpointError, match=r"mapper\.json: .*unknown fields \['chanels'\]; MapperConfig has \["):
        load_mapper(directory)
    (directory / "mapper.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"mapper\.json is not valid JSON"):
        load_mapper(directory)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: PruneConfig("attention", "0.5"), r"PruneConfig\.keep_ratio must be float, got '0\.5' \(str\)"),
        (lambda: PruneConfig("attention", 0.5, layer=2.0), r"PruneConfig\.layer must be int, got 2\.0"),
        (lambda: PruneConfig("attention", True), r"PruneConfig\.keep_ratio must be float, got True"),
        (lambda: MapperConfig(channels=("8",)), r"MapperConfig\.channels must be a tuple of int, got \('8',\)"),
    ],
)  # fmt: skip
def test_config_fields_of_the_wrong_type(build, message):
    with pytest.raises(TypeError, match=message):
        build()
