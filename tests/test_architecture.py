"""The package's floor plan: no import cycles, and imports only point down the layers (README "Architecture").

Every ``import`` / ``from … import`` in ``lanepipe/`` counts, including those inside functions (a lazy import
is still a dependency). Only explicit imports count: importing ``a.b.c`` runs ``a/b/__init__.py`` too, but a
package's ``__init__`` importing its own children is the normal shape, not a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lanepipe"

#: Layers bottom to top; a module may import its own layer and the ones below, never above.
LAYERS: list[tuple[str, ...]] = [
    ("lanepipe.errors", "lanepipe.types"),
    ("lanepipe.geometry", "lanepipe.lanes"),
    ("lanepipe.io", "lanepipe.metrics", "lanepipe.monitoring", "lanepipe.stats", "lanepipe.torchkit"),
    ("lanepipe.segment.config", "lanepipe.edit.config", "lanepipe.verify.config", "lanepipe.predict.config",
     "lanepipe.plugins", "lanepipe.registry"),
    ("lanepipe.config",),
    ("lanepipe.segment", "lanepipe.edit", "lanepipe.verify", "lanepipe.predict", "lanepipe.sample",
     "lanepipe.viz"),
    ("lanepipe.engine",),
    ("lanepipe.actors",),
    ("lanepipe.datasets", "lanepipe.stages"),
    ("lanepipe.train",),
    ("lanepipe.pipeline",),
    ("lanepipe.serve",),
    ("lanepipe.cli", "lanepipe.progress"),
    ("lanepipe.testing",),  # tiny fixtures for tests and presets: may use anything
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """``module -> {lanepipe modules it imports}`` (resolved to the deepest existing module)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join([*pkg, base] if base else pkg)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for target in targets:
                mod = target
                while mod and mod not in mods:
                    mod = mod.rpartition(".")[0]
                if mod.startswith("lanepipe") and mod != name:
                    graph[name].add(mod)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer_of(module: str) -> int:
    best, depth = -1, -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = i, prefix.count(".")
    return best


def test_no_import_cycles() -> None:
    assert find_cycles(import_graph()) == []


def test_every_module_has_a_layer() -> None:
    assert [m for m in _modules() if m != "lanepipe" and layer_of(m) < 0] == []


def test_imports_only_point_down() -> None:
    upward = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
              for m, targets in import_graph().items() for t in sorted(targets)
              if m != "lanepipe" and layer_of(t) > layer_of(m)]
    assert upward == []


def test_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
