"""Running the absl scripts in-process, as `python scripts/NAME.py ARGS` would."""

from __future__ import annotations

import runpy
import sys

import pytest
from absl import app, flags  # noqa: F401  (app defines its own flags at import: before any snapshot)

import tokcomp_jax.hosts  # noqa: F401  (the scripts' shared multi-host flags: defined once, before any snapshot)


@pytest.fixture
def run_absl_script(monkeypatch):
    """run(script, *args, code=0): run scripts/<script> as __main__ and check absl's app.run exit code.
    The flags the script defines are removed afterwards, so a script can run more than once (flags of
    modules it imports stay defined only if imported before, as tokcomp_jax.hosts is above)."""
    before = set(flags.FLAGS)

    def run(script: str, *args: str, code: int = 0) -> None:
        monkeypatch.setattr(sys, "argv", [script, *args])
        try:
            with pytest.raises(SystemExit) as finished:  # absl's app.run always exits
                runpy.run_path(f"scripts/{script}", run_name="__main__")
        finally:
            for name in set(flags.FLAGS) - before:
                delattr(flags.FLAGS, name)
        assert (finished.value.code or 0) == code

    return run
