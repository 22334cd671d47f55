"""The package's layering: its parts (subpackages and top-level modules) import each other without a
cycle, and the stages that must run outside pytest never import it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_neuronperf

PACKAGE = Path(pytest_neuronperf.__file__).parent
NAME = PACKAGE.name
# The runner, the statistics and the gate are used by the plain Python API, without pytest.
PYTEST_FREE = ("runner", "stats", "gate", "spec", "backends", "baselines", "compile", "_util")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, lazily (inside functions) or not: a lazy import is a dependency too."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            elif node.module:
                source = node.module
            else:
                continue
            yield source
            # ``from pytest_neuronperf import model_index`` imports a module of the package's own.
            yield from (f"{source}.{alias.name}" for alias in node.names)


def _part(module: str) -> str | None:
    bits = module.split(".")
    return bits[1] if bits[0] == NAME and len(bits) > 1 else None


def part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        me = _part(_module_name(path))
        if me is None:
            continue
        deps = graph.setdefault(me, set())
        deps.update(p for p in map(_part, _imports(path)) if p is not None and p != me)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_two_parts_of_the_package_import_each_other() -> None:
    graph = part_graph()
    assert {"runner", "stats", "gate", "baselines", "session", "report", "spec", "config"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between parts of the package: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("part", PYTEST_FREE)
def test_stages_outside_pytest_never_import_it(part: str) -> None:
    offenders = sorted(
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if _part(_module_name(path)) == part and any(m.split(".")[0] in ("pytest", "_pytest") for m in _imports(path))
    )
    assert offenders == [], f"{part} must work without pytest, but these modules import it: {offenders}"


def test_empty_subpackage_inits_keep_start_up_cheap() -> None:
    # Every pytest run imports the plugin, and with it the __init__ of each subpackage on its path.
    for init in PACKAGE.glob("*/__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                   and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
        if init.parent.name != "backends":  # the backend registry's re-exports load only with a device
            assert imports == [], f"{init.relative_to(PACKAGE.parent)} imports at package import"
