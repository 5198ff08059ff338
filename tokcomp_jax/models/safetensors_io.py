"""Read safetensors files tensor by tensor through a memory map, without torch.

Written against the format itself (8-byte little-endian header length, JSON header, raw
little-endian data) so that bfloat16 maps to `ml_dtypes.bfloat16` and a truncated or corrupt
file is reported by name instead of failing deep inside a library.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import ml_dtypes
import numpy as np

from tokcomp_jax.files import CheckpointError, read_json_object

DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


class SafetensorsFile:
    """One `.safetensors` file: `keys()`, `shape(key)`, `dtype(key)`, `get(key)` -> numpy view."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise CheckpointError(f"{self.path}: truncated safetensors file ({size} bytes, no header)")
            (header_len,) = struct.unpack("<Q", prefix)
            if 8 + header_len > size:
                raise CheckpointError(f"{self.path}: truncated safetensors file (header of {header_len} bytes)")
            try:
                header = json.loads(f.read(header_len))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise CheckpointError(f"{self.path}: corrupt safetensors header ({err})") from None
        if not isinstance(header, dict):
            raise CheckpointError(f"{self.path}: corrupt safetensors header (a JSON {type(header).__name__})")
        header.pop("__metadata__", None)
        self._data_start = 8 + header_len
        self._entries = header
        _check_layout(self.path, header, size - self._data_start)
        self._mmap = (
            np.memmap(self.path, dtype=np.uint8, mode="r") if size > self._data_start else np.zeros(0, np.uint8)
        )

    def keys(self) -> list[str]:
        return list(self._entries)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._entries[key]["shape"])

    def dtype(self, key: str) -> np.dtype:
        return np.dtype(DTYPES[self._entries[key]["dtype"]])

    def get(self, key: str) -> np.ndarray:
        """A read-only view of one tensor (no copy until the caller converts it)."""
        entry = self._entries[key]
        begin, end = entry["data_offsets"]
        raw = self._mmap[self._data_start + begin : self._data_start + end]
        return raw.view(DTYPES[entry["dtype"]]).reshape(entry["shape"])


def _check_layout(path: Path, header: dict, data_size: int) -> None:
    """Every tensor entry well formed, its byte length = dtype size x shape, and the entries tiling the
    data exactly in order from byte 0 (no negative, overlapping or out-of-file offsets, no holes:
    the rule of the safetensors library itself)."""
    spans = []
    for key, entry in header.items():
        if not isinstance(entry, dict) or entry.get("dtype") not in DTYPES:
            dtype = entry.get("dtype") if isinstance(entry, dict) else entry
            raise CheckpointError(f"{path}: tensor {key} has unsupported dtype {dtype}")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise CheckpointError(f"{path}: tensor {key} has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise CheckpointError(f"{path}: tensor {key} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end:
            raise CheckpointError(f"{path}: tensor {key} has data_offsets [{begin}, {end}] (negative or reversed)")
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[entry["dtype"]]).itemsize
        if end - begin != expected:
            raise CheckpointError(f"{path}: tensor {key} has {end - begin} bytes, shape needs {expected}")
        if end > data_size:
            raise CheckpointError(
                f"{path}: truncated safetensors file (tensor {key} ends at byte {end}, data has {data_size})"
            )
        spans.append((begin, end, key))
    covered = 0
    for begin, end, key in sorted(spans):
        if begin != covered:
            what = "overlaps the tensor before it" if begin < covered else f"leaves bytes {covered}..{begin} unused"
            raise CheckpointError(f"{path}: tensor {key} (data_offsets [{begin}, {end}]) {what}")
        covered = end
    if covered != data_size:
        raise CheckpointError(f"{path}: the tensors end at byte {covered} of {data_size} data bytes (trailing data)")


def safetensors_files(directory: str | os.PathLike) -> list[Path]:
    """The weight files of a HF directory: those named by `model.safetensors.index.json`, else all `*.safetensors`."""
    directory = Path(directory)
    index = directory / "model.safetensors.index.json"
    if index.exists():
        weight_map = read_json_object(index).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index}: field 'weight_map' must map tensor names to file names")
        files = [directory / name for name in sorted(set(weight_map.values()))]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise CheckpointError(f"{index} names shards that do not exist: {missing}")
        return files
    return sorted(directory.glob("*.safetensors"))


def iter_safetensors(directory: str | os.PathLike) -> Iterator[tuple[str, str, np.ndarray]]:
    """Yield (file name, tensor name, lazily mapped array) for every tensor of a HF directory."""
    for path in safetensors_files(directory):
        weights = SafetensorsFile(path)
        for key in weights.keys():
            yield path.name, key, weights.get(key)
