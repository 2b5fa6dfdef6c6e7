"""Automation in the browser (issue 16 item 4): what started a run (a schedule's fire, a
manual fire, a webhook), its notification deliveries as they happen, the history's
Trigger column and filter, and the Automation page — schedules with their next fires on
their clock and the browser's, Pause / Resume / Trigger now, webhooks with their URL and
recent deliveries.

A server of its own: its jobs fire once by themselves (an ``at:`` a few seconds after it
starts), notify a receiver on a real socket, and take webhooks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import select
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import processes_under, start_server, write_job

from .conftest import UI_HOOK_SECRET, UiServer, ui_workspace

#: The browser's zone in these tests: neither the server's (UTC) nor a schedule's.
BROWSER_ZONE = "Asia/Tokyo"

PUBLIC_URL = "https://flwd.example.test/ops"


class Gate:
    """An HTTP receiver on 127.0.0.1:0 that holds each POST until :meth:`open` (so a page
    can be watched before a delivery), answering the next status of its script."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.opened = threading.Event()
        self.received: list[int] = []
        self.waiting = 0  # requests held
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                gate.waiting += 1
                gate.opened.wait(60)
                status = gate.statuses.pop(0) if len(gate.statuses) > 1 else gate.statuses[0]
                gate.received.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/alerts"

    def close(self) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.server_close()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        select.select([], [], [], 0.1)
    return result


@pytest.fixture(scope="module")
def gate() -> Iterator[Gate]:
    receiver = Gate(500, 204)
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def soon() -> datetime:
    """When the ``once-soon`` schedule fires: shortly after the server starts."""
    return (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)


@pytest.fixture(scope="module")
def auto_server(tmp_path_factory: pytest.TempPathFactory, gate: Gate, soon: datetime
                ) -> Iterator[UiServer]:
    root = tmp_path_factory.mktemp("auto")
    workspace = ui_workspace(root / "ws")
    write_job(workspace, "uitest/once", (
        "job: {summary: Fires once by itself, a few seconds after the server starts}\n"
        "schedule:\n"
        f"  - {{at: \"{soon.isoformat()}\", timezone: America/New_York, name: once-soon,\n"
        "     misfire: run_once, catchup_window: 1h}\n"), {"100_main.sh": "echo fired\n"})
    write_job(workspace, "uitest/alert", (
        "job: {summary: Fails and says so}\n"
        "notify:\n"
        "  - on: [failure]\n"
        "    name: ops-webhook\n"
        "    webhook: {url_env: UITEST_ALERT_URL, attempts: 3, backoff: 1s, timeout: 90s}\n"),
        {"100_main.sh": "echo broken >&2\nexit 1\n"})
    data_dir = root / "data"
    # People reach this server elsewhere (a proxy): its webhook addresses are shown there.
    server = UiServer(start_server(workspace, data_dir, "--dev", "--public-url", PUBLIC_URL + "/",
                                   UITEST_ALERT_URL=gate.url),
                      workspace, data_dir)
    yield server
    for client in server.clients:
        client.close()
    gate.close()
    server.server.stop()
    leaked = processes_under(f"FLWD_RUN_DIR={data_dir}")
    assert not leaked, f"processes of the automation tests' runs survived: {leaked}"


@pytest.fixture
def tokyo(new_page: Callable[..., Any]) -> Any:
    return new_page(timezone_id=BROWSER_ZONE, locale="en-US")


def test_a_scheduled_run_shows_its_fire_and_history_filters_by_trigger(
        tokyo: Any, auto_server: UiServer, soon: datetime) -> None:
    api = auto_server.api()
    by_hand = api.post("/runs", json={"job_id": "demo", "args": {"name": "Ann"}}).json()["id"]
    fired = wait_until(lambda: api.get("/runs", params={"trigger": "schedule:once-soon"}).json(),
                       "the once-soon schedule's run")
    [run] = fired
    assert run["trigger"] == {"kind": "schedule", "name": "once-soon",
                              "fire_at": soon.strftime("%Y-%m-%dT%H:%M:%SZ")}

    page = tokyo
    page.goto(f"{auto_server.url}/#/runs/{run['id']}")
    trigger = page.locator(".facts dd", has=page.locator(".trigger"))
    expect(trigger).to_contain_text("scheduled: once-soon, fire")
    # On the schedule's clock, its zone named (GET /schedules/once-soon says which).
    local = soon.astimezone(ZoneInfo("America/New_York"))
    expect(trigger).to_contain_text(f"{local:%H:%M}")
    expect(trigger).to_contain_text("(America/New_York)")
    expect(trigger.get_by_role("link", name="once-soon")).to_have_attribute(
        "href", "#/automation?schedule=once-soon")

    # History: a Trigger column, and "Started by" filters on it (kept in the address).
    page.goto(f"{auto_server.url}/#/runs")
    scheduled = page.get_by_role("row").filter(has=page.get_by_role("link", name=run["id"]))
    expect(scheduled.get_by_role("cell").nth(3)).to_have_text("schedule")
    manual = page.get_by_role("row").filter(has=page.get_by_role("link", name=by_hand))
    expect(manual.get_by_role("cell").nth(3)).to_have_text("API/CLI")
    page.get_by_label("Started by").select_option("schedule")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"#/runs\?trigger=schedule$"))
    expect(page.get_by_role("link", name=run["id"])).to_be_visible()
    expect(page.get_by_role("link", name=by_hand)).to_have_count(0)
    page.get_by_label("Started by").select_option("none")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_role("link", name=by_hand)).to_be_visible()
    expect(page.get_by_role("link", name=run["id"])).to_have_count(0)


def test_a_runs_notifications_arrive_live(page: Any, auto_server: UiServer, gate: Gate) -> None:
    api = auto_server.api()
    lists: list[str] = []
    page.on("request", lambda r: lists.append(r.url) if r.url.endswith("/notifications") else None)
    run_id = api.post("/runs", json={"job_id": "uitest.alert"}).json()["id"]
    page.goto(f"{auto_server.url}/#/runs/{run_id}")
    expect(page.locator(".title-badge")).to_have_text("failed")
    section = page.get_by_role("region", name="Notifications")
    # The first attempt is held by the receiver: nothing to show yet.
    wait_until(lambda: not gate.opened.is_set() and gate.waiting, "the first attempt")
    expect(section).to_be_hidden()
    gate.opened.set()
    rows = section.get_by_role("row")
    first = rows.filter(has_text="retrying")
    expect(first).to_contain_text("ops-webhook")
    expect(first).to_contain_text("(webhook)")
    expect(first).to_contain_text("failure")
    expect(first).to_contain_text("1 of 3")
    expect(first).to_contain_text("500")
    second = rows.filter(has_text="delivered")
    expect(second).to_contain_text("2 of 3")
    expect(second).to_contain_text("204")
    # Times in the browser's zone, named.
    expect(section.locator("caption")).to_contain_text("times in")
    # Live: the page read the list once, the attempts came over /events.
    assert len(lists) == 1, lists
    deliveries = api.get(f"/runs/{run_id}/notifications").json()["deliveries"]
    assert [(d["attempt"], d["outcome"]) for d in deliveries] == [(1, "retrying"), (2, "delivered")]
    expect(rows).to_have_count(1 + 2)  # the header and two attempts, each once


def fire_texts(fire_utc: str, *zones: str) -> list[str]:
    """``HH:MM`` of a fire time on each zone's clock."""
    instant = datetime.fromisoformat(fire_utc.replace("Z", "+00:00"))
    return [f"{instant.astimezone(ZoneInfo(zone)):%H:%M}" for zone in zones]


def test_schedules_with_their_next_fires_on_both_clocks(tokyo: Any, auto_server: UiServer
                                                        ) -> None:
    api = auto_server.api()
    listed = {s["name"]: s for s in api.get("/schedules").json()["schedules"]}
    page = tokyo
    page.goto(f"{auto_server.url}/#/jobs")
    # The jobs list says when a scheduled job runs next (its soonest schedule, GET /jobs).
    listed_job = page.get_by_role("listitem").filter(
        has=page.get_by_role("link", name=re.compile("^uitest.nightly")))
    expect(listed_job).to_contain_text("next fire (nightly): 02/29/2028, 10:30:00")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Automation").click()
    expect(page.get_by_role("heading", name="Automation", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Automation")).to_have_attribute("aria-current", "page")

    nightly = page.get_by_role("region", name="nightly", exact=True)
    expect(nightly.get_by_role("link", name="uitest.nightly")).to_be_visible()
    expect(nightly).to_contain_text("30 2 29 2 *")
    expect(nightly).to_contain_text("active")
    expect(nightly).to_contain_text("target=/srv/nightly")
    fires = nightly.get_by_role("list").first.get_by_role("listitem")
    expect(fires).to_have_count(3)
    expected = listed["nightly"]["next_fires"]
    assert expected[0]["utc"] == "2028-02-29T01:30:00Z"
    for item, fire in zip(fires.all(), expected, strict=True):
        there, here = fire_texts(fire["utc"], "Europe/Berlin", BROWSER_ZONE)
        expect(item.locator(f"time[datetime='{fire['utc']}']")).to_contain_text(there)
        expect(item).to_contain_text("(Europe/Berlin)")
        expect(item.locator(".here")).to_contain_text(here)
        expect(item.locator(".here")).to_contain_text(BROWSER_ZONE)
    expect(fires.first).to_contain_text("02:30")
    expect(fires.first.locator(".here")).to_contain_text("10:30")

    # A schedule without a zone is on the server's clock, and says so.
    new_year = page.get_by_role("region", name="new-year", exact=True)
    expect(new_year).to_contain_text("UTC (the server's zone)")
    expect(new_year.get_by_role("listitem")).to_have_count(1)  # an at: fires once
    expect(new_year).to_contain_text("08:00")

    # The job's page shows its schedules and next fire.
    page.goto(f"{auto_server.url}/#/jobs/uitest.nightly")
    automation = page.get_by_role("region", name="Automation")
    expect(automation.get_by_role("region", name="nightly", exact=True)).to_contain_text("02:30")
    expect(automation.get_by_role("region", name="backup-push")).to_be_visible()
    facts = page.locator(".facts").first
    expect(facts).to_contain_text("Next fire")
    expect(facts).to_contain_text("(schedule nightly)")


def test_pause_resume_and_trigger_now(page: Any, auto_server: UiServer) -> None:
    api = auto_server.api()
    page.goto(f"{auto_server.url}/#/automation")
    nightly = page.get_by_role("region", name="nightly", exact=True)
    # From the keyboard: the focused button, Enter.
    nightly.get_by_role("button", name="Pause", exact=True).focus()
    page.keyboard.press("Enter")
    resume = nightly.get_by_role("button", name="Resume", exact=True)
    expect(resume).to_be_focused()
    expect(nightly.get_by_role("button", name="Pause", exact=True)).to_have_count(0)
    expect(nightly.locator(".card-head")).to_contain_text("paused")
    state = api.get("/schedules/nightly").json()
    assert (state["status"], state["paused"]) == ("paused", True)
    expect(nightly).to_contain_text("paused: these are skipped until it is resumed")
    resume.click()
    expect(nightly.get_by_role("button", name="Pause", exact=True)).to_be_focused()
    assert api.get("/schedules/nightly").json()["status"] == "active"

    # Trigger now asks first: declined, nothing runs.
    trigger_now = nightly.get_by_role("button", name="Trigger now", exact=True)
    asked: list[str] = []

    def decline(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", decline)
    trigger_now.click()
    wait_until(lambda: asked, "the confirmation")
    assert "Run uitest.nightly now, as schedule nightly would (with target=/srv/nightly)?" in asked[0]
    assert api.get("/runs", params={"trigger": "schedule:nightly"}).json() == []

    page.once("dialog", lambda dialog: dialog.accept())
    trigger_now.click()
    started = nightly.locator(".card-alert").get_by_role("link", name=re.compile("^run-"))
    expect(started).to_be_visible()
    run_id = started.inner_text()
    # The cards are drawn again on every schedule event; the note stays with its card.
    assert api.post("/schedules/nightly:pause").status_code == 200
    expect(nightly.locator(".card-head")).to_contain_text("paused")
    expect(started).to_have_text(run_id)
    assert api.post("/schedules/nightly:resume").status_code == 200
    expect(nightly.locator(".card-head")).to_contain_text("active")
    expect(started).to_have_text(run_id)
    run = api.get(f"/runs/{run_id}").json()
    assert run["trigger"]["kind"] == "schedule" and run["trigger"]["name"] == "nightly"
    assert run["trigger"]["manual"] is True
    assert run["result"]["resolved_args"] == {"target": "/srv/nightly"}
    started.click()
    expect(page.locator(".trigger")).to_have_text("manual fire of schedule nightly")
    expect(page.get_by_role("region", name="Run output")).to_contain_text("backing up /srv/nightly")

    # A fire from elsewhere (the API) shows at once: schedule.fire on /events.
    page.goto(f"{auto_server.url}/#/automation")
    expect(nightly.locator(".card-head")).to_contain_text("active")
    other = api.post("/schedules/nightly:trigger")
    assert other.status_code == 201, other.text
    expect(nightly.get_by_role("link", name=other.json()["id"])).to_be_visible()


def test_webhooks_with_their_url_and_live_deliveries(new_page: Callable[..., Any],
                                                    auto_server: UiServer) -> None:
    page = new_page(permissions=["clipboard-read", "clipboard-write"])
    page.goto(f"{auto_server.url}/#/automation")
    hook = page.get_by_role("region", name="backup-push")
    expect(hook.get_by_role("link", name="uitest.nightly")).to_be_visible()
    address = f"{PUBLIC_URL}/hooks/backup-push"
    expect(hook.locator("code.hook-url")).to_have_text(address)
    expect(hook).to_contain_text("HMAC-SHA256 signature in X-Hub-Signature-256")
    expect(hook).to_contain_text("target ← body /repository/name")
    expect(hook).to_contain_text("none yet")
    hook.get_by_role("button", name="Copy the URL of backup-push").click()
    expect(page.locator("#announce")).to_have_text("URL copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == address
    assert UI_HOOK_SECRET not in page.content()

    body = json.dumps({"repository": {"name": "site"}}).encode()
    signature = "sha256=" + hmac.new(UI_HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    sent = httpx.post(f"{auto_server.url}/hooks/backup-push", content=body, timeout=30, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": signature,
        "X-GitHub-Delivery": "ui-delivery-1"})
    assert sent.status_code == 202, sent.text
    run_id = sent.json()["run_id"]
    # Live: hook.received on /events.
    delivered = hook.get_by_role("listitem").filter(has=page.get_by_role("link", name=run_id))
    expect(delivered).to_contain_text("delivery ui-delivery-1")
    expect(delivered.locator(".badge")).to_have_text("completed")

    hook.get_by_role("link", name="All runs of backup-push").click()
    expect(page).to_have_url(re.compile(r"#/runs\?trigger=hook%3Abackup-push$"))
    expect(page.get_by_label("Started by")).to_have_value("hook:backup-push")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=run_id))
    expect(row.get_by_role("cell").nth(3)).to_have_text("webhook")
    page.get_by_role("link", name=run_id).click()
    trigger = page.locator(".trigger")
    expect(trigger).to_have_text("webhook: backup-push, delivery ui-delivery-1")
    expect(page.get_by_role("region", name="Run output")).to_contain_text("backing up site")
