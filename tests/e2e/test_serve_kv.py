"""The Rule-Y KV over HTTP, end to end: a real ``flwd :serve`` (Hypercorn on port 0).

Its route, limit, scope and problem in turn, starting with the reference's own
handler tests (its §17.10 #53 and §17.14 #160-163), then flwd's remote ``:kv``
verb, and a job of the server that keeps state in the KV across runs with no token.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, run_cli, sse_events, write_job

DEV = {"Authorization": "Bearer dev-token"}
PROBLEM_TYPE = "https://flwd.dev/problems/"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def put(url: str, path: str, value: bytes, headers: dict[str, str] = DEV) -> httpx.Response:
    return httpx.put(f"{url}{path}", json={"value": b64(value)}, headers=headers, timeout=30)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["code"] == code, problem
    return problem


def mint(workspace: Path, data_dir: Path, name: str, *scopes: str) -> dict[str, str]:
    created = run_cli([":tokens", "create", "--name", name,
                       *(arg for scope in scopes for arg in ("--scope", scope))],
                      cwd=workspace, data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    return {"Authorization": f"Bearer {created.stdout.strip()}"}


# -- the reference's handler tests ------------------------------------------------------------


def test_put_get_delete(dev_server: Server) -> None:
    url = dev_server.url
    stored = put(url, "/kv/core_triggers/foo", b"bar")
    assert stored.status_code == 204 and stored.content == b""
    assert "content-type" not in stored.headers
    got = httpx.get(f"{url}/kv/core_triggers/foo", headers=DEV)
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    document = got.json()
    assert list(document) == ["key", "value", "timestamp"]
    assert document["key"] == "foo" and base64.b64decode(document["value"]) == b"bar"
    assert document["timestamp"].endswith("Z") and "T" in document["timestamp"]
    # Namespaces are looked up in any case.
    assert httpx.get(f"{url}/kv/CORE_TRIGGERS/foo", headers=DEV).json() == document
    deleted = httpx.delete(f"{url}/kv/core_triggers/foo", headers=DEV)
    assert deleted.status_code == 204 and deleted.content == b""
    problem = assert_problem(httpx.get(f"{url}/kv/core_triggers/foo", headers=DEV), 404,
                             "key.not.found")
    assert problem["title"] == "key not found"
    assert_problem(httpx.delete(f"{url}/kv/core_triggers/foo", headers=DEV), 404,
                   "key.not.found")


def test_scan_pages_a_prefix_in_key_order(dev_server: Server) -> None:
    url = dev_server.url
    for key in ("app:one", "app:two", "app:three", "bee:one", "app:é", "app:z/x//y"):
        assert put(url, f"/kv/core_triggers/{key}", key.encode()).status_code == 204
    listed = httpx.get(f"{url}/kv/core_triggers", params={"prefix": "app:"}, headers=DEV)
    assert listed.status_code == 200
    keys = [item["key"] for item in listed.json()["items"]]
    assert keys == ["app:one", "app:three", "app:two", "app:z/x//y", "app:é"]  # bytes order
    assert "nextCursor" not in listed.json()
    # Pages of two: nextCursor is the base64 of the last key, and the cursor is exclusive.
    seen: list[str] = []
    params: dict[str, str] = {"prefix": "app:", "limit": "2"}
    for _ in range(5):
        page = httpx.get(f"{url}/kv/core_triggers", params=params, headers=DEV).json()
        seen += [item["key"] for item in page["items"]]
        if "nextCursor" not in page:
            break
        assert base64.b64decode(page["nextCursor"]).decode() == seen[-1]
        params["cursor"] = page["nextCursor"]
    assert seen == keys
    # Every entry of the namespace, with or without the trailing slash.
    everything = httpx.get(f"{url}/kv/core_triggers/", headers=DEV).json()
    assert everything == httpx.get(f"{url}/kv/core_triggers", headers=DEV).json()
    assert len(everything["items"]) == 6
    item = everything["items"][0]
    assert set(item) == {"key", "value", "timestamp"}


def test_a_page_has_at_most_256_entries(server_factory: Any, workspace: Path,
                                        data_dir: Path) -> None:
    from flwd.store import SqliteStore

    store = SqliteStore(data_dir / "flwd.db")
    for index in range(300):
        store.kv_put("core_invocation_state", b"k%03d" % index, b"", quota=1 << 20)
    url = server_factory("--dev").url
    first = httpx.get(f"{url}/kv/core_invocation_state", params={"limit": "9" * 50},
                      headers=DEV).json()  # any number above 256 is a page of 256
    assert len(first["items"]) == 256 and base64.b64decode(first["nextCursor"]) == b"k255"
    rest = httpx.get(f"{url}/kv/core_invocation_state",
                     params={"cursor": first["nextCursor"]}, headers=DEV).json()
    assert [item["key"] for item in rest["items"]] == [f"k{i:03d}" for i in range(256, 300)]
    assert "nextCursor" not in rest


def test_namespace_forbidden_and_quota_with_scoped_tokens(server_factory: Any, workspace: Path,
                                                          data_dir: Path) -> None:
    # The reference's TestRuleYKVHandlerIntegration: core_triggers limited to 9 bytes.
    writer = mint(workspace, data_dir, "writer", "ruley:write")
    reader = mint(workspace, data_dir, "reader", "ruley:read")
    url = server_factory("--kv-namespace", "core_triggers=9").url
    assert put(url, "/kv/core_triggers/a", b"1234", writer).status_code == 204
    forbidden = assert_problem(put(url, "/kv/forbidden/a", b"1234", writer), 403,
                               "namespace-forbidden")
    assert forbidden["type"] == PROBLEM_TYPE + "namespace-forbidden"
    assert forbidden["title"] == "namespace forbidden"
    full = assert_problem(put(url, "/kv/core_triggers/b", b"1234", writer), 429,
                          "storage-quota-exceeded")
    assert full["type"] == PROBLEM_TYPE + "storage-quota-exceeded"
    assert full["title"] == "storage quota exceeded"
    # The flag replaced the default list.
    assert_problem(put(url, "/kv/core_invocation_state/a", b"", writer), 403,
                   "namespace-forbidden")
    # Replacing a value counts the difference: a's 5 bytes may become 9.
    assert put(url, "/kv/core_triggers/a", b"12345678", writer).status_code == 204
    # Scopes: read to get and list, write to put and delete.
    assert httpx.get(f"{url}/kv/core_triggers/a", headers=reader).status_code == 200
    assert httpx.get(f"{url}/kv/core_triggers", headers=reader).status_code == 200
    assert_problem(httpx.get(f"{url}/kv/core_triggers/a", headers=writer), 403, "forbidden")
    denied = assert_problem(put(url, "/kv/core_triggers/a", b"", reader), 403, "forbidden")
    assert denied["missing_scopes"] == ["ruley:write"]
    assert_problem(httpx.delete(f"{url}/kv/core_triggers/a", headers=reader), 403, "forbidden")
    assert_problem(httpx.get(f"{url}/kv/core_triggers/a"), 401, "unauthorized")
    assert httpx.delete(f"{url}/kv/core_triggers/a", headers=writer).status_code == 204


def test_a_bad_kv_namespace_flag_refuses_the_start(workspace: Path, data_dir: Path) -> None:
    done = run_cli([":serve", "--no-containers", "--bind", "127.0.0.1:0",
                    "--kv-namespace", "bad-name"], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "flwd: error: --kv-namespace 'bad-name': a namespace is 1-64 letters, digits or '_' "
        "(e.g. --kv-namespace core_triggers=8MiB)"]


# -- every bad input is a problem --------------------------------------------------------------

ENCODED_8193 = b64(b"v" * 8193)


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), [
    ("PUT", "/kv/core_triggers/k", {"value": "not base64!"}, 400, "kv.value.not.base64"),
    ("PUT", "/kv/core_triggers/k", {"value": "YmFy\n"}, 400, "kv.value.not.base64"),
    ("PUT", "/kv/core_triggers/k", {"value": 42}, 400, "kv.value.not.base64"),
    ("PUT", "/kv/core_triggers/k", {"value": None}, 400, "kv.value.not.base64"),
    ("PUT", "/kv/core_triggers/k", {"value": ENCODED_8193}, 400, "kv.value.too.long"),
    ("PUT", "/kv/core_triggers/k", {"value": "A" * 20000}, 400, "kv.value.too.long"),
    ("PUT", "/kv/core_triggers/k", {}, 400, "kv.body.invalid"),
    ("PUT", "/kv/core_triggers/k", {"value": "", "ttl": 5}, 400, "kv.body.invalid"),
    ("PUT", "/kv/core_triggers/k", ["value"], 400, "kv.body.invalid"),
    ("PUT", "/kv/core_triggers/k", b"{not json", 400, "kv.body.invalid"),
    ("PUT", "/kv/core_triggers/k", b"", 400, "kv.body.invalid"),
    ("PUT", "/kv/core_triggers/k", b"\xff\xfe{}", 400, "kv.body.invalid"),
    ("PUT", "/kv/core_triggers/k", b"[" * 100_000, 413, "body.too.large"),
    ("PUT", "/kv/core_triggers/k", b"[" * 50_000 + b"]" * 10_000, 400, "kv.body.invalid"),
    ("PUT", "/kv/core_triggers/" + "k" * 257, {"value": ""}, 400, "kv.key.too.long"),
    ("GET", "/kv/core_triggers/" + "é" * 129, None, 400, "kv.key.too.long"),
    ("DELETE", "/kv/core_triggers/" + "k" * 300, None, 400, "kv.key.too.long"),
    ("PUT", "/kv/core_triggers/%FF%FE", {"value": ""}, 400, "kv.key.not.text"),
    ("GET", "/kv/core_triggers/a%C3", None, 400, "kv.key.not.text"),
    ("PUT", "/kv/core_triggers", {"value": ""}, 405, "method.not.allowed"),
    ("PUT", "/kv/core_triggers/", {"value": ""}, 405, "method.not.allowed"),
    ("DELETE", "/kv/core_triggers", None, 405, "method.not.allowed"),
    ("GET", "/kv/", None, 400, "kv.namespace.required"),
    ("GET", "/kv//k", None, 400, "kv.namespace.required"),
    ("GET", "/kv/core_triggers?cursor=%25%25", None, 400, "kv.cursor.invalid"),
    ("GET", "/kv/core_triggers?cursor=" + b64(b"k" * 257), None, 400, "kv.cursor.invalid"),
    ("GET", "/kv/core_triggers?limit=0", None, 400, "kv.limit.invalid"),
    ("GET", "/kv/core_triggers?limit=-3", None, 400, "kv.limit.invalid"),
    ("GET", "/kv/core_triggers?limit=ten", None, 400, "kv.limit.invalid"),
    ("GET", "/kv/core_triggers?limit=1.5", None, 400, "kv.limit.invalid"),
    ("GET", "/kv/core_triggers?prefix=%FF", None, 400, "kv.query.invalid"),
    ("GET", "/kv/core_triggers?" + "&".join(f"p{i}=1" for i in range(40)), None, 400,
     "kv.query.invalid"),
    ("GET", "/kv/nope/k", None, 403, "namespace-forbidden"),
    ("GET", "/kv/core%2Ftriggers/k", None, 403, "namespace-forbidden"),
    ("PUT", "/kv/" + "n" * 5000 + "/k", {"value": ""}, 403, "namespace-forbidden"),
    # The namespace is checked first: a bad key or body there is still 403.
    ("PUT", "/kv/nope/%FF", b"{not json", 403, "namespace-forbidden"),
    ("POST", "/kv/core_triggers/k", {"value": ""}, 405, "method.not.allowed"),
])
def test_every_bad_input_is_a_problem(dev_server: Server, method: str, path: str,
                                      body: object, status: int, code: str) -> None:
    content = body if isinstance(body, bytes) else None
    with httpx.Client(timeout=30) as client:
        request = client.build_request(
            method, dev_server.url + path, headers={**DEV, "Content-Type": "application/json"},
            content=content if content is not None else None,
            json=body if content is None and body is not None else None)
        response = client.send(request)
    problem = assert_problem(response, status, code)
    assert "\n" not in problem["detail"] and len(problem["detail"]) < 600
    if status == 405:  # a key has GET, PUT and DELETE; a namespace has GET only
        assert response.headers["Allow"] == ("DELETE, GET, HEAD, OPTIONS, PUT"
                                             if path.rstrip("/").count("/") > 2
                                             else "GET, HEAD, OPTIONS")
    dev_server.stop()
    assert "Traceback" not in "".join(dev_server.log)


# -- flwd :kv --server, and a job of the server -----------------------------------------------


def remote(workspace: Path, data_dir: Path, url: str, token: dict[str, str], *args: str,
           stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLWD_")}
    env.update({"FLWD_DATA_DIR": str(data_dir / "client"), "NO_COLOR": "1",
                "FLWD_TOKEN": token["Authorization"].split()[1]})
    return subprocess.run([sys.executable, "-m", "flwd", "--server", url, ":kv", *args],
                          cwd=workspace, env=env, input=stdin, capture_output=True,
                          timeout=60, check=False)


def test_the_remote_kv_verbs_answer_as_the_local_ones(server_factory: Any, workspace: Path,
                                                      data_dir: Path) -> None:
    token = mint(workspace, data_dir, "both", "ruley:read", "ruley:write")
    reader = mint(workspace, data_dir, "reader", "ruley:read")
    url = server_factory().url
    blob = bytes(range(256))
    for key in ("bin/..", "bin/a b", "-x"):
        done = remote(workspace, data_dir, url, token, "put", "core_triggers", key, stdin=blob)
        assert done.returncode == 0, done.stderr
    got = remote(workspace, data_dir, url, token, "get", "core_triggers", "bin/..")
    assert got.returncode == 0 and got.stdout == blob
    listed = remote(workspace, data_dir, url, token, "list", "core_triggers")
    assert listed.stdout.decode().splitlines() == ["-x", "bin/..", "bin/a b"]
    # The same key reads the same locally (the server's Core DB, no token).
    local = run_cli([":kv", "get", "core_triggers", "bin/a b", "--json"], cwd=workspace,
                    data_dir=data_dir)
    remote_json = remote(workspace, data_dir, url, token, "get", "core_triggers", "bin/a b",
                         "--json")
    assert remote_json.stdout.decode() == local.stdout
    missing = remote(workspace, data_dir, url, token, "delete", "core_triggers", "nope")
    assert missing.returncode == 1
    assert missing.stderr.decode().splitlines() == [
        "flwd: error: no key 'nope' in namespace core_triggers"]
    forbidden = remote(workspace, data_dir, url, token, "get", "secret", "k")
    assert forbidden.returncode == 2 and b"not allow-listed" in forbidden.stderr
    denied = remote(workspace, data_dir, url, reader, "put", "core_triggers", "k", "v")
    assert denied.returncode == 2 and b"ruley:write" in denied.stderr
    assert not (data_dir / "client").exists(), "remote mode keeps nothing locally"


COUNTER = """\
set -e
n=$(flwd :kv get counters visits 2>/dev/null || echo 0)
n=$((n + 1))
printf '%s' "$n" | flwd :kv put counters visits
echo "visit $n"
"""


def test_a_job_of_the_server_keeps_state_across_runs_with_no_token(
        server_factory: Any, workspace: Path, data_dir: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    path = os.pathsep.join(filter(None, [str(Path(__file__).parents[2]),
                                         os.environ.get("PYTHONPATH")]))
    (bin_dir / "flwd").write_text(f"#!/bin/sh\nPYTHONPATH='{path}' exec '{sys.executable}' "
                                  '-m flwd "$@"\n')
    (bin_dir / "flwd").chmod(0o755)
    write_job(workspace, "visits", "interpreter: bash\n", {"100_visit.sh": COUNTER})
    token = mint(workspace, data_dir, "runner", "runs:write", "runs:read", "events:read",
                 "ruley:read")
    # A namespace only the server's flag allows: the job learns it from the engine.
    server = server_factory("--kv-namespace", "counters=1KiB",
                            PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for expected in (1, 2):
        run = httpx.post(f"{server.url}/runs", json={"job_id": "visits"}, headers=token)
        assert run.status_code == 201, run.text
        with httpx.stream("GET", f"{server.url}/runs/{run.json()['id']}/events",
                          headers=token, timeout=60) as response:
            events = list(sse_events(response.iter_lines()))  # until run.finish
        assert events[-1]["data"]["status"] == "completed", events
        assert [event["data"]["message"] for event in events
                if event["type"] == "step.log"] == [f"visit {expected}"]
    got = httpx.get(f"{server.url}/kv/counters/visits", headers=token).json()
    assert base64.b64decode(got["value"]) == b"2"
    server.stop()
    assert token["Authorization"].split()[1] not in "".join(server.log)
