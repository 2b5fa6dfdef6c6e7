"""The metrics the reference exposes, through a real server (issue 14 item 6): every new
series is exported at 0 from the start, and the Core DB's work, retention's evictions,
expired cursors and new sources move them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, make_git_repo, scrape

AUTH = {"Authorization": "Bearer dev-token"}
PERSISTENCE = {"idempotency_lookup": ("hit", "miss", "expired", "error"),
               "idempotency_store": ("ok", "error"),
               "journal_append": ("ok", "quota_exceeded", "error"),
               "journal_read": ("ok", "error")}


def series(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def latency(operation: str, outcome: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return series("flwd_persistence_latency_seconds_count", operation=operation,
                  outcome=outcome)


#: The series a dashboard or an alert of these families relies on, before anything happened.
AT_ZERO = [
    *(latency(operation, outcome) for operation, outcomes in PERSISTENCE.items()
      for outcome in outcomes),
    *(series(name, kind=kind) for name in ("flwd_persistence_evictions_total",
                                           "flwd_persistence_eviction_bytes_total")
      for kind in ("journal", "idempotency")),
    *(series("flwd_sse_cursor_expired_total", transport=transport)
      for transport in ("sse", "ndjson")),
    series("flwd_container_runs_total"),
    *(series("flwd_container_pulls_total", outcome=outcome) for outcome in ("ok", "error")),
    series("flwd_container_pull_seconds_count"),
    *(series("flwd_sources_added_total", type=kind) for kind in ("local", "git", "oci")),
    series("flwd_addon_manifest_invalid_total"),
    *(series("flwd_notify_deliveries_total", sink_kind=kind, outcome=outcome)
      for kind in ("webhook", "email", "command", "unknown")
      for outcome in ("delivered", "retrying", "failed", "dropped", "abandoned")),
    series("flwd_hook_requests_total", hook="(unknown)", outcome="unknown"),
]


def run_to_end(server: Server, body: dict[str, Any], key: str | None = None
               ) -> tuple[httpx.Response, list[dict[str, Any]]]:
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    created = httpx.post(f"{server.url}/runs", json=body, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    # The run's SSE stream ends after run.finish: reading it to the end is the wait.
    with httpx.stream("GET", f"{server.url}/runs/{created.json()['id']}/events",
                      headers=AUTH, timeout=60) as stream:
        events = [json.loads(line[5:]) for line in stream.iter_lines()
                  if line.startswith("data:")]
    assert events[-1]["type"] == "run.finish", events[-1]
    return created, events


def test_new_families_start_at_zero_and_count_the_core_db_and_sources(
        server_factory: Any, tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    server = server_factory("--dev", "--allow-path", str(allowed))
    before = scrape(server.url)
    missing = [key for key in AT_ZERO if before.get(key) != 0.0]
    assert missing == []

    body = {"job_id": "demo", "args": {"name": "metrics"}}
    first, _ = run_to_end(server, body, key="k-1")
    replay = httpx.post(f"{server.url}/runs", json=body,
                        headers={**AUTH, "Idempotency-Key": "k-1"}, timeout=30)
    assert replay.headers.get("Idempotent-Replay") == "true"
    # The finished run's export is read from the journal.
    export = httpx.get(f"{server.url}/runs/{first.json()['id']}/events.ndjson", headers=AUTH,
                       timeout=30)
    assert export.status_code == 200 and export.text.count("\n") >= 3

    folder = allowed / "extra"
    (folder / "hello").mkdir(parents=True)
    (folder / "hello" / "100_hello.sh").write_text("echo hello\n")
    local = {"type": "local", "name": "extra", "ref": str(folder)}
    assert httpx.post(f"{server.url}/sources", json=local, headers=AUTH,
                      timeout=60).status_code == 201
    # The same source again is an update, not one more source.
    assert httpx.post(f"{server.url}/sources", json=local, headers=AUTH,
                      timeout=60).status_code == 200
    repo = make_git_repo(allowed / "repo", {"scripts/gitjob/100_run.sh": "echo git\n"})
    added = httpx.post(f"{server.url}/sources", json={
        "type": "git", "name": "tools", "url": f"file://{repo}", "ref": "main"},
        headers=AUTH, timeout=60)
    assert added.status_code == 201, added.text

    after = scrape(server.url)
    assert after[latency("idempotency_lookup", "miss")] == 1
    assert after[latency("idempotency_lookup", "hit")] == 1
    assert after[latency("idempotency_lookup", "expired")] == 0
    assert after[latency("idempotency_store", "ok")] == 1
    # One observation per journal batch (a transaction), not per event: the batches
    # that held events, and the one that created the run (its row and key, no event).
    batches = after[latency("journal_append", "ok")]
    assert batches == after[series("flwd_journal_batches_total")] + 1
    assert after[series("flwd_persistence_latency_seconds_sum", operation="journal_append",
                        outcome="ok")] > 0
    assert after[latency("journal_read", "ok")] >= 1
    assert after[latency("journal_append", "error")] == 0
    assert after[series("flwd_sources_added_total", type="local")] == 1
    assert after[series("flwd_sources_added_total", type="git")] == 1
    assert after[series("flwd_sources_added_total", type="oci")] == 0


def test_evictions_and_expired_cursors_are_counted(server_factory: Any) -> None:
    first = server_factory("--dev")
    created, events = run_to_end(first, {"job_id": "demo", "args": {"name": "old"}}, key="k-1")
    run_to_end(first, {"job_id": "demo", "args": {"name": "new"}}, key="k-2")
    first.stop()
    old = created.json()["id"]

    # Retention keeps the newest run: the older one goes, with its events and its key.
    server = server_factory("--dev", "--retain-runs", "1")
    usage: dict[str, Any] = {}
    for _ in range(200):  # the first pass runs at start; each request is the wait
        usage = httpx.get(f"{server.url}/health/storage", headers=AUTH, timeout=30).json()
        if usage.get("last_gc"):
            break
    assert usage["last_gc"]["evicted_runs"] == 1
    evicted = scrape(server.url)
    assert evicted[series("flwd_persistence_evictions_total", kind="journal")] == len(events)
    assert evicted[series("flwd_persistence_eviction_bytes_total", kind="journal")] > 0
    assert evicted[series("flwd_persistence_evictions_total", kind="idempotency")] == 1
    assert evicted[series("flwd_persistence_eviction_bytes_total", kind="idempotency")] > len(
        "k-1" + old)

    # Resuming what was evicted: 410 on SSE (one run's, the global stream) and NDJSON.
    for path, headers in ((f"/runs/{old}/events", {"Last-Event-ID": "1"}),
                          ("/events?after=1", {}),
                          (f"/runs/{old}/events.ndjson?after=1", {})):
        gone = httpx.get(server.url + path, headers={**AUTH, **headers}, timeout=30)
        assert gone.status_code == 410, (path, gone.text)
        assert gone.json()["code"] == "cursor.expired"
    # Without a cursor the export of an evicted run is simply not there (no 410 to count).
    assert httpx.get(f"{server.url}/runs/{old}/events.ndjson", headers=AUTH,
                     timeout=30).status_code == 404
    counted = scrape(server.url)
    assert counted[series("flwd_sse_cursor_expired_total", transport="sse")] == 2
    assert counted[series("flwd_sse_cursor_expired_total", transport="ndjson")] == 1
