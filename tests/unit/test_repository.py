"""The repository stands on its own, and its layers import downwards only.

Citations: comments, docstrings, scenarios and units cite the project's own notes (``docs/…``)
or a standard's clause, never a file outside the repository (``../shared/…``, the old
``reference/*.md`` notes, ``DESIGN.md``) nor an issue number, which means nothing to a reader
of the code alone.

Layers (README, "Architecture"): ``hil`` -> ``firmware`` -> ``hal``. Production code never
imports the HIL tools, and the HAL never imports the firmware: neither statically (``import``,
``from … import``) nor by name (a string such as ``"hil.rig"`` handed to
``importlib.import_module``, ``__import__`` or an entry-point spec ``"hil.x:main"``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THIS_FILE = Path(__file__).resolve()

CITATION_DIRS = ("firmware", "hal", "hil", "bench", "demo", "tests", "config", "systemd")
CITATION_SUFFIXES = (".py", ".toml", ".service", ".sh")
FORBIDDEN_CITATIONS = {
    "a path outside the repository": re.compile(r"\.\./shared"),
    "a reference/*.md note (cite docs/…)": re.compile(r"reference/[\w./-]*\.md"),
    "DESIGN.md (cite docs/design.md)": re.compile(r"DESIGN\.md"),
    "an issue number": re.compile(r"issue\s*#?\d+|\(#\d+\)", re.IGNORECASE),
}


def _files(top: str, suffixes: tuple[str, ...]) -> Iterator[Path]:
    for path in sorted((ROOT / top).rglob("*")):
        relative = path.relative_to(ROOT).parts
        hidden = any(part.startswith(".") or part == "__pycache__" for part in relative)
        if path.is_file() and path.suffix in suffixes and not hidden:
            yield path


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


@pytest.mark.parametrize("top", CITATION_DIRS)
def test_no_citation_leaves_the_repository(top: str) -> None:
    found = []
    for path in _files(top, CITATION_SUFFIXES):
        if path.resolve() == THIS_FILE:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for what, pattern in FORBIDDEN_CITATIONS.items():
                if match := pattern.search(line):
                    found.append(f"{_where(path, number)}: {what}: {match.group(0)!r}")
    assert found == [], "cite docs/… or a standard's clause instead:\n" + "\n".join(found)


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring constants in ``tree`` (prose, never an import)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                ids.add(id(body[0].value))
    return ids


def _imports_of(path: Path, package: str) -> list[str]:
    """Every place in ``path`` that imports ``package``, statically or by name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    by_name = re.compile(rf"^{re.escape(package)}(\.|:|$)")
    prose = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in prose
            and by_name.match(node.value)
        ):
            found.append(f"{_where(path, node.lineno)}: by name {node.value!r}")
            continue
        else:
            continue
        for name in names:
            if name == package or name.startswith(package + "."):
                found.append(f"{_where(path, node.lineno)}: import {name}")
    return found


@pytest.mark.parametrize(
    ("top", "forbidden"),
    [
        *((low, tool) for low in ("firmware", "hal") for tool in ("hil", "bench", "demo")),
        ("hil", "bench"),
        ("hil", "demo"),
        ("hal", "firmware"),
    ],
)
def test_layers_import_downwards_only(top: str, forbidden: str) -> None:
    found = [hit for path in _files(top, (".py",)) for hit in _imports_of(path, forbidden)]
    assert found == [], f"{top}/ must not import {forbidden}:\n" + "\n".join(found)
