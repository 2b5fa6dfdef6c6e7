"""Hostile clients of the Rule-Y KV on a real ``flwd :serve`` (Hypercorn on port 0).

Raw sockets where a client library would tidy the request away: bodies streamed
without end, paths with bytes that are not UTF-8 or that spell ``..``, NUL and
CRLF in keys; writers racing for the last bytes of a quota; a full disk. Each
attack gets a problem (never a 500, a hang or unbounded memory), the server keeps
serving, and no key or value reaches its log.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from tests.conftest import Server
from tests.reliability.hostile.test_http_edge import raw_request

DEV = {"Authorization": "Bearer dev-token"}


def put(url: str, path: str, value: bytes) -> httpx.Response:
    return httpx.put(f"{url}{path}", json={"value": base64.b64encode(value).decode()},
                     headers=DEV, timeout=30)


def assert_serving(url: str) -> None:
    assert httpx.get(f"{url}/healthz", timeout=30).status_code == 204


def test_an_endless_chunked_body_is_refused_before_its_end(dev_server: Server) -> None:
    address = urlparse(dev_server.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(b"PUT /kv/core_triggers/k HTTP/1.1\r\nHost: localhost\r\n"
                     b"Authorization: Bearer dev-token\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (16384, b"[" * 16384)
        answer = b""
        sent = 0
        # The client would send forever: the server must answer once it has seen too much.
        while b"\r\n\r\n" not in answer:
            try:
                sock.sendall(chunk)
                sent += 16384
            except OSError:
                break  # the server closed the connection: its answer is waiting
            assert sent < 8 << 20, "the server kept reading past 8 MiB"
            sock.settimeout(0.001 if sent < 65536 else 5)
            try:
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            finally:
                sock.settimeout(30)
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            assert data, answer
            answer += data
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"413", answer[:400]
    assert b"connection: close" in answer.lower()
    assert_serving(dev_server.url)


def test_paths_are_data_not_directions(dev_server: Server) -> None:
    url = dev_server.url
    # "..", ".", NUL, CRLF, a percent-encoded slash: each is a key of its own.
    for raw, key in ((b"..", ".."), (b".", "."), (b"a%00b", "a\x00b"),
                     (b"x%0D%0AX-Evil:%201", "x\r\nX-Evil: 1"), (b"p%2Fq", "p/q"),
                     (b"%2E%2E%2F%2E%2E", "../..")):
        body = json.dumps({"value": base64.b64encode(raw).decode()}).encode()
        status, _, _ = raw_request(url, b"PUT /kv/core_triggers/" + raw + b" HTTP/1.1\r\n"
                                   b"Host: localhost\r\nAuthorization: Bearer dev-token\r\n"
                                   b"Content-Type: application/json\r\nContent-Length: "
                                   + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
                                   + body)
        assert status == 204, (raw, status)
        status, headers, answer = raw_request(
            url, b"GET /kv/core_triggers/" + raw + b" HTTP/1.1\r\nHost: localhost\r\n"
            b"Authorization: Bearer dev-token\r\nConnection: close\r\n\r\n")
        assert status == 200, (raw, status, answer)
        assert "x-evil" not in headers
        document = json.loads(answer)
        assert document["key"] == key and base64.b64decode(document["value"]) == raw
    # "p%2Fq" and "p/q" are the same key.
    assert httpx.get(f"{url}/kv/core_triggers/p/q", headers=DEV).status_code == 200
    keys = [item["key"] for item in httpx.get(f"{url}/kv/core_triggers",
                                                headers=DEV).json()["items"]]
    assert sorted(keys, key=str.encode) == keys and len(keys) == 6


def test_raw_bytes_and_huge_paths_are_problems(dev_server: Server) -> None:
    url = dev_server.url
    for path in (b"/kv/core_triggers/\xff\xfe", b"/kv/\xff/k", b"/kv/core_triggers/%FF",
                 b"/kv/core_triggers/" + b"k" * 4000, b"/kv/core_triggers?limit=-" + b"9" * 3000,
                 b"/kv/" + b"%41" * 3000):
        status, headers, body = raw_request(url, b"GET " + path + b" HTTP/1.1\r\n"
                                            b"Host: localhost\r\nAuthorization: Bearer "
                                            b"dev-token\r\nConnection: close\r\n\r\n")
        assert 400 <= status < 500, (path[:60], status, body[:300])
        if body:
            assert headers["content-type"] == "application/problem+json", (path[:60], body)
    # A limit of 5000 digits is a number above the page size, answered at once.
    status, _, body = raw_request(url, b"GET /kv/core_triggers?limit=" + b"9" * 5000
                                  + b" HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
                                  b"dev-token\r\nConnection: close\r\n\r\n")
    assert status == 200 and json.loads(body) == {"items": []}
    assert_serving(url)
    dev_server.stop()
    assert "Traceback" not in "".join(dev_server.log)


def test_racing_writers_never_exceed_the_quota(server_factory: Any) -> None:
    server = server_factory("--dev", "--kv-namespace", "race=1000")
    statuses: list[int] = []
    lock = threading.Lock()

    def writer(index: int) -> None:
        with httpx.Client(timeout=60) as client:
            for n in range(10):
                # 10-byte entries (5-byte key + 5-byte value): exactly 100 fit.
                response = client.put(f"{server.url}/kv/race/{index:02d}-{n:02d}",
                                      json={"value": base64.b64encode(b"12345").decode()},
                                      headers=DEV)
                with lock:
                    statuses.append(response.status_code)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert statuses.count(204) == 100 and statuses.count(429) == 20, sorted(set(statuses))
    listed: list[dict[str, Any]] = []
    params: dict[str, str] = {}
    while True:
        page = httpx.get(f"{server.url}/kv/race", params=params, headers=DEV).json()
        listed += page["items"]
        if "nextCursor" not in page:
            break
        params["cursor"] = page["nextCursor"]
    assert len(listed) == 100


def test_keys_and_values_stay_out_of_the_log_and_metrics(dev_server: Server) -> None:
    url = dev_server.url
    assert put(url, "/kv/core_triggers/key-s3cr3t-k", b"value-s3cr3t-v").status_code == 204
    assert httpx.get(f"{url}/kv/core_triggers/key-s3cr3t-k", headers=DEV).status_code == 200
    assert httpx.get(f"{url}/kv/core_triggers/missing-s3cr3t-m",
                     headers=DEV).status_code == 404
    metrics = httpx.get(f"{url}/metrics").text
    assert "s3cr3t" not in metrics
    assert 'route="/kv/<kvpath:path>"' in metrics  # the rule, never the path
    dev_server.stop()
    log = "".join(dev_server.log)
    assert "s3cr3t" not in log and "dmFsdWUtczNjcjN0LXY" not in log


def fill(folder: Path) -> None:
    """Write a ballast file until the file system says it is full."""
    with open(folder / "ballast", "wb") as ballast:
        try:
            while True:
                ballast.write(b"\0" * 65536)
                ballast.flush()
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC


def test_a_put_on_a_full_disk_is_a_503_and_reads_go_on(server_factory: Any,
                                                      small_tmpfs: Path) -> None:
    server = server_factory("--dev")
    url = server.url
    assert put(url, "/kv/core_triggers/kept", b"before").status_code == 204
    fill(small_tmpfs)
    refused: list[int] = []
    for index in range(200):  # SQLite may find room in free pages for a while
        response = put(url, f"/kv/core_triggers/more-{index}", b"x" * 8192)
        if response.status_code != 204:
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "E_STORAGE"
            refused.append(index)
            break
    assert refused, "the full disk never refused a put"
    got = httpx.get(f"{url}/kv/core_triggers/kept", headers=DEV)
    assert got.status_code == 200 and base64.b64decode(got.json()["value"]) == b"before"
    (small_tmpfs / "ballast").unlink()
    assert put(url, "/kv/core_triggers/after", b"room again").status_code == 204
    assert_serving(url)
