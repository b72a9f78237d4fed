"""The package's two layers, read from its source: the faithful reference
(``clip_ref/``) never imports the book's toy machinery (``clip_ref/toy/``) or the
command line (``clip_ref/cli.py``), ``import clip_ref`` loads neither, and no import
cycle exists.

Imports are read with ``ast``, relative ones resolved; an import inside
``if __name__ == "__main__":`` is the module's script entry (``python -m
clip_ref.train`` hands over to the command line) and is not a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "clip_ref"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_script_entry(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def _imports(path: Path) -> set[str]:
    """The clip_ref modules ``path`` imports (``from . import x`` counts as x)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if _is_script_entry(child):
                continue
            if isinstance(child, ast.Import):
                found.update(
                    a.name for a in child.names if a.name.startswith("clip_ref")
                )
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("clip_ref"):
                    found.add(target)
                    # "from clip_ref.toy import data": a submodule, if one exists
                    for alias in child.names:
                        candidate = f"{target}.{alias.name}"
                        if candidate in MODULES:
                            found.add(candidate)
            visit(child)

    visit(ast.parse(path.read_text()))
    found.discard(name)
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _is_toy(name: str) -> bool:
    return name == "clip_ref.toy" or name.startswith("clip_ref.toy.")


def _is_reference(name: str) -> bool:
    return not _is_toy(name) and name != "clip_ref.cli"


def test_the_import_reader_resolves_relative_imports():
    # what the checks below rely on: relative and submodule imports are seen
    assert {"clip_ref.train", "clip_ref.toy.data"} <= GRAPH["clip_ref.toy.runs"]
    assert {"clip_ref.toy", "clip_ref.finetune"} <= GRAPH["clip_ref.cli"]
    assert "clip_ref.cli" not in GRAPH["clip_ref.train"]  # only its script entry


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _is_reference(m)))
def test_the_reference_never_imports_the_toy_layer_or_the_command_line(module):
    upward = sorted(m for m in GRAPH[module] if not _is_reference(m))
    assert not upward, f"{module} imports {upward}: the reference must not"


def test_the_toy_layer_never_imports_the_command_line():
    offenders = sorted(m for m in MODULES if _is_toy(m) and "clip_ref.cli" in GRAPH[m])
    assert not offenders


def _cycle() -> list[str] | None:
    """One import cycle among the package's modules, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        # a package's __init__ runs before its submodules: importing clip_ref.toy.data
        # imports clip_ref.toy (and clip_ref) first
        for target in sorted(t for t in GRAPH.get(node, ()) if t in MODULES):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    for module in sorted(MODULES):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_cycle_inside_the_package():
    assert _cycle() is None, " -> ".join(_cycle())


def test_the_cycle_check_finds_a_cycle(monkeypatch):
    monkeypatch.setitem(
        GRAPH, "clip_ref.loss", GRAPH["clip_ref.loss"] | {"clip_ref.train"}
    )
    assert _cycle() is not None


def test_importing_clip_ref_loads_neither_the_toy_layer_nor_the_command_line():
    code = (
        "import sys, clip_ref; "
        "print(sorted(m for m in sys.modules if m.startswith(('clip_ref.toy', "
        "'clip_ref.cli'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
