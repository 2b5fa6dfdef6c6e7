"""History's status filter: any number of statuses (GET /runs takes a list), from the
keyboard, kept in the address (one ``status=`` each; a comma list reads the same)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.conftest import sse_events

from .conftest import UiServer

STATUSES = ["queued", "running", "completed", "failed", "canceled", "interrupted"]


def finished(ui_server: UiServer, run_id: str) -> str:
    """Follow the run's events until it ends; its final status."""
    with httpx.stream("GET", f"{ui_server.url}/runs/{run_id}/events", timeout=60,
                      headers={"Authorization": "Bearer dev-token"}) as response:
        for event in sse_events(response.iter_lines()):
            if event["type"] == "run.finish":
                return str(event["data"]["status"])
    raise AssertionError(f"the events of {run_id} ended without run.finish")


def shown(page: Any) -> set[str]:
    return set(page.get_by_role("table").get_by_role("link", name=re.compile("^run-")
                                                      ).all_inner_texts())


def test_history_filters_by_several_statuses(page: Any, ui_server: UiServer) -> None:
    api = ui_server.api()
    runs = {
        "completed": api.post("/runs", json={"job_id": "demo", "args": {"name": "ok"}}).json()["id"],
        "failed": api.post("/runs", json={"job_id": "examples.fail"}).json()["id"],
        "canceled": api.post("/runs", json={"job_id": "examples.long",
                                            "args": {"seconds": 60}}).json()["id"],
    }
    assert api.post(f"/runs/{runs['canceled']}:cancel").status_code in (200, 202)
    assert {status: finished(ui_server, run) for status, run in runs.items()} == {
        status: status for status in runs}

    page.goto(f"{ui_server.url}/#/runs")
    group = page.get_by_role("group", name="Status")
    expect(group).to_have_accessible_description("None checked: any status.")
    boxes = group.get_by_role("checkbox")
    expect(boxes).to_have_count(len(STATUSES))
    for status in STATUSES:
        expect(group.get_by_role("checkbox", name=status, exact=True)).not_to_be_checked()
    expect(page.get_by_role("link", name=runs["completed"])).to_be_visible()

    # From the keyboard: Space checks a box, Tab goes to the next one, Enter in a text
    # field applies the filters.
    group.get_by_role("checkbox", name="failed").focus()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    expect(group.get_by_role("checkbox", name="canceled")).to_be_focused()
    page.keyboard.press("Space")
    page.get_by_label("Job").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#/runs\?status=failed&status=canceled$"))
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("(2 runs)")
    assert shown(page) == {runs["failed"], runs["canceled"]}

    # The address is the filter: opened again, the same boxes and the same runs.
    page.reload()
    group = page.get_by_role("group", name="Status")
    expect(group.get_by_role("checkbox", name="failed")).to_be_checked()
    expect(group.get_by_role("checkbox", name="canceled")).to_be_checked()
    expect(group.get_by_role("checkbox", name="completed")).not_to_be_checked()
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("(2 runs)")
    assert shown(page) == {runs["failed"], runs["canceled"]}

    # One less.
    group.get_by_role("checkbox", name="failed").uncheck()
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"#/runs\?status=canceled$"))
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("(1 run)")
    assert shown(page) == {runs["canceled"]}

    # A link with the API's comma list shows those statuses checked.
    page.goto(f"{ui_server.url}/#/runs?status=completed,failed")
    group = page.get_by_role("group", name="Status")
    expect(group.get_by_role("checkbox", name="completed")).to_be_checked()
    expect(group.get_by_role("checkbox", name="failed")).to_be_checked()
    expect(group.get_by_role("checkbox", name="canceled")).not_to_be_checked()
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("(2 runs)")
    assert shown(page) == {runs["completed"], runs["failed"]}

    # None checked: every run.
    page.get_by_role("link", name="Clear filters").click()
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("(3 runs)")
    for status in STATUSES:
        expect(page.get_by_role("group", name="Status").get_by_role(
            "checkbox", name=status, exact=True)).not_to_be_checked()


def test_live_rows_under_a_status_filter(page: Any, ui_server: UiServer) -> None:
    api = ui_server.api()
    # A run that comes to a status asked for shows up without a reload (it started as
    # a run the filter did not show).
    page.goto(f"{ui_server.url}/#/runs?status=failed")
    expect(page.get_by_role("group", name="Status").get_by_role("checkbox", name="failed")
           ).to_be_checked()
    failed = api.post("/runs", json={"job_id": "examples.fail"}).json()["id"]
    assert finished(ui_server, failed) == "failed"
    expect(page.get_by_role("link", name=failed)).to_be_visible()

    # One that leaves the statuses asked for stays in place, marked.
    long_run = api.post("/runs", json={"job_id": "examples.long", "args": {"seconds": 60}}).json()["id"]
    page.goto(f"{ui_server.url}/#/runs?status=running")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=long_run))
    expect(row.get_by_role("cell").nth(2)).to_have_text("running")
    assert api.post(f"/runs/{long_run}:cancel").status_code in (200, 202)
    assert finished(ui_server, long_run) == "canceled"
    expect(row.get_by_role("cell").nth(2)).to_have_text("canceled no longer matches the filter")
    expect(row).to_have_class(re.compile(r"\bunmatched\b"))
    # Read again, the page shows what matches now.
    page.reload()
    expect(page.get_by_text("No runs match.")).to_be_visible()
