"""Running the absl scripts in-process, as `python scripts/NAME.py ARGS` would."""

from __future__ import annotations

import runpy
import sys

import pytest


@pytest.fixture
def run_absl_script(monkeypatch):
    """run(script, *args): run scripts/<script> as __main__ and check that absl's app.run exited 0."""

    def run(script: str, *args: str) -> None:
        monkeypatch.setattr(sys, "argv", [script, *args])
        with pytest.raises(SystemExit) as finished:  # absl's app.run always exits
            runpy.run_path(f"scripts/{script}", run_name="__main__")
        assert not finished.value.code

    return run
