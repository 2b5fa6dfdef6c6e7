"""The seams of docs/architecture.md, checked on the source (issue 13).

Each rule here once had exceptions all over the code base; this keeps them from
coming back: a handler that opens the database, a verb that imports another
package's private module, a 600-line closure.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flwd", "actors")
#: The completion fast path may import private modules: the faces cost start-up time.
PRIVATE_IMPORT_ALLOWED = {"flwd/_entry.py"}
#: Where the Core DB's location and its SQL may appear.
STORE_PLACES = ("flwd/store/", "flwd/settings.py")
MAX_FUNCTION_LINES = 120
MAX_HTTP_MODULE_LINES = 300


def _modules() -> Iterator[tuple[str, ast.Module, str]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            yield path.relative_to(ROOT).as_posix(), ast.parse(text), text


def _module_name(relative: str) -> str:
    name = relative.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def _package_of(module: str) -> str:
    """``flwd.store._read`` → ``flwd.store``; top-level modules are their own package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def _top_level_imports(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """Absolute names imported when the module is imported (not in functions nor
    under ``if TYPE_CHECKING:``)."""
    base = module if is_package else module.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                target = ".".join(parts[:len(parts) - node.level + 1])
                name = f"{target}.{node.module}" if node.module else target
            else:
                name = node.module or ""
            # ``from pkg import mod`` imports the module; ``from pkg import name``
            # the package (the caller resolves each to the longest module name).
            for alias in node.names:
                yield node.lineno, f"{name}.{alias.name}"


def _all_imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def test_no_module_imports_another_packages_private_module() -> None:
    found = []
    for relative, tree, _ in _modules():
        if relative in PRIVATE_IMPORT_ALLOWED:
            continue
        own = _package_of(_module_name(relative))
        for line, name in _all_imports(tree):
            parts = name.split(".")
            if parts[0] not in PACKAGES:
                continue
            for index, part in enumerate(parts[1:], 1):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:index])
                    if own != owner and not own.startswith(owner + "."):
                        found.append(f"{relative}:{line} imports {name}")
                    break
    assert found == []


def test_the_core_db_is_reached_only_through_the_store() -> None:
    pattern = re.compile(r"\bsqlite3\b|\bdb_path\b|\bSELECT\b.*\bFROM\b|\bINSERT INTO\b"
                         r"|\bDELETE FROM\b|\bUPDATE \w+ SET\b|\bopen_reader\b")
    found = [f"{relative}:{number}: {line.strip()}"
             for relative, _, text in _modules() if not relative.startswith(STORE_PLACES)
             for number, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_no_function_is_longer_than_the_limit() -> None:
    found = [f"{relative}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
             for relative, tree, _ in _modules() for node in ast.walk(tree)
             if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
             and node.end_lineno is not None
             and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert found == []


def test_http_modules_stay_small() -> None:
    found = [f"{relative} ({len(text.splitlines())} lines)" for relative, _, text in _modules()
             if relative.startswith("flwd/http/")
             and len(text.splitlines()) > MAX_HTTP_MODULE_LINES]
    assert found == []


def test_there_is_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    names = {_module_name(relative) for relative, _, _ in _modules()}
    for relative, tree, _ in _modules():
        module = _module_name(relative)
        edges = graph.setdefault(module, set())
        for _, name in _top_level_imports(tree, module, relative.endswith("__init__.py")):
            # "from flwd.store import Store" names a package, or a module of it.
            while name and name not in names:
                name = name.rpartition(".")[0]
            if name and name != module:
                edges.add(name)
    # A package's face imports its own modules, and they import siblings through it
    # only by mistake: every cycle is reported, the face's included.
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


@pytest.mark.parametrize("package", ["flwd/store", "actors"])
def test_lower_layers_do_not_import_the_engine_or_its_clients(package: str) -> None:
    upper = ("flwd.engine", "flwd.http", "flwd.cli", "flwd.sources", "flwd.execute")
    found = [f"{relative}:{line} imports {name}"
             for relative, tree, _ in _modules() if relative.startswith(package)
             for line, name in _all_imports(tree) if name.startswith(upper)]
    assert found == []


def _runtime_imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every absolute import that can run, in functions too (not under TYPE_CHECKING)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for statement in node.body for child in ast.walk(statement))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.lineno, node.module


def test_packages_depend_on_each_other_without_a_cycle() -> None:
    """Function-level imports included: a cycle hidden in a function is still a cycle."""
    graph: dict[str, set[str]] = {}
    for relative, tree, _ in _modules():
        own = _package_of(_module_name(relative))
        for _, name in _runtime_imports(tree):
            target = _package_of(name)
            if target.split(".")[0] in PACKAGES and target != own:
                graph.setdefault(own, set()).add(target)
    cycles = []
    for package, targets in sorted(graph.items()):
        for target in sorted(targets):
            if package in _reachable(graph, target):
                cycles.append(f"{package} -> {target} -> … -> {package}")
    assert cycles == []


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        for target in graph.get(node, ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen
