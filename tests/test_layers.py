"""The code keeps its shape: routes -> services -> store, no import circles, small modules.

Read from the source (every import that runs, a function's own included), so a shortcut taken
anywhere, even one hidden in a function body, is found here rather than in review.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from handoff.store import operations
from schemas.alerts import ALERT_STATUSES
from schemas.handoffs import HANDOFF_STATUSES

ROOT = Path(__file__).parent.parent
PACKAGES = ("handoff", "schemas", "adapters")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


MODULES = sources()


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node that runs: all but the bodies of `if TYPE_CHECKING:` (imports for
    annotations only, which never execute)."""
    found: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def imports_of(name: str) -> set[str]:
    """The project modules `name` imports: `from a import b` counts as a.b when b is a module."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def importers(layer: str, of: tuple[str, ...]) -> list[str]:
    """Each `module -> imported` where a module of `layer` imports one of `of`."""
    return sorted(f"{m} -> {i}" for m, imported in GRAPH.items()
                  if m == layer or m.startswith(layer + ".")
                  for i in imported if any(i == o or i.startswith(o + ".") for o in of))


def test_routes_never_reach_past_the_services_into_the_store() -> None:
    assert importers("handoff.api", ("handoff.store",)) == []


def test_adapters_never_touch_the_store() -> None:
    assert importers("adapters", ("handoff.store",)) == []


def test_the_store_knows_nothing_of_the_layers_above_it() -> None:
    above = ("handoff.api", "handoff.services", "adapters", "handoff.app", "handoff.mcp")
    assert importers("handoff.store", above) == []


def test_no_module_imports_itself_through_a_circle() -> None:
    """Strongly connected groups of the import graph (Tarjan): each must be one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert circles == []


def test_no_module_is_longer_than_the_limit() -> None:
    lengths = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


# The Redis clients the store's operations are made of, below them.
CLIENTS = ("handoff.store.connection", "handoff.store.multiplex", "handoff.store.multiplex_line")


def store_classes() -> list[type]:
    found = []
    for name in sorted(MODULES):
        if name.startswith("handoff.store.") and name not in CLIENTS:
            module = importlib.import_module(name)
            found += [c for _, c in inspect.getmembers(module, inspect.isclass)
                      if c.__module__ == name]
    return found


@pytest.mark.parametrize("cls", store_classes(), ids=lambda c: c.__qualname__)
def test_every_store_operation_answers_an_outage_as_store_unavailable(cls: type) -> None:
    """Each public coroutine method of a store class goes through `operations` (which turns
    "Redis is away" into a 503), so no caller above has to map Redis errors."""
    unmarked = [name for name, member in vars(cls).items()
                if not name.startswith("_")
                and inspect.iscoroutinefunction(getattr(member, "__func__", member))
                and not getattr(getattr(member, "__func__", member), operations.MARK, False)]
    assert unmarked == []


def test_the_api_offers_the_statuses_the_store_keeps() -> None:
    from handoff.store.alerts import STATUSES
    from handoff.store.handoffs import HANDOFF_STATUSES as STORED

    assert HANDOFF_STATUSES == STORED
    assert ALERT_STATUSES == STATUSES
