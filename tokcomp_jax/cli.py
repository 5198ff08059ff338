"""One contract for every command a user runs (scripts/*.py, `python -m conversion.convert`):

- A user's mistake is one line on stderr, `error: <what is wrong; what to do>`, and exit status 2,
  never a help text or a traceback; `--debug` shows the traceback. Anything else (a bug) keeps its
  traceback.
- Flags use underscores (`--max_new_tokens`; the hyphen spelling is accepted too); a config's
  fields are `--config.<field>`. Every flag has a help, and `--help` shows its default.

    if __name__ == "__main__":
        run_main(main)            # argparse scripts: main(argv=None) with parser = ArgumentParser(__doc__)
        run_absl(main)            # absl scripts: main(argv), flags from absl / ml_collections
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from absl import app, flags

from tokcomp_jax.runs import RunConflict

# What a user's mistake raises: the checks' ValueError (CheckpointError is one), a path that is not
# there or not of its kind, absl's UsageError and flag errors, another run holding a directory.
USER_ERRORS = (
    ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError, PermissionError,
    app.UsageError, flags.Error, RunConflict,
)  # fmt: skip
DEBUG_HELP = "on an error, show its traceback instead of one line (and keep third-party INFO logs)"
NOISY_LOGGERS = ("jax._src.xla_bridge", "absl")


def debugging(argv: list[str] | None = None) -> bool:
    """Whether the command line asks for --debug (read before any parser, so a parse error honours it)."""
    for arg in sys.argv[1:] if argv is None else argv:
        if arg == "--" or arg == "--nodebug":
            return False
        if arg == "--debug" or arg.lower() in ("--debug=true", "--debug=1"):
            return True
    return False


def fail(error: BaseException | str, debug: bool = False) -> NoReturn:
    """Report a user's mistake as one line (its traceback first with `debug`) and exit with status 2."""
    if debug and isinstance(error, BaseException):
        traceback.print_exception(error)
    message = str(error) or type(error).__name__
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def quiet_third_party_logs(debug: bool) -> None:
    """Loggers of libraries that tell a user of these commands nothing, raised to WARNING unless
    --debug: JAX's INFO line on a machine without a TPU ("Unable to initialize backend 'tpu'") and
    orbax's INFO line per file it reads or writes (it logs through absl)."""
    if not debug:
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def run_main(main: Callable[..., object], argv: list[str] | None = None) -> NoReturn:
    """Run an argparse script's `main(argv)` as its command line: a returned int is the exit status;
    a user's mistake (USER_ERRORS, or `raise SystemExit("message")`) is one line and status 2."""
    debug = debugging(argv)
    quiet_third_party_logs(debug)
    try:
        code = main(argv)
    except SystemExit as stop:
        if isinstance(stop.code, str):
            fail(stop if debug else stop.code, debug)
        raise
    except USER_ERRORS as err:
        fail(err, debug)
    sys.exit(code if isinstance(code, int) else 0)


def run_absl(main: Callable[[list[str]], object]) -> NoReturn:
    """absl's app.run(main) with the same contract: a flag error or a UsageError (or any USER_ERRORS)
    is one line and status 2, instead of the module's docstring and status 1; `--debug` is defined."""
    if "debug" not in flags.FLAGS:
        flags.DEFINE_bool("debug", False, DEBUG_HELP)

    def reported(argv: list[str]) -> object:
        quiet_third_party_logs(flags.FLAGS.debug)  # after app.run has set absl's logging up
        try:
            return main(argv)
        except SystemExit as stop:
            if isinstance(stop.code, str):
                fail(stop if flags.FLAGS.debug else stop.code, flags.FLAGS.debug)
            raise
        except USER_ERRORS as err:
            fail(err, flags.FLAGS.debug)

    app.run(reported, flags_parser=_parse_absl_flags)
    sys.exit(0)  # app.run exits itself; for type checkers


def _parse_absl_flags(argv: list[str]) -> list[str]:
    debug = debugging(argv[1:])
    try:
        remaining = flags.FLAGS(argv)
    except flags.UnrecognizedFlagError as err:
        fail(f"{err} (--helpshort lists the flags)", debug)
    except flags.Error as err:
        fail(err if debug else _config_error(str(err)), debug)
    except USER_ERRORS as err:
        fail(err, debug)
    for name in flags.FLAGS:  # a config file that cannot be read: ml_collections defers the error to its first use
        value = flags.FLAGS[name].value
        if type(value).__name__ == "_ErrorConfig":
            path = getattr(flags.FLAGS[name], "config_filename", "")
            fail(f"--{name} {path}: no such config file (the configs are under configs/)", debug)
    return remaining


def _config_error(message: str) -> str:
    """A config file's own error (its get_config refusing a variant) without the traceback text
    ml_collections puts in the flag error: `flag --config=X: <the last line's message>`."""
    head, found, trace = message.partition(": Error whilst parsing config file:")
    lines = [line for line in trace.splitlines() if line.strip()]
    if not found or not lines:
        return message
    kind, colon, text = lines[-1].partition(": ")
    return f"{head}: {text if colon and kind.isidentifier() else lines[-1]}"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The module docstring as written, and each flag's default after its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        shown = default not in (None, False, [], (), argparse.SUPPRESS) and not action.required
        if shown and "%(default)" not in text and "default:" not in text:
            text += " (default: %(default)s)"
        return text


class ArgumentParser(argparse.ArgumentParser):
    """argparse by the contract above: `--debug` defined, the hyphen spelling of an underscore flag
    accepted (`--max-new-tokens` for `--max_new_tokens`), and a parse error raised as
    SystemExit("argument ...: ...") for run_main to print as one line (not the usage and status 2)."""

    def __init__(self, description: str | None = None, **kwargs):
        super().__init__(description=description, formatter_class=HelpFormatter, **kwargs)
        self.add_argument("--debug", action="store_true", help=DEBUG_HELP)

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self._underscored(args), namespace)

    def _underscored(self, args: list[str]) -> list[str]:
        """`--a-b[=v]` -> `--a_b[=v]` where only the underscore spelling is a flag."""
        known, spelled = set(self._option_string_actions), []
        for index, arg in enumerate(args):
            if arg == "--":
                return spelled + args[index:]
            name, equals, value = arg.partition("=")
            if name.startswith("--") and name not in known and "--" + name[2:].replace("-", "_") in known:
                arg = "--" + name[2:].replace("-", "_") + equals + value
            spelled.append(arg)
        return spelled

    def error(self, message: str) -> NoReturn:
        raise SystemExit(f"{message} (--help lists the flags)")


def print_table(text: str, out=None) -> str:
    """Print a script's markdown and, where `out` (a path) is given, write it there too."""
    print(text)
    if out:
        out.write_text(text)
    return text


def ratio(text: str) -> float:
    """argparse type of a keep ratio: a number, with what to write instead of a percentage."""
    try:
        return float(text)
    except ValueError:
        hint = f" (write {float(text[:-1]) / 100:g} for {text})" if _percentage(text) else ""
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number; give the fraction of visual tokens to keep, in (0, 1]{hint}"
        ) from None


def _percentage(text: str) -> bool:
    try:
        return text.endswith("%") and float(text[:-1]) >= 0
    except ValueError:
        return False


def keep_ratio_problem(keep: float) -> str | None:
    """Why a keep ratio is refused (outside (0, 1]), with the fraction meant where it reads as a percentage."""
    if 0.0 < keep <= 1.0:
        return None
    hint = f"; for {keep:g}% write {keep / 100:g}" if 1.0 < keep <= 100.0 else ""
    return f"keep_ratio must be in (0, 1], got {keep} (the fraction of visual tokens to keep{hint})"
