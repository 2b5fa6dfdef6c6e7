"""A source's times read like a run's: RFC 3339 UTC strings everywhere a source is shown
(``GET /sources``, ``flwd :sources list --json``), as ``docs/openapi.json`` declares
(issue 12, item 14)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import REPO, run_cli

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def times(document: dict[str, Any]) -> list[Any]:
    return [document["created_at"], document["updated_at"],
            document["metadata"]["refreshed_at"]]


def test_api_and_cli_show_iso_times(dev_server: Any, workspace: Path, data_dir: Path) -> None:
    headers = {"Authorization": "Bearer dev-token"}
    added = httpx.post(dev_server.url + "/sources", headers=headers, timeout=30,
                       json={"type": "local", "name": "ex", "ref": "examples"})
    assert added.status_code == 201, added.text
    run = httpx.post(dev_server.url + "/runs", headers=headers, timeout=30,
                     json={"job_id": "ex/python", "args": {}})
    assert run.status_code == 201, run.text
    for document in (added.json(), httpx.get(dev_server.url + "/sources/ex", headers=headers,
                                             timeout=30).json()):
        assert all(isinstance(ts, str) and RFC3339.fullmatch(ts) for ts in times(document)), \
            document
        assert RFC3339.fullmatch(run.json()["created_at"])  # the same form as a run's
    listed = run_cli([":sources", "list", "--json"], cwd=workspace, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    [document] = json.loads(listed.stdout)
    assert all(RFC3339.fullmatch(ts) for ts in times(document)), document


def test_the_openapi_document_declares_strings() -> None:
    schema = json.loads((REPO / "docs" / "openapi.json").read_text())
    source = schema["components"]["schemas"]["Source"]["properties"]
    assert source["created_at"]["type"] == source["updated_at"]["type"] == "string"
