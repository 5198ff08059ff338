"""DESIGN §2's dependency rules, read from every module's import statements (ast: nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tokcomp_jax"
INSIDE = lambda *folders: {f"tokcomp_jax.{folder}" for folder in folders}  # noqa: E731

# folder of the package ("": all of it) -> module prefixes it must never import
FORBIDDEN = {
    "models": INSIDE(
        "prune", "explain", "mapper", "eval", "miniature", "pipeline"
    ),  # it offers masks, positions, hooks
    "mapper": INSIDE("models", "prune", "explain", "eval", "miniature"),  # trained without an MLLM: the paper's point
    "": {"conversion", "scripts", "torch", "lmms_eval", "tokcomp_lmms"},  # the runtime package
}


def imported_modules(path: Path, package_root: Path) -> set[str]:
    """Dotted names a module imports (`from a import b` gives a and a.b), relative imports resolved."""
    package = path.relative_to(package_root.parent).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join([*package[: len(package) - node.level + 1], node.module or ""] if node.level else
                            [node.module]).strip(".")  # fmt: skip
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def violations(package_root: Path, folder: str, forbidden: set[str]) -> list[str]:
    return [
        f"{path.relative_to(package_root.parent)} imports {name}"
        for path in sorted((package_root / folder).rglob("*.py"))
        for name in sorted(imported_modules(path, package_root))
        if any(name == prefix or name.startswith(prefix + ".") for prefix in forbidden)
    ]


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_dependencies_point_one_way(folder):
    assert violations(PACKAGE, folder, FORBIDDEN[folder]) == []


def test_the_check_sees_wrong_way_imports(tmp_path):
    """The checker itself: absolute, relative and torch imports in the wrong place are each reported."""
    (tmp_path / "tokcomp_jax" / "models").mkdir(parents=True)
    (tmp_path / "tokcomp_jax" / "models" / "bad.py").write_text(
        "from tokcomp_jax.prune.select import gather_kept\nfrom ..mapper import model\nimport torch.nn\n"
    )
    assert violations(tmp_path / "tokcomp_jax", "models", FORBIDDEN["models"]) == [
        "tokcomp_jax/models/bad.py imports tokcomp_jax.mapper",
        "tokcomp_jax/models/bad.py imports tokcomp_jax.mapper.model",
        "tokcomp_jax/models/bad.py imports tokcomp_jax.prune.select",
        "tokcomp_jax/models/bad.py imports tokcomp_jax.prune.select.gather_kept",
    ]
    assert violations(tmp_path / "tokcomp_jax", "", FORBIDDEN[""]) == ["tokcomp_jax/models/bad.py imports torch.nn"]
