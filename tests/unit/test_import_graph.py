"""The package layering ARCHITECTURE.md draws, checked on the code's own imports.

Every `import` counts, inside functions too (a local import hides a dependency, it does not
remove it). Packages are the first level under `marketplace/`; the kernel modules (db, money,
errors, …) sit below everything.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "marketplace"
FACES = {"buyers", "vendors", "admin", "api"}
# Cycles older than this test, outside the saga (strongly connected packages). The list may
# only shrink: a new cycle, or one of these gone without being struck off, fails the test.
KNOWN_CYCLES = {
    # the Vendor lives in catalog, stock columns on its Variant, index hooks in its services
    frozenset({"accounts", "catalog", "inventory", "search"}),
}


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "marketplace" or len(parts) < 2:
        return None
    candidate = ROOT / parts[1]
    return parts[1] if candidate.is_dir() else None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT).parts
        if len(relative) < 2:
            continue  # kernel modules at the top of the package
        source = relative[0]
        for module in _imports(path):
            target = _package_of(module)
            if target is not None and target != source:
                graph[source].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(set(graph) | {t for targets in graph.values() for t in targets}):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_packages():
    graph = package_graph()
    assert "orders" in graph["settlement"] and "payments" in graph["settlement"]
    assert "catalog" in graph["api"]


def test_no_package_cycles_but_the_known_ones():
    assert _cycles(package_graph()) == KNOWN_CYCLES


def test_payments_is_the_stripe_boundary_and_never_calls_back_up():
    graph = package_graph()
    assert graph["payments"] & {"orders", "payouts", "settlement", "inventory"} == set()


def test_the_saga_packages_point_one_way():
    """settlement → orders, payouts → payments: nothing below calls back up into the saga."""
    graph = package_graph()
    assert graph["orders"] & {"payouts", "settlement"} == set()
    assert graph["payouts"] & {"settlement", "inventory"} == set()
    importers = {package for package, targets in graph.items() if "settlement" in targets}
    assert importers <= FACES, importers


def test_domains_never_import_faces_and_faces_never_import_each_other():
    graph = package_graph()
    for package, targets in graph.items():
        if package in FACES:
            assert targets & (FACES - {package}) == set(), package
        else:
            assert targets & FACES == set(), package
