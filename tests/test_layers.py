"""The house in layers: every import in the package (those inside functions too) points down.

    tasks  <  core  <  patterns  <  agent  <  studies  <  widgets, plots  <  cli, bench

No import cycle, no module reaching into another's ``_private`` names, task generators free of torch.
``import_graph`` reads the source with ``ast``; nothing is imported to build it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import workbench

PACKAGE = Path(workbench.__file__).parent
LAYERS = {"tasks": 0, "core": 1, "pattern": 2, "agent": 3, "studies": 4, "ui": 5, "entry": 6}
UI, ENTRY = {"widgets", "plots"}, {"cli", "bench", "__main__"}


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name (``workbench.core.train``) of every module under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _targets(mod: str, path: Path, node, modules) -> list[tuple[str, str | None, str | None]]:
    """(imported module, imported name or None, local name bound to a module or None) per imported name."""
    if isinstance(node, ast.Import):
        return [(a.name, None, a.asname) for a in node.names if a.name.split(".")[0] == "workbench"]
    base = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    if node.level:
        parts = base.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base.split(".")[0] != "workbench":
        return []
    return [(f"{base}.{a.name}", None, a.asname or a.name) if f"{base}.{a.name}" in modules
            else (base, a.name, None) for a in node.names]


def import_graph(root: Path = PACKAGE) -> tuple[dict[str, set[str]], list[str]]:
    """Each module's imports of other package modules, and the private names reached across modules."""
    modules = module_names(root)
    graph, private = {m: set() for m in modules}, []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        aliases = {}  # local name -> package module bound to it
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target, name, local in _targets(mod, path, node, modules):
                if local and target in modules:
                    aliases[local] = target
                while target not in modules and "." in target:
                    target = target.rpartition(".")[0]
                if target != mod and target in modules:
                    graph[mod].add(target)
                if name and name.startswith("_") and not name.startswith("__") and target != mod:
                    private.append(f"{mod} imports {target}.{name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and aliases.get(node.value.id, mod) != mod):
                private.append(f"{mod} reads {aliases[node.value.id]}.{node.attr}")
    return graph, private


def layer(mod: str) -> int:
    parts = mod.split(".")
    if len(parts) == 1:
        return LAYERS["entry"]  # workbench/__init__: lazy names only
    head = parts[1]
    if head in ("tasks", "core", "agent", "studies"):
        return LAYERS[head]
    return LAYERS["ui"] if head in UI else LAYERS["entry"] if head in ENTRY else LAYERS["pattern"]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
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


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Imports that point up a layer, or into an entry point."""
    bad = []
    for mod, deps in graph.items():
        for dep in deps:
            if layer(dep) > layer(mod):
                bad.append(f"{mod} (layer {layer(mod)}) imports {dep} (layer {layer(dep)})")
    return sorted(bad)


def test_no_import_cycle():
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_imports_point_down():
    graph, _ = import_graph()
    assert upward(graph) == []


def test_no_private_names_across_modules():
    _, private = import_graph()
    assert private == []


def test_tasks_import_neither_torch_nor_the_rest():
    for mod, path in module_names(PACKAGE).items():
        if layer(mod) != LAYERS["tasks"]:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "torch" for n in names), f"{mod} imports torch"
    graph, _ = import_graph()
    assert all(layer(d) == 0 for m, deps in graph.items() if layer(m) == 0 for d in deps)


@pytest.mark.parametrize("graph, expect", [
    ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
])
def test_cycle_finder(graph, expect):
    assert cycles(graph) == expect


def test_layer_rule_sees_an_upward_import():
    assert upward({"workbench.core.train": {"workbench.prune"}, "workbench.prune": set()})
    assert upward({"workbench.prune": {"workbench.bench"}, "workbench.bench": set()})
    assert not upward({"workbench.prune": {"workbench.core.train"}, "workbench.core.train": set()})


def test_private_reach_is_seen(tmp_path):
    pkg = tmp_path / "workbench"
    (pkg / "core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("def _hidden():\n    return 1\n")
    (pkg / "b.py").write_text("from workbench.core import a\nfrom workbench.core.a import _hidden\n\n"
                              "def f():\n    return a._hidden()\n")
    graph, private = import_graph(pkg)
    assert graph["workbench.b"] == {"workbench.core.a"}
    assert private == ["workbench.b imports workbench.core.a._hidden", "workbench.b reads workbench.core.a._hidden"]
