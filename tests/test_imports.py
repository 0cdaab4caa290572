"""The layout's import rules, checked on the source (every import statement, lazy ones too).

* ``quant`` (the generic QAT and compression library) imports no network family and no study:
  no ``models``, no ``experiments`` (nor ``hw``/``sim``: it hands a directory to them).
* ``models`` (the families) import no ``hw``, ``sim`` or ``experiments``.
* ``hw`` imports no ``quant``, no ``models`` and no ``experiments``.
* No package but the CLI imports ``experiments`` (the top floor).
* No module imports itself back through others: no import circle among the project's modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("qphy", "models", "quant", "hw", "sim", "experiments", "bitstreams")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module that ``name`` denotes (its nearest enclosing module), if any."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> set[str]:
    """Project modules ``module`` imports anywhere in its body (``from a import b`` counts as
    ``a.b`` when that is a module, else ``a``)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        found |= {m for m in map(_resolve, names) if m is not None and m != module}
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _top(module: str) -> str:
    return module.split(".")[0]


RULES = {
    "quant": {"models", "experiments", "hw", "sim"},
    "models": {"hw", "sim", "experiments"},
    "hw": {"quant", "models", "experiments"},
    "sim": {"quant", "models", "experiments"},
    "bitstreams": {"quant", "models", "experiments"},
}


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_follow_the_layout(package):
    bad = sorted(
        f"{m} -> {dep}"
        for m, deps in GRAPH.items()
        if _top(m) == package
        for dep in deps
        if _top(dep) in RULES[package]
    )
    assert bad == [], f"{package} must not import {sorted(RULES[package])}: {bad}"


def test_only_the_cli_imports_experiments():
    bad = sorted(
        f"{m} -> {dep}"
        for m, deps in GRAPH.items()
        if _top(m) != "experiments" and m != "qphy.cli"
        for dep in deps
        if _top(dep) == "experiments"
    )
    assert bad == []


def test_no_import_circle_between_modules():
    # Tarjan's strongly connected components over the module graph; any component of more
    # than one module is a circle (a module importing itself is not counted: _imports drops it).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert circles == [], f"import circles: {circles}"


def test_the_checker_sees_lazy_imports_and_circles():
    """The checker itself: a lazy import inside a function is an edge (qphy.flow builds through
    hw only inside its functions), and the graph has the families' known edges."""
    assert "hw.runner" in GRAPH["qphy.flow"]
    assert "models.detector.config" in GRAPH["models.detector.target"]
    assert "quant.trainer" in GRAPH["models.detector.train"]
