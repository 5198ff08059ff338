"""The README's and the docs pages' code blocks run as written, so they cannot rot.

Python: every ```python block of README.md and docs/*.md runs, in order, one namespace per file,
against the directories the README's journey writes (`/tmp/qwen2_vl`, `/tmp/data`,
`/tmp/qwen2_vl-mapper/mapper`), made here under a temporary directory that stands in for `/tmp/`
(the mapper has random weights: train_mapper.py's output format, not its training). A block that is
not meant to run is preceded by `<!-- not run: why -->`.

Bash: every command of every ```bash block names scripts, modules, make targets and config files
(with their variants and `--config.x` fields) that exist (default suite, no model runs); the README's
journey block runs as written with bash (slow: 3-4 minutes, the same steps as
tests/scripts/test_family_journey.py, which checks their outputs in the default suite).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUN = re.compile(r"^<!-- not run: .+ -->$")
FAMILY = "qwen2_vl"  # the journey's F and the Python blocks' model


def code_blocks(path: Path, language: str) -> list[tuple[int, str, bool]]:
    """(line, source, runs) of each fenced block of `language`; runs is False after a not-run marker."""
    lines, blocks, index = path.read_text().splitlines(), [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening or not opening.group(1):
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        before = [line for line in lines[:index] if line.strip()][-1:]
        if opening.group(1) == language:
            blocks.append((index + 1, "\n".join(lines[index + 1 : end]), not (before and NOT_RUN.match(before[0]))))
        index = end + 1
    return blocks


def commands(source: str) -> list[list[str]]:
    """A bash block's commands as words: continuation lines joined, comments and assignments dropped."""
    joined = re.sub(r"\\\n", " ", source)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words and not re.fullmatch(r"\w+=\S*", words[0]):
            out.append(words)
    return out


@pytest.fixture(scope="module")
def journey(tmp_path_factory):
    """What the README's journey leaves under /tmp/, for F=qwen2_vl: the tiny checkpoint, its
    conversion, the tiny benchmark and a mapper of the family (random weights)."""
    from flax import nnx

    from conversion.convert import main as convert
    from conversion.tiny import save_tiny_checkpoint, write_jsonl_sample
    from tokcomp_jax.mapper import Mapper, MapperConfig, save_mapper

    root = tmp_path_factory.mktemp("journey")
    save_tiny_checkpoint(FAMILY, root / f"{FAMILY}-hf")
    assert convert(["--src", str(root / f"{FAMILY}-hf"), "--dst", str(root / FAMILY)]) in (0, None)
    write_jsonl_sample(root / "data")
    heads = 4  # conversion.tiny's --heads
    save_mapper(
        root / f"{FAMILY}-mapper/mapper", Mapper(MapperConfig(num_heads=heads, family=FAMILY), rngs=nnx.Rngs(0))
    )
    return root


def as_in(source: str, root: Path) -> str:
    return source.replace("/tmp/", f"{root}/")


PYTHON_DOCUMENTS = [p for p in DOCUMENTS if any(runs for _, _, runs in code_blocks(p, "python"))]


@pytest.mark.parametrize("path", PYTHON_DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_python_blocks_run(path, journey):
    namespace = {"__name__": "__readme__"}
    for line, source, runs in code_blocks(path, "python"):
        if runs:
            exec(compile(as_in(source, journey), f"{path.relative_to(REPO)}:{line}", "exec"), namespace)


def test_the_readme_runs_its_python_and_marks_what_it_does_not():
    """The README shows the one-call API, and every block it does not run says why, sparingly."""
    readme = REPO / "README.md"
    python = code_blocks(readme, "python")
    assert python and all(runs for _, _, runs in python)
    assert any("Pipeline.from_pretrained" in source for _, source, _ in python)
    skipped = [
        line for p in DOCUMENTS for lang in ("python", "bash") for line, _, runs in code_blocks(p, lang) if not runs
    ]
    assert len(skipped) <= 4, skipped


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))


def config_of(spec: str):
    """A config file's get_config(variant) for `path[:variant]`."""
    path, _, variant = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location(f"doc_config_{abs(hash(spec))}", REPO / path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(variant) if variant else module.get_config()


FLAG = re.compile(r'(?:add_argument|DEFINE_\w+)\(\s*"(?:--)?([\w-]+)"')


def defined_flags(program: Path) -> set[str]:
    """The flags a script or module defines, with those of tokcomp_jax's shared modules (--debug, hosts)."""
    shared = (path.read_text() for path in (REPO / "tokcomp_jax").glob("*.py"))
    return set(FLAG.findall(program.read_text())).union(*(FLAG.findall(text) for text in shared))


def check_command(words: list[str]) -> list[str]:
    """What a documented command names that does not exist: make targets, scripts and modules, the
    flags given to them, config files and their variants, and `--config.x` fields."""
    if words[0] == "make":
        return [f"make target {t}" for t in words[1:] if not t.startswith("-") and t not in make_targets()]
    problems, program, start = [], None, len(words)
    for index, word in enumerate(words):
        script = re.fullmatch(r"(?:\S*/)?(scripts/\w+\.py)", word)
        module = words[index - 1] == "-m" and word.startswith(("conversion.", "tokcomp_jax.")) if index else False
        if script or module:
            program = REPO / (script.group(1) if script else word.replace(".", "/") + ".py")
            start = index + 1
            break
    if program is None:
        return []
    if not program.is_file():
        return [f"{program.relative_to(REPO)}"]
    flags = defined_flags(program)
    given = [re.match(r"--([\w-]+)", word) for word in words[start:]]
    problems += [f"{program.name} flag --{m.group(1)}" for m in given if m and m.group(1) not in flags]
    if "--config" in words and words[words.index("--config") + 1].startswith("configs/"):
        config = config_of(words[words.index("--config") + 1])
        for word in words[start:]:
            field = re.match(r"--config\.([\w.]+)", word)
            if field:
                node = config
                for key in field.group(1).split("."):
                    if key not in node:
                        problems.append(f"config field {field.group(1)}")
                        break
                    node = node[key]
    return problems


@pytest.mark.parametrize("path", [p for p in DOCUMENTS if code_blocks(p, "bash")], ids=lambda p: p.name)
def test_bash_blocks_name_what_exists(path):
    problems = [
        f"{path.name}:{line}: {problem}"
        for line, source, _ in code_blocks(path, "bash")
        for words in commands(source)
        for problem in check_command(words)
    ]
    assert not problems, problems


def journey_block() -> str:
    [source] = [s for _, s, _ in code_blocks(REPO / "README.md", "bash") if "conversion.tiny --family" in s]
    return source


def test_the_journey_is_for_the_family_the_python_blocks_use():
    assert re.search(rf"^F={FAMILY}\b", journey_block(), re.M)


@pytest.mark.slow
def test_the_readme_journey_runs_as_written(tmp_path):
    done = subprocess.run(
        ["bash", "-e", "-c", as_in(journey_block(), tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"passed": true' in done.stdout
    table = (tmp_path / f"{FAMILY}-eval/results.md").read_text()
    assert "mapper@0.5" in table and "mapper@0.25" in table
    assert '"visual_tokens_kept"' in done.stdout
