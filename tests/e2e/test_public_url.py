"""``:serve --public-url`` (``FLWD_PUBLIC_URL``): where people reach the server. Its
notifications link there, ``GET /server`` says it (the UI shows webhook addresses under
it), and a value that cannot be such a URL refuses the start with one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli, write_job
from tests.e2e.test_notify_serve import DEV, Receiver, finished, start

PUBLIC = "https://flwd.example.test/ops"

FAILING = """\
notify:
  - on: [failure]
    webhook: {{url: "{url}", backoff: 200ms}}
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(200)
    yield receiver
    receiver.close()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_notifications_and_server_info_use_the_public_url(
        workspace: Path, server_factory: Any, receiver: Receiver, how: str) -> None:
    write_job(workspace, "broken", FAILING.format(url=receiver.url), {"100_main.sh": "exit 3\n"})
    server = (server_factory("--dev", "--public-url", PUBLIC + "/") if how == "flag"
              else server_factory("--dev", FLWD_PUBLIC_URL=PUBLIC))
    info = httpx.get(f"{server.url}/server", headers=DEV, timeout=30).json()
    assert info["public_url"].rstrip("/") == PUBLIC
    run = start(server, "broken")
    assert finished(server, run["id"])["status"] == "failed"
    [request] = receiver.wait(1)
    note = json.loads(request["body"])
    assert note["run"]["url"] == f"{PUBLIC}/#/runs/{run['id']}"
    assert note["run"]["api_url"] == f"{PUBLIC}/runs/{run['id']}"


def test_without_it_the_server_says_null(server_factory: Any) -> None:
    server = server_factory("--dev")
    assert httpx.get(f"{server.url}/server", headers=DEV, timeout=30).json()["public_url"] is None


@pytest.mark.parametrize("value", ["ftp://flwd.example.test", "https://", "flwd.example.test",
                                   "https://flwd.example.test/?a=1", "https://flwd.example.test/#x",
                                   "https://flwd example.test", "https://flwd.example.test:99999",
                                   "https://ops:hunter2@flwd.example.test"])
def test_a_url_that_cannot_be_public_refuses_the_start_with_one_line(
        workspace: Path, data_dir: Path, value: str) -> None:
    done = run_cli([":serve", "--bind", "127.0.0.1:0", "--public-url", value],
                   cwd=workspace, data_dir=data_dir, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "--public-url" in done.stderr, done.stderr
