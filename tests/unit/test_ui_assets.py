"""``flwd.ui``: which files are the web UI, and that a wheel carries every one of them.

The e2e side (headers, 304, routes) is tests/e2e/test_ui_serving.py.
"""

from __future__ import annotations

import glob
import re
import tomllib
from pathlib import Path

import pytest

import flwd.ui
from flwd.ui import CONTENT_TYPES, STATIC_DIR, asset

ROOT = Path(__file__).resolve().parents[2]


def test_the_shell_and_its_modules_are_served_with_their_types() -> None:
    index = asset("index.html")
    assert index is not None and index.content_type == "text/html; charset=utf-8"
    assert b"/ui/js/app.js" in index.body and b"/ui/css/app.css" in index.body
    script = asset("js/app.js")
    assert script is not None and script.content_type == "text/javascript; charset=utf-8"
    style = asset("css/app.css")
    assert style is not None and style.content_type == "text/css; charset=utf-8"
    assert index.etag.startswith('"') and index.etag.endswith('"')
    assert asset("index.html") == index  # the same bytes, the same validator


def test_the_shell_preloads_the_modules_of_a_first_load() -> None:
    """The shell names (``modulepreload``) exactly the modules app.js imports statically,
    and theirs: the browser fetches them all at once instead of discovering each import
    one round trip after another, and fetches nothing a first load does not run (the
    other pages' modules are imported when they are first shown)."""
    index = asset("index.html")
    assert index is not None
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/ui/(js/[^"]+)">',
                               index.body.decode()))
    static_import = re.compile(r"^import .* from '\./([a-z]+\.js)';$", re.M)
    needed: set[str] = set()
    todo = ["app.js"]
    while todo:
        name = todo.pop()
        text = (STATIC_DIR / "js" / name).read_text()
        for found in static_import.findall(text):
            if f"js/{found}" not in needed:
                needed.add(f"js/{found}")
                todo.append(found)
    assert preloaded == needed
    # Every other module is a page's, imported by app.js when it is first shown.
    app = (STATIC_DIR / "js" / "app.js").read_text()
    lazy = set(re.findall(r"import\('\./([a-z]+\.js)'\)", app))
    modules = {path.name for path in (STATIC_DIR / "js").glob("*.js")}
    reachable = set(needed)
    for name in lazy:
        todo = [name]
        while todo:
            module = todo.pop()
            reachable.add(f"js/{module}")
            todo += [found for found in static_import.findall(
                (STATIC_DIR / "js" / module).read_text()) if f"js/{found}" not in reachable]
    assert {f"js/{name}" for name in modules} - {"js/app.js"} == reachable


@pytest.mark.parametrize("path", [
    "", "/", "/etc/passwd", "..", "../__init__.py", "js/../../__init__.py", "js/../index.html",
    "./index.html", "js//app.js", "js\\app.js", ".hidden.js", "js/.app.js", "index.html\0",
    "index.html/", "nope.html", "js", "../../../pyproject.toml", "__init__.py", "x" * 600 + ".js",
    "index.HTML.py", "ïndex.html", "%2e%2e/__init__.py"])
def test_nothing_but_a_file_of_the_ui_is_ever_answered(path: str) -> None:
    assert asset(path) is None


def test_a_symlink_out_of_the_static_folder_is_not_followed(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    static = tmp_path / "static"
    (static / "js").mkdir(parents=True)
    (static / "js" / "ok.js").write_text("ok")
    secret = tmp_path / "secret.js"
    secret.write_text("not yours")
    (static / "js" / "out.js").symlink_to(secret)
    (static / "js" / "in.js").symlink_to(static / "js" / "ok.js")
    (static / "loop.js").symlink_to(static / "loop.js")
    monkeypatch.setattr(flwd.ui, "STATIC_DIR", static.resolve())
    assert asset("js/out.js") is None
    assert asset("loop.js") is None
    linked = asset("js/in.js")
    assert linked is not None and linked.body == b"ok"


def test_an_edited_file_is_read_again_with_a_new_etag(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.css").write_text("a {}")
    monkeypatch.setattr(flwd.ui, "STATIC_DIR", tmp_path.resolve())
    first = asset("a.css")
    (tmp_path / "a.css").write_text("a { color: red }")
    second = asset("a.css")
    assert first is not None and second is not None
    assert second.body == b"a { color: red }" and second.etag != first.etag


def test_every_ui_file_is_package_data_of_a_wheel() -> None:
    # setuptools expands package-data patterns with glob(recursive=True) relative to the
    # package's folder: every file of the UI must match one (a wheel was checked by hand
    # to carry them; building one here would need the network for setuptools).
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["flwd.ui"]
    package = STATIC_DIR.parent
    shipped = {Path(found).relative_to(package).as_posix()
               for pattern in patterns
               for found in glob.glob(str(package / pattern), recursive=True)
               if Path(found).is_file()}
    files = {path.relative_to(package).as_posix()
             for path in STATIC_DIR.rglob("*") if path.is_file()}
    assert files and files <= shipped
    # Only files of the types the server answers (anything else would ship unserved).
    assert {Path(name).suffix for name in files} <= set(CONTENT_TYPES)
    assert any(name.startswith("flwd") for name in
               pyproject["tool"]["setuptools"]["packages"]["find"]["include"])


def test_the_shell_names_its_files_under_the_release() -> None:
    release = flwd.ui.release()
    assert release == flwd.ui.release() and len(release) == 16
    shell = flwd.ui.index()
    assert shell is not None
    assert f'src="/ui/~{release}/js/app.js"'.encode() in shell.body
    assert f'href="/ui/~{release}/css/app.css"'.encode() in shell.body
    assert shell.etag != flwd.ui.asset(flwd.ui.INDEX).etag  # type: ignore[union-attr]


def test_split_release() -> None:
    assert flwd.ui.split_release("~abc123/js/app.js") == ("abc123", "js/app.js")
    assert flwd.ui.split_release("js/app.js") == (None, "js/app.js")
    assert flwd.ui.split_release("~abc123") == (None, "~abc123")  # no file: not a release path
    assert flwd.ui.split_release("~XYZ/js/app.js") == (None, "~XYZ/js/app.js")
