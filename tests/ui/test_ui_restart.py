"""A run page open while its server is killed (SIGKILL) and started again at the same
address and data dir: the page notices, reconnects with ``Last-Event-ID``, and its log
holds every journaled line once — no gap, no duplicate — then the run's end as recovery
recorded it (``interrupted``: the process that owned it died).

The servers are this test's own (it kills one), not the module's ``ui_server``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import Server, processes_under, start_server, write_job

#: Numbered lines, a few a second, for longer than the test lasts.
TICKER = """\
#!/usr/bin/env bash
for ((i = 1; i <= 100000; i++)); do
  echo "line $i"
  sleep 0.05
done
"""
LINE = re.compile(r"line (\d+)")
DEV = {"Authorization": "Bearer dev-token"}

#: Every row of the virtualised log, read from the page by scrolling it from the top to
#: the end a screen at a time (only the rows on screen exist in the DOM): [[number, text]].
READ_ALL_ROWS = """async (log) => {
  const frames = () => new Promise((resolve) => requestAnimationFrame(
    () => requestAnimationFrame(() => requestAnimationFrame(resolve))));
  const rows = new Map();
  log.scrollTop = 0;
  await frames();
  for (;;) {
    for (const row of log.querySelectorAll('.log-row')) {
      rows.set(Number(row.querySelector('.ln').textContent), row.querySelector('.tx').textContent);
    }
    if (log.scrollTop + log.clientHeight >= log.scrollHeight - 1) break;
    log.scrollTop += Math.max(1, log.clientHeight - 40);
    await frames();
  }
  return [...rows.entries()].sort((a, b) => a[0] - b[0]);
}"""


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """The servers the test starts (stopped afterwards); no process of a run may survive."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()
    leaked = processes_under(f"FLWD_RUN_DIR={tmp_path / 'data'}")
    assert not leaked, f"processes of the restart test's run survived: {leaked}"


def test_the_tail_resumes_across_a_server_restart_without_gap_or_duplicate(
        new_page: Any, tmp_path: Path, servers: list[Server]) -> None:
    workspace, data_dir = tmp_path / "ws", tmp_path / "data"
    write_job(workspace, "ticker", "job: {summary: Numbered lines, slowly}\ninterpreter: bash\n",
              {"100_tick.sh": TICKER})
    servers.append(start_server(workspace, data_dir, "--dev"))
    first = servers[0]
    started = httpx.post(f"{first.url}/runs", json={"job_id": "ticker"}, headers=DEV, timeout=30)
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]

    page = new_page()
    # The event streams the page opens (their headers are read afterwards).
    streams: list[Any] = []
    page.on("request", lambda r: streams.append(r)
            if urlsplit(r.url).path == f"/runs/{run_id}/events" else None)
    page.goto(f"{first.url}/#/runs/{run_id}")
    output = page.get_by_role("region", name="Run output")
    expect(output).to_contain_text("line 20")
    expect(page.locator(".conn")).to_have_text("live")

    first.stop(9)  # SIGKILL: nothing is closed cleanly, nothing is flushed on the way out
    expect(page.locator(".conn")).to_have_text("reconnecting…")
    expect(page.locator(".title-badge")).to_have_text("running")

    servers.append(start_server(workspace, data_dir, "--dev", bind=urlsplit(first.url).netloc))
    second = servers[1]
    assert second.url == first.url
    # What recovery made of the run (its owner died): the page shows the same.
    run = httpx.get(f"{second.url}/runs/{run_id}", headers=DEV, timeout=30).json()
    assert run["status"] == "interrupted"
    expect(page.locator(".title-badge")).to_have_text("interrupted")
    expect(page.locator(".conn")).to_have_text("finished")
    expect(output).to_contain_text("run interrupted")

    # The page's log, every row of it: the journal's lines, each once, in order.
    journaled = httpx.get(f"{second.url}/runs/{run_id}/log.txt", headers=DEV,
                          timeout=30).text.splitlines()
    numbers = [int(m.group(1)) for m in map(LINE.fullmatch, journaled) if m]
    count = len(numbers)
    assert numbers == list(range(1, count + 1)) and count >= 20, journaled[-3:]
    rows = page.get_by_role("region", name="Run output").evaluate(READ_ALL_ROWS)
    assert [number for number, _ in rows] == list(range(1, len(rows) + 1)), "a row was not read"
    shown = [text for _, text in rows if LINE.fullmatch(text)]
    assert shown == [f"line {n}" for n in range(1, count + 1)]
    assert rows[-1][1].startswith("run interrupted")

    # Every stream opened after the page had line 20 resumed after it, not from the start:
    # its cursor is the Last-Event-ID the browser sends (an event came on the stream
    # before it dropped) or else the ?after= the page put in its address (the last
    # event of the journal it had read first).
    events = httpx.get(f"{second.url}/runs/{run_id}/events.ndjson", headers=DEV, timeout=30)
    seen = next(json.loads(line)["seq"] for line in events.text.splitlines()
                if json.loads(line)["data"].get("message") == "line 20")
    cursors = [int(r.all_headers().get("last-event-id")
                   or parse_qs(urlsplit(r.url).query)["after"][0]) for r in streams]
    assert len(cursors) >= 2 and min(cursors[1:]) >= seen, (seen, cursors)
