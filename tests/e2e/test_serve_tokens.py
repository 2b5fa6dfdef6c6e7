"""Tokens change under a running server: revoked with the real CLI → refused on the next
request, minted → accepted, expired → 401 saying so, a broken file → the last good set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from flwd.tokens import digest
from tests.conftest import run_cli


def _mint(workspace: Path, data_dir: Path, name: str, *flags: str) -> str:
    created = run_cli([":tokens", "create", "--name", name, "--scope", "jobs:read", *flags],
                      cwd=workspace, data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def _jobs(url: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_a_token_revoked_while_serving_is_refused_on_the_next_request(
        server_factory: Any, workspace: Path, data_dir: Path) -> None:
    ci = _mint(workspace, data_dir, "ci")
    other = _mint(workspace, data_dir, "other")
    server = server_factory()
    assert _jobs(server.url, ci).status_code == 200
    revoked = run_cli([":tokens", "revoke", "ci"], cwd=workspace, data_dir=data_dir)
    assert revoked.returncode == 0, revoked.stderr
    refused = _jobs(server.url, ci)  # no restart, no waiting
    assert refused.status_code == 401
    assert refused.json()["detail"] == "unknown or revoked token"
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert _jobs(server.url, other).status_code == 200
    assert server.stop() == 0
    log = "".join(server.log)
    assert ci not in log and other not in log


def test_a_token_minted_while_serving_is_accepted_on_the_next_request(
        server_factory: Any, workspace: Path, data_dir: Path, tmp_path: Path) -> None:
    # One flag name for the file on both sides: --tokens FILE.
    tokens = tmp_path / "etc" / "tokens.json"
    server = server_factory("--tokens", str(tokens))  # no file yet: no token is accepted
    assert _jobs(server.url, "flwd_not-yet").status_code == 401
    token = _mint(workspace, data_dir, "late", "--tokens", str(tokens))
    assert _jobs(server.url, token).status_code == 200
    listed = run_cli([":tokens", "list", "--json", "--tokens", str(tokens)], cwd=workspace,
                     data_dir=data_dir)
    assert [entry["name"] for entry in json.loads(listed.stdout)] == ["late"]


def test_an_expired_token_gets_401_saying_it_expired(
        server_factory: Any, workspace: Path, data_dir: Path) -> None:
    fresh = _mint(workspace, data_dir, "fresh", "--expires", "30d")
    # A token whose expiry has passed (as every token's does in the end): written the way
    # `flwd :tokens create --expires` writes one, with a time already behind us.
    old = "flwd_an-old-token-whose-time-is-up"
    path = data_dir / "tokens.json"
    document = json.loads(path.read_text())
    document["tokens"].append({"name": "old", "sha256": digest(old), "scopes": ["jobs:read"],
                               "created_at": "2024-01-01T00:00:00Z",
                               "expires_at": "2024-01-31T00:00:00Z"})
    path.write_text(json.dumps(document))
    server = server_factory()
    assert _jobs(server.url, fresh).status_code == 200
    expired = _jobs(server.url, old)
    assert expired.status_code == 401
    assert expired.headers["content-type"].startswith("application/problem+json")
    assert expired.json()["detail"].startswith("the token expired at 2024-01-31T00:00:00Z")
    assert expired.headers["WWW-Authenticate"] == 'Bearer realm="flwd", error="invalid_token"'
    listed = run_cli([":tokens", "list", "--json"], cwd=workspace, data_dir=data_dir)
    assert [(e["name"], e["expired"]) for e in json.loads(listed.stdout)] == [
        ("fresh", False), ("old", True)]


def test_a_tokens_file_broken_mid_run_keeps_the_last_good_set(
        server_factory: Any, workspace: Path, data_dir: Path) -> None:
    ci = _mint(workspace, data_dir, "ci")
    server = server_factory()
    path = data_dir / "tokens.json"
    good = path.read_text()
    path.write_text(good[: len(good) // 2])  # a half-written edit
    for _ in range(5):
        assert _jobs(server.url, ci).status_code == 200  # served: no crash, no 500
        assert _jobs(server.url, "flwd_other").status_code == 401  # and no open door
    path.write_text(good)
    late = _mint(workspace, data_dir, "late")  # fixed: reloaded again
    assert _jobs(server.url, late).status_code == 200
    assert server.stop() == 0
    records = [json.loads(line) for line in server.log if line.startswith("{")]
    warnings = [r for r in records if r["level"] == "warning" and r["logger"] == "flwd.tokens"]
    assert len(warnings) == 1, warnings  # one line per bad version, not one per request
    assert warnings[0]["tokens_file"] == str(path) and "not valid JSON" in warnings[0]["reason"]
    assert any(r["msg"] == "tokens file reloaded" for r in records)
