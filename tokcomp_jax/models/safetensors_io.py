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


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names every file and tensor at fault."""


def read_json_object(path: Path) -> dict:
    """A checkpoint's JSON file that must hold an object; a clear CheckpointError naming it otherwise."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a JSON {type(data).__name__}, expected an object")
    return data


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
        header.pop("__metadata__", None)
        self._data_start = 8 + header_len
        data_size = size - self._data_start
        self._entries = header
        for key, entry in header.items():
            if entry.get("dtype") not in DTYPES:
                raise CheckpointError(f"{self.path}: tensor {key} has unsupported dtype {entry.get('dtype')}")
            begin, end = entry["data_offsets"]
            expected = int(np.prod(entry["shape"], dtype=np.int64)) * np.dtype(DTYPES[entry["dtype"]]).itemsize
            if end - begin != expected:
                raise CheckpointError(f"{self.path}: tensor {key} has {end - begin} bytes, shape needs {expected}")
            if end > data_size:
                raise CheckpointError(
                    f"{self.path}: truncated safetensors file (tensor {key} ends at byte {end}, data has {data_size})"
                )
        self._mmap = np.memmap(self.path, dtype=np.uint8, mode="r") if data_size else np.zeros(0, np.uint8)

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


def safetensors_files(directory: str | os.PathLike) -> list[Path]:
    """The weight files of a HF directory: those named by `model.safetensors.index.json`, else all `*.safetensors`."""
    directory = Path(directory)
    index = directory / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
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
