"""The import layers, read from the source (every import, function-local ones included):
only ``curate/cli`` uses click, only the console entry point uses ``curate.cli``, and
``dmue_core`` stays free of fiftyone, pandas and click."""

from __future__ import annotations

import ast
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
CLI = "curate.cli"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (relative imports resolved)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from .m import x
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [node.module])])
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def modules(*folders: str) -> dict[str, set[str]]:
    return {module_name(p): imported(p) for folder in folders for p in sorted((REPO / folder).rglob("*.py"))}


def uses(names: set[str], top: str) -> bool:
    return any(n == top or n.startswith(top + ".") for n in names)


def test_only_the_cli_imports_click_or_the_cli():
    outside = {m: names for m, names in modules("curate", "dmue_core", "plugins").items() if not uses({m}, CLI)}
    assert len(outside) > 50
    assert [m for m, names in outside.items() if uses(names, "click")] == []
    entry = "curate.__main__"  # `python -m curate` (as torchrun starts it): the console script's twin
    assert [m for m, names in outside.items() if uses(names, CLI) and m != entry] == []
    assert modules("curate")[entry] == {"curate.cli", "curate.cli.main"}
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"curate": "curate.cli:main"}  # the console entry point


def test_dmue_core_imports_no_fiftyone_pandas_or_click():
    core = modules("dmue_core")
    assert len(core) > 5
    bad = {m: sorted(n for n in names if uses({n}, "fiftyone") or uses({n}, "pandas") or uses({n}, "click"))
           for m, names in core.items()}  # fmt: skip
    assert {m: names for m, names in bad.items() if names} == {}


def test_the_scan_sees_every_kind_of_import():
    names = imported(REPO / "curate" / "cli" / "train_cmd.py")
    assert {"click", "curate.cli.options.as_click_errors"} <= names  # module level
    assert "curate.job_inputs.table_and_config" in names  # inside a function
