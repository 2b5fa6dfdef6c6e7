"""History, sources and status pages; times in the browser's zone; the keyboard alone."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from .conftest import UiServer


def test_history_updates_live_and_filters_are_links(page, ui_server: UiServer) -> None:
    api = ui_server.api()
    page.goto(f"{ui_server.url}/#/runs?job_id=examples.vars")
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    expect(page.get_by_label("Job")).to_have_value("examples.vars")
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("Page 1 of 1")
    # A run started elsewhere shows up without a reload, with its status as it changes.
    run = api.post("/runs", json={"job_id": "examples.vars", "args": {"who": "live"}}).json()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=run["id"]))
    expect(row).to_contain_text("who=live")
    expect(row).to_contain_text("completed")
    expect(row.get_by_role("cell").nth(5)).to_have_text(re.compile(r"^\d+(\.\d)? (ms|s)$"))

    page.get_by_role("group", name="Status").get_by_role("checkbox", name="failed").check()
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"#/runs\?job_id=examples.vars&status=failed$"))
    expect(page.get_by_text("No runs match.")).to_be_visible()
    page.get_by_role("link", name="Clear filters").click()
    expect(page.get_by_role("link", name=run["id"])).to_be_visible()


def test_sources_add_with_trust_refresh_and_remove(page, ui_server: UiServer) -> None:
    page.goto(f"{ui_server.url}/#/sources")
    expect(page.get_by_text("No sources")).to_be_visible()
    page.get_by_label("Name").fill("extra")
    page.get_by_label("Ref").fill(str(ui_server.extra))
    page.get_by_role("button", name="Add source").click()
    # Nothing is added before the trust is confirmed.
    expect(page.locator("#src-trust-err")).to_have_text("confirm that you trust this source")
    assert ui_server.api().get("/sources").json() == []
    page.get_by_label("I trust the jobs of this source").check()
    page.get_by_role("button", name="Add source").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="extra"))
    expect(row).to_contain_text("ready")
    expect(row).to_contain_text("local")
    page.get_by_role("button", name="Refresh extra").click()
    expect(page.get_by_role("status")).to_have_text("Refreshed")
    page.goto(f"{ui_server.url}/#/jobs")
    expect(page.get_by_role("region", name="source extra")).to_be_visible()
    # A source's job (its id holds a '/') has a page and runs from it.
    page.get_by_role("link", name="extra/hello").click()
    expect(page.get_by_role("heading", name="extra/hello")).to_be_visible()
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("region", name="Run output")).to_contain_text("hello from extra")

    page.goto(f"{ui_server.url}/#/sources")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove extra").click()
    expect(page.get_by_text("No sources")).to_be_visible()
    assert ui_server.api().get("/sources").json() == []


def test_status_page(page, ui_server: UiServer) -> None:
    page.goto(f"{ui_server.url}/#/status")
    server = page.get_by_role("region", name="Server")
    expect(server).to_contain_text("secure")
    expect(server).to_contain_text("Grace before KILL")
    expect(page.get_by_role("region", name="Storage")).to_contain_text("ok")
    expect(page.get_by_role("region", name="Your session")).to_contain_text("never (--dev)")


def test_times_are_in_the_browsers_zone_and_named(new_page, ui_server: UiServer) -> None:
    run = ui_server.api().post("/runs", json={"job_id": "demo", "args": {"name": "Tz"}}).json()
    page = new_page(timezone_id="Asia/Tokyo", locale="en-US")
    page.goto(f"{ui_server.url}/#/runs/{run['id']}")
    expect(page.get_by_role("contentinfo")).to_have_text("Times in Asia/Tokyo (GMT+9)")
    created = datetime.fromisoformat(run["created_at"]).astimezone(ZoneInfo("Asia/Tokyo"))
    shown = page.locator(f"time[datetime='{run['created_at']}']").first
    expect(shown).to_have_text(created.strftime("%m/%d/%Y, %H:%M:%S GMT+9"))


def test_a_job_runs_with_the_keyboard_alone(page, ui_server: UiServer) -> None:
    page.goto(f"{ui_server.url}/#/jobs")
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_label("Search jobs").focus()
    page.keyboard.type("vars")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name=re.compile("^examples.vars"))).to_be_focused()
    page.keyboard.press("Enter")
    # Navigation puts the focus on the page's heading; the form follows it.
    expect(page.get_by_role("heading", name="Vars and libs (examples.vars)")).to_be_focused()
    page.keyboard.press("Tab")
    while not page.evaluate("document.activeElement.id === 'arg-who'"):
        page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("keys")
    page.keyboard.press("Enter")
    expect(page.get_by_role("region", name="Run output")).to_contain_text("keys")
    expect(page.locator(".title-badge")).to_have_text("completed")


def test_history_filters_by_argument_values_and_time(page, ui_server: UiServer) -> None:
    api = ui_server.api()
    wanted = api.post("/runs", json={"job_id": "examples.vars", "args": {"who": "needle"}}).json()
    other = api.post("/runs", json={"job_id": "examples.vars", "args": {"who": "hay"}}).json()
    page.goto(f"{ui_server.url}/#/runs")
    expect(page.get_by_role("link", name=other["id"])).to_be_visible()
    page.get_by_label("Argument name 1").fill("who")
    page.get_by_label("Argument value 1").fill("needle")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"#/runs\?arg.who=needle$"))
    expect(page.get_by_role("link", name=wanted["id"])).to_be_visible()
    expect(page.get_by_role("link", name=other["id"])).to_have_count(0)
    # The filtered view is a link: opened anew, it shows the same.
    page.reload()
    expect(page.get_by_label("Argument value 1")).to_have_value("needle")
    expect(page.get_by_role("link", name=wanted["id"])).to_be_visible()
    expect(page.get_by_role("link", name=other["id"])).to_have_count(0)

    # A time range (the browser's zone): from tomorrow on, nothing.
    page.get_by_label("Since").fill("2999-01-01T00:00")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"since=2999-01-01T00%3A00%3A00.000Z"))
    expect(page.get_by_text("No runs match.")).to_be_visible()
