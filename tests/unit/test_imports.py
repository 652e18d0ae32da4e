"""No import circles among netkit's modules (issue 11, item 5).

Every module under netkit/ is parsed with `ast` (nothing is imported), and
every import statement in it counts: at module level, inside functions and
methods, inside `try`. Only imports under `if TYPE_CHECKING:` are left out:
they never run.

An import names the modules it binds: `import a.b` -> a.b; `from a import
b` -> a.b when a/b is a module, else a; relative imports are resolved
against the importing module. The packages an import passes through on its
way (a's __init__ for `import a.b`) are not edges: a package __init__ that
imports its submodules lazily would otherwise put every module on a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "netkit"


def module_names() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Import nodes of `tree`, skipping the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The netkit modules that module `name` (at `path`) imports."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                parent = name.split(".")
                if not is_package:
                    parent = parent[:-1]
                parent = parent[:len(parent) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        out.update(t for t in targets if t in known and t != name)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Circles of `graph`, each as a path a -> ... -> a: for every strongly
    connected component, a shortest circle through each of its modules
    (duplicates dropped), so a fix that breaks one circle shows the next."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:                   # Tarjan, recursive: the graph is small
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
            if len(comp) > 1 or v in graph.get(v, ()):
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out: list[list[str]] = []
    for comp in components:
        for start in comp:
            circle = _circle(graph, comp, start)
            turn = circle.index(min(circle[:-1]))
            circle = circle[turn:-1] + circle[:turn] + [circle[turn]]
            if circle not in out:
                out.append(circle)
    return out


def _circle(graph: dict[str, set[str]], comp: list[str], start: str) -> list[str]:
    """A shortest circle through `start` inside its strongly connected component."""
    members = set(comp)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no circle in {comp}")


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "netkit.engine" in graph["netkit"]            # the lazy __getattr__ of netkit/
    assert "netkit.engine" not in graph["netkit.capture.session"]   # TYPE_CHECKING only


def test_find_cycles_reports_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import circles among netkit modules:\n" + "\n".join(
        "  " + " -> ".join(c) for c in cycles)


def _closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_the_engine_speaks_to_the_resolver_only_through_its_client():
    reached = _closure(import_graph(), "netkit.engine")
    assert "netkit.dns.client" in reached
    assert not reached & {"netkit.dns.daemon", "netkit.dns.server", "netkit.agent.server",
                          "netkit.agent.cluster_sync"}


# the engine side: what netkit/dns/ must not import (the package rule of issue 11, item 5)
ENGINE_SIDE = ("netkit.engine", "netkit.agent", "netkit.swarm", "netkit.cluster", "netkit.scope",
               "netkit.actions", "netkit.networks", "netkit.endpoints", "netkit.containers",
               "netkit.processes", "netkit.nodes", "netkit.system", "netkit.resolver",
               "netkit.fwsync")


def test_dns_imports_nothing_of_the_engine_agent_or_swarm():
    """Not directly, nor through any module it imports: the node agent talks to the
    resolver through netkit.dns.client, never the other way round."""
    graph = import_graph()
    bad = sorted((m, t) for m in graph if m == "netkit.dns" or m.startswith("netkit.dns.")
                 for t in _closure(graph, m)
                 if any(t == p or t.startswith(p + ".") for p in ENGINE_SIDE))
    assert not bad, "\n".join(f"{m} reaches {t}" for m, t in bad)
