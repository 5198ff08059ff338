"""Writing what a user keeps so that a kill never leaves a mixture of old and new, and reading what a user gives
so that a bad byte or an overlap is named.

    with directory_written_atomically(dst, overwrite=False) as partial:
        ...write everything into `partial`...
    write_text_atomically(out / "results.json", text)
    check_apart(src, dst, "--src", "--dst")                   # refuse writing into what is read
    lines = read_utf8(path).splitlines()                     # a non-UTF-8 byte named by file and line
    config = read_json_object(path)                          # not JSON, or not an object: CheckpointError naming it

The new directory is written beside `dst` (`.NAME.partial`), fsynced, then renamed into place; an
existing `dst` is first renamed aside (`.NAME.replaced`) and removed only after the new one is
in place. A kill while writing leaves `dst` as it was; a kill between the two renames leaves the
previous directory whole under `.NAME.replaced` (POSIX has no atomic swap of two directories),
and the next write to `dst` renames it back first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def directory_written_atomically(dst: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    dst = Path(dst).absolute()
    partial, replaced = dst.with_name(f".{dst.name}.partial"), dst.with_name(f".{dst.name}.replaced")
    if replaced.exists() and not dst.exists():  # killed between the two renames: the previous one is whole
        os.replace(replaced, dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())) and not overwrite:
        raise FileExistsError(f"{dst} already exists; pass --overwrite to replace it")
    shutil.rmtree(partial, ignore_errors=True)  # a killed earlier attempt
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # a failed write leaves nothing behind, dst untouched
        raise
    _fsync_tree(partial)
    if dst.exists():
        shutil.rmtree(replaced, ignore_errors=True)
        os.replace(dst, replaced)
        os.replace(partial, dst)
        shutil.rmtree(replaced)
    else:
        os.replace(partial, dst)
    _fsync(dst.parent)


def _fsync_tree(directory: Path) -> None:
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as file:
                os.fsync(file.fileno())
        _fsync(Path(root))


def _fsync(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def check_apart(source: str | os.PathLike, destination: str | os.PathLike, source_flag: str, destination_flag: str):
    """Refuse a destination that is the source, lies inside it or holds it: writing (or replacing)
    it would destroy what is being read. Paths are compared after resolving links."""
    source, destination = Path(source).resolve(), Path(destination).resolve()
    if destination == source:
        raise ValueError(f"{destination_flag} {destination} is {source_flag} itself; choose a {destination_flag} "
                         f"outside {source}")  # fmt: skip
    if source in destination.parents:
        raise ValueError(f"{destination_flag} {destination} lies inside {source_flag} {source}; choose a "
                         f"{destination_flag} outside it")  # fmt: skip
    if destination in source.parents:
        raise ValueError(f"{destination_flag} {destination} holds {source_flag} {source} (replacing it would delete "
                         f"the source); choose a {destination_flag} outside it")  # fmt: skip


def read_utf8(path: str | os.PathLike) -> str:
    """A text file's contents; a byte that is not UTF-8 raises ValueError naming the file, line and column."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise ValueError(
            f"{path}:{line}: byte 0x{data[err.start]:02x} at column {column} is not UTF-8; save the file as UTF-8"
        ) from None


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write text beside path, fsync, rename into place: a kill leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync(path.parent)
    return path
