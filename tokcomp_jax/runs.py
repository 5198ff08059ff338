"""Output directories written by one run at a time, that remember what they were made from.

    with exclusive(out):                                     # a second run into `out` stops at once
        claim(out / "unpruned.fingerprint.json", {"model": model_digest(model), ...}, overwrite=False)

`exclusive` holds an advisory lock (flock) on `out/.lock` for the life of the process, so a
killed run never leaves a stale lock. It writes only into a directory that is new, empty or made by
an earlier run (marked `.tokcomp_run`): a file or a folder of the user's is refused
(`check_run_directory`, which a script calls with its flag's name before it reads any data). `claim` stores a fingerprint (a JSON object of everything
the outputs depend on) beside them on first use and compares it on every resume: a rerun with
another model, config or input set raises, naming the parts that differ, instead of returning
results made from something else. `overwrite=True` tells the caller to start those outputs over.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

LOCK_FILE = ".lock"
RUN_MARK = ".tokcomp_run"  # marks a directory this project's runs write into


class RunConflict(RuntimeError):
    """Another run holds the directory, or its outputs were made from something else."""


def check_run_directory(out: str | os.PathLike, flag: str = "--out") -> None:
    """Refuse an `out` that is a file, or a non-empty directory no run of this project made (no
    RUN_MARK, no lock file of an earlier run): its files are the user's, and a run would replace
    some of them (results.json) or mix its outputs among them."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunConflict(f"{flag} {out} is a file; choose a directory for the run's outputs")
    if not out.is_dir() or (out / RUN_MARK).exists() or any(out.glob(f"{LOCK_FILE}*")):
        return
    found = sorted(path.name for path in out.iterdir())
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise RunConflict(
            f"{flag} {out} holds files that no run of this project made ({shown}); choose a new or empty directory"
        )


@contextlib.contextmanager
def exclusive(out: str | os.PathLike, name: str = LOCK_FILE) -> Iterator[Path]:
    """Hold `out/name` locked while the block runs (multi-host runs lock one name per host); `out`
    must pass `check_run_directory`, and is marked as a run's directory."""
    out = Path(out)
    check_run_directory(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_MARK).touch()
    handle = open(out / name, "a+")  # noqa: SIM115 (held for the block, closed below)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunConflict(
                f"{out} is in use by another run ({holder}); wait for it or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield out
    finally:
        handle.close()


def claim(path: str | os.PathLike, fingerprint: dict, overwrite: bool = False, has_outputs: bool = False) -> bool:
    """Record `fingerprint` at path, or check it against the recorded one.

    Returns True when the outputs it describes must start over (none recorded yet, or overwrite
    with a different one); raises RunConflict when a different one is recorded, or outputs exist
    (`has_outputs`) with none recorded, and not overwrite.
    """
    path = Path(path)
    fingerprint = json.loads(json.dumps(fingerprint))  # the form it is stored in (tuples as lists)
    if not path.exists() and has_outputs and not overwrite:
        raise RunConflict(
            f"{path.parent} holds outputs without a record of what made them ({path.name}); "
            "start them over (--overwrite) or choose another --out"
        )
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError:
            stored = {"unreadable": str(path)}
        if stored == fingerprint:
            return False
        if not overwrite:
            differ = sorted(k for k in stored.keys() | fingerprint.keys() if stored.get(k) != fingerprint.get(k))
            raise RunConflict(
                f"{path.parent} holds outputs made with another {', '.join(differ)} ({path.name}); "
                "start them over (--overwrite) or choose another --out"
            )
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)
    return True


def digest(value) -> str:
    """A short sha256 of a JSON-able value (sample ids, settings)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


@jax.jit
def _moments(leaves):
    return [jnp.stack([jnp.sum(x.astype(jnp.float32)), jnp.sum(jnp.square(x.astype(jnp.float32)))]) for x in leaves]


def model_digest(module: nnx.Module) -> str:
    """A digest of a module's parameters (paths, shapes, dtypes, and each array's sum and sum of
    squares): another seed, another checkpoint or an edited weight gives another digest."""
    state = nnx.to_pure_dict(nnx.state(module, nnx.Param))
    named = jax.tree_util.tree_leaves_with_path(state)
    moments = np.asarray(jnp.stack(_moments([leaf for _, leaf in named])))
    parts = [(jax.tree_util.keystr(path), leaf.shape, str(leaf.dtype)) for path, leaf in named]
    return digest([parts, [f"{value:.6g}" for value in moments.ravel()]])
