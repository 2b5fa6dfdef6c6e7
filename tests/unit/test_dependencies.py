"""The runtime dependencies declared in pyproject.toml are exactly what flwd/ and actors/ import.

A package imported but not declared works only while some other dependency happens to pull
it in (quart and werkzeug came with quart-trio); a package declared but never imported is
dead weight a reader of the spec cannot explain. Packages the spec lists that flwd does not
use are explained in docs/design.md ("Dependencies"), which this test also checks.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Packages of the original specification that flwd does not import, each with the reason
#: docs/design.md gives. Declared nowhere (or only for tests), so a reader is not left guessing.
NOT_USED_AT_RUNTIME = {"aiodocker", "anyio", "trio-websocket"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(group: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return {_normalise(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in specs}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
                pending.extend(child.orelse)
                continue
            pending.append(child)
    return nodes


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for folder in ("flwd", "actors"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"flwd", "actors"}


def _distributions(top_levels: set[str]) -> dict[str, set[str]]:
    owners = importlib.metadata.packages_distributions()
    return {name: {_normalise(dist) for dist in owners.get(name, [])} for name in top_levels}


#: Extras whose packages flwd imports only for the feature they install (psycopg, for a
#: ``postgresql://`` Core DB, in flwd/store/postgres.py alone): declared there, not in
#: ``dependencies``.
RUNTIME_EXTRAS = ("postgres",)


def test_every_imported_package_is_declared() -> None:
    declared = _declared().union(*(_declared(extra) for extra in RUNTIME_EXTRAS))
    missing = {name: dists for name, dists in _distributions(_imported_top_levels()).items()
               if not dists & declared}
    assert not missing, ("imported but not declared in [project].dependencies or a runtime "
                         f"extra {RUNTIME_EXTRAS}: {missing}")


def test_a_runtime_extra_is_imported_by_its_own_module_only() -> None:
    # Everything else imports flwd.store, which opens a PostgresStore only for its URL: a
    # flwd on SQLite never loads psycopg (tests/e2e/test_cli_startup.py checks a run).
    importers = sorted(
        path.relative_to(ROOT).as_posix() for path in (ROOT / "flwd").rglob("*.py")
        if any(isinstance(node, ast.Import | ast.ImportFrom) and any(
            (alias.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
            == "psycopg" for alias in getattr(node, "names", []))
            for node in _runtime_nodes(ast.parse(path.read_text(), str(path)))))
    assert importers == ["flwd/store/postgres.py"], importers


def test_every_declared_package_is_imported() -> None:
    used = set().union(*_distributions(_imported_top_levels()).values())
    unused = _declared() - used
    assert not unused, f"declared but never imported by flwd/ or actors/: {unused}"


def test_packages_not_used_at_runtime_are_explained() -> None:
    assert not NOT_USED_AT_RUNTIME & _declared()
    assert "trio-websocket" in _declared("dev"), "trio-websocket is the tests' WebSocket client"
    design = (ROOT / "docs" / "design.md").read_text()
    section = design.split("## Dependencies", 1)[1]
    for name in NOT_USED_AT_RUNTIME:
        assert f"`{name}`" in section, f"docs/design.md does not say why {name} is not used"
