"""kernels/ is the bottom of the arrows (scaling -> model -> kernels): it imports nothing of the
project above it, and its modules import each other without a circle, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

KERNELS = Path(__file__).resolve().parents[2] / "kernels"
ABOVE_KERNELS = ("model", "scaling", "analysis", "core", "sweeps")


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports anywhere in its body (top level, inside functions, under TYPE_CHECKING)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def kernels_graph() -> dict[str, set[str]]:
    modules = {f"kernels.{path.stem}": path for path in KERNELS.glob("*.py") if path.stem != "__init__"}
    return {name: {imported for imported in imported_modules(path) if imported in modules} for name, path in modules.items()}


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as [a, b, ..., a], or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for successor in sorted(graph[node]):
            found = visit(successor, path + [node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_kernels_modules_import_each_other_without_a_cycle():
    graph = kernels_graph()
    assert "kernels.reference" in graph["kernels.reference_op"]  # the graph does see imports
    assert cycle_in(graph) is None, f"import cycle: {' -> '.join(cycle_in(graph))}"


def test_cycle_finder_finds_a_cycle():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_kernels_import_nothing_above_them():
    for path in sorted(KERNELS.glob("*.py")):
        above = sorted(name for name in imported_modules(path) if name.split(".")[0] in ABOVE_KERNELS)
        assert not above, f"kernels/{path.name} imports {', '.join(above)}"
