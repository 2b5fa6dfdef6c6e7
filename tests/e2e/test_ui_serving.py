"""The web UI's files from a real ``flwd :serve``: ``/``, ``/ui/<path>``, their security
headers and validators, paths that are not the UI's, ``--ui=false`` and ``FLWD_UI``;
and ``GET /server`` (the status page's facts)."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from flwd import __version__, ui
from flwd.http._ui import CONTENT_SECURITY_POLICY
from tests.conftest import run_cli

DEV = {"Authorization": "Bearer dev-token"}


def _secured(response: httpx.Response) -> None:
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def raw_get(url: str, target: str) -> tuple[int, bytes]:
    """A request line sent exactly as written (http.client does not normalise ``..``)."""
    parsed = urlparse(url)
    assert parsed.hostname is not None and parsed.port is not None
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_shell_and_its_files_are_served_without_a_token(server_factory: Any) -> None:
    server = server_factory()  # not --dev: the UI's files need no token, the API does
    index = httpx.get(f"{server.url}/", timeout=30)
    assert index.status_code == 200, index.text
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert index.headers["Cache-Control"] == "no-cache"
    release = ui.release()
    assert f'<script type="module" src="/ui/~{release}/js/app.js">' in index.text
    assert "/ui/js/" not in index.text and "/ui/css/" not in index.text
    _secured(index)
    for path, kind in (("/ui/js/app.js", "text/javascript; charset=utf-8"),
                       ("/ui/css/app.css", "text/css; charset=utf-8"),
                       ("/ui/index.html", "text/html; charset=utf-8")):
        response = httpx.get(server.url + path, timeout=30)
        assert response.status_code == 200 and response.headers["content-type"] == kind, path
        _secured(response)
    assert httpx.get(f"{server.url}/jobs", timeout=30).status_code == 401


def test_an_unchanged_file_is_a_304_by_its_etag(dev_server: Any) -> None:
    first = httpx.get(f"{dev_server.url}/ui/js/app.js", timeout=30)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and len(etag) > 10
    again = httpx.get(f"{dev_server.url}/ui/js/app.js", headers={"If-None-Match": etag},
                      timeout=30)
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag and again.headers["Cache-Control"] == "no-cache"
    _secured(again)
    other = httpx.get(f"{dev_server.url}/ui/js/app.js", headers={"If-None-Match": '"other"'},
                      timeout=30)
    assert other.status_code == 200 and other.content == first.content
    head = httpx.head(f"{dev_server.url}/", timeout=30)
    assert head.status_code == 200 and head.content == b"" and head.headers["ETag"]


def test_a_file_under_the_current_release_is_kept_for_good(dev_server: Any) -> None:
    release = ui.release()
    plain = httpx.get(f"{dev_server.url}/ui/js/app.js", timeout=30)
    current = httpx.get(f"{dev_server.url}/ui/~{release}/js/app.js", timeout=30)
    assert current.status_code == 200 and current.content == plain.content
    assert current.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert current.headers["content-type"] == "text/javascript; charset=utf-8"
    _secured(current)
    # A page loaded before an upgrade asks for its old release: it gets today's file,
    # revalidated on every use (never kept for good under a name it does not belong to).
    older = httpx.get(f"{dev_server.url}/ui/~0123456789abcdef/js/app.js", timeout=30)
    assert older.status_code == 200 and older.content == plain.content
    assert older.headers["Cache-Control"] == "no-cache"
    # Its relative imports stay under the release, which the shell names.
    assert "from './api.js'" in current.text
    # Answered by the fast path (_fast_ui) as the app answers it (a query takes the app's).
    by_app = httpx.get(f"{dev_server.url}/ui/~{release}/js/app.js?via=app", timeout=30)
    assert (by_app.status_code, by_app.content) == (current.status_code, current.content)
    ignored = {"date", "x-request-id"}
    assert ({k: v for k, v in current.headers.items() if k not in ignored}
            == {k: v for k, v in by_app.headers.items() if k not in ignored})
    for answer in (current, by_app):
        revalidated = httpx.get(str(answer.url), timeout=30,
                                headers={"If-None-Match": answer.headers["ETag"]})
        assert revalidated.status_code == 304
        assert "content-type" not in revalidated.headers
        assert "content-length" not in revalidated.headers or \
            revalidated.headers["content-length"] == "0"


NOT_UI = ["/ui/../flwd.db", "/ui/..%2f..%2fpyproject.toml", "/ui/%2e%2e/__init__.py",
          "/ui/js/../../__init__.py", "/ui/.hidden", "/ui/nope.js", "/ui/__init__.py",
          "/ui/js/app.js%00.css", "/ui/js", "/ui/",
          "/ui/js/app.js/", "/ui/js%5capp.js", "/ui/~abc/../flwd.db", "/ui/~abc/",
          "/ui/~abc", "/ui/~xyz/js/app.js", "/ui/~abc/~abc/js/app.js", "/ui/~abc/.hidden"]


def test_a_path_that_is_not_a_ui_file_is_404(dev_server: Any) -> None:
    for target in NOT_UI:
        status, body = raw_get(dev_server.url, target)
        assert status == 404, (target, body[:200])
        assert b"import" not in body and b"[project]" not in body, target
    # Werkzeug merges slashes with a redirect (every route does): to a path that is 404.
    for target in ("/ui//etc/passwd", "/ui/%2fetc%2fpasswd"):
        status, body = raw_get(dev_server.url, target)
        assert status == 308 and b"/ui/etc/passwd" in body, target
    assert raw_get(dev_server.url, "/ui/etc/passwd")[0] == 404


def test_an_unknown_file_is_a_problem_with_the_security_headers(dev_server: Any) -> None:
    missing = httpx.get(f"{dev_server.url}/ui/js/nope.js", timeout=30)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["code"] == "ui.file.not.found"
    _secured(missing)


@pytest.mark.parametrize(("flags", "env"), [(("--ui=false",), {}), ((), {"FLWD_UI": "false"}),
                                            (("--ui=false",), {"FLWD_UI": "true"})])
def test_without_the_ui_its_routes_are_404_and_the_api_is_unchanged(
        server_factory: Any, flags: tuple[str, ...], env: dict[str, str]) -> None:
    server = server_factory("--dev", *flags, **env)
    for path in ("/", "/ui/js/app.js", "/ui/index.html"):
        response = httpx.get(server.url + path, timeout=30)
        assert response.status_code == 404, path
        assert response.json()["code"] == "route.not.found"
    assert httpx.get(f"{server.url}/jobs", headers=DEV, timeout=30).status_code == 200
    assert httpx.get(f"{server.url}/server", headers=DEV, timeout=30).json()["ui"] is False


def test_a_bad_flwd_ui_is_one_line(workspace: Path, data_dir: Path) -> None:
    done = run_cli([":serve", "--bind", "127.0.0.1:0"], cwd=workspace, data_dir=data_dir,
                   timeout=60, FLWD_UI="maybe")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "FLWD_UI='maybe' is not a boolean" in done.stderr


def test_server_says_what_it_is_and_nothing_secret(server_factory: Any, workspace: Path,
                                                   data_dir: Path) -> None:
    created = run_cli([":tokens", "create", "--name", "reader", "--scope", "jobs:read"],
                      cwd=workspace, data_dir=data_dir)
    token = created.stdout.strip()
    server = server_factory()
    assert httpx.get(f"{server.url}/server", timeout=30).status_code == 401
    response = httpx.get(f"{server.url}/server", timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    info = response.json()
    assert set(info) == {"version", "profile", "runtime", "ui", "dev", "workspace",
                         "scripts_root", "started_at", "uptime_seconds", "grace_seconds",
                         "public_url"}
    assert info["public_url"] is None  # no --public-url
    assert info["grace_seconds"] == 5  # FLWD_GRACE's default
    assert info["version"] == __version__ and info["profile"] == "secure"
    assert info["runtime"] == "none"  # started with --no-containers
    assert info["ui"] is True and info["dev"] is False
    assert info["workspace"] == str(workspace.resolve())
    assert info["scripts_root"] == str((workspace / "scripts").resolve())
    assert info["started_at"].endswith("Z") and info["uptime_seconds"] >= 0
    later = httpx.get(f"{server.url}/server", timeout=30,
                      headers={"Authorization": f"Bearer {token}"}).json()
    assert later["uptime_seconds"] >= info["uptime_seconds"]
    assert token not in response.text and str(data_dir) not in response.text


def test_server_says_the_grace_a_cancel_gives(server_factory: Any) -> None:
    # The run page counts TERM → grace → KILL down with this number.
    server = server_factory("--dev", FLWD_GRACE="7.5")
    info = httpx.get(f"{server.url}/server", headers=DEV, timeout=30).json()
    assert info["grace_seconds"] == 7.5
