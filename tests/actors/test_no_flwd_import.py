"""actors/ is a generic library: it must never depend on the application."""

import ast
import re
from pathlib import Path

import actors

PACKAGE_DIR = Path(actors.__file__).parent


def test_no_module_in_actors_imports_flwd() -> None:
    sources = sorted(PACKAGE_DIR.rglob("*.py"))
    assert sources, "no sources found"
    offenders = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(name == "flwd" or name.startswith("flwd.") for name in names):
                offenders.append(f"{path.name}:{node.lineno}")
        # Dynamic imports (importlib, __import__) would escape the AST check.
        if re.search(r"""['"]flwd(\.|['"])""", text):
            offenders.append(f"{path.name}: string mentioning the flwd package")
    assert offenders == []
