"""Running jobs from the browser: live output, secrets, cancel, re-run, steps, history."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from .conftest import UI_GRACE, UiServer

SECRET = "s3cr3t-Tok3n-do-not-show"
RUN_URL = re.compile(r".*#/runs/(run-[0-9A-Z]+)$")


def run_id_of(page: Any) -> str:
    match = RUN_URL.match(page.url)
    assert match, page.url
    return match.group(1)


def test_demo_from_its_form_with_an_array_and_a_secret(page, ui_server: UiServer) -> None:
    # Every answer the page gets, read as it comes. A browser cannot hand out the body of
    # an event stream it was reading, and may have dropped one the page read itself (its
    # devtools buffer): those are read again from their URL below.
    bodies: list[tuple[str, bytes]] = []
    again: list[str] = []

    def keep(response: Any) -> None:
        if "text/event-stream" in (response.headers.get("content-type") or ""):
            again.append(response.url)
            return
        try:
            bodies.append((response.url, response.body()))
        except PlaywrightError:
            again.append(response.url)

    page.on("response", keep)
    page.goto(f"{ui_server.url}/#/jobs/demo")
    page.get_by_label("name", exact=True).fill("Alice")
    page.get_by_label("tags", exact=True).fill("red")
    page.get_by_role("button", name="Add tags").click()
    page.get_by_label("tags 2", exact=True).fill("blue")
    page.get_by_label("secret_token", exact=True).fill(SECRET)
    page.get_by_role("button", name="Run").click()

    expect(page).to_have_url(RUN_URL)
    output = page.get_by_role("region", name="Run output")
    expect(output).to_contain_text("demo: Hello, Alice!")
    expect(output).to_contain_text("demo: tags: red blue")
    expect(output).to_contain_text(f"demo: secret token received ({len(SECRET)} characters)")
    expect(page.locator(".title-badge")).to_have_text("completed")
    run_id = run_id_of(page)

    # History shows the run, its secret as [secret].
    page.get_by_role("link", name="History").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=run_id))
    expect(row).to_contain_text("secret_token=[secret]")
    expect(row).to_contain_text('tags=["red","blue"]')

    # The secret is nowhere: not in the DOM, an input, the address, or any answer the
    # page received (the global /events, from "now" and never ending, carries the same
    # events as the run's own stream, which is read again).
    assert SECRET not in page.content()
    assert SECRET not in page.url
    values = page.evaluate("[...document.querySelectorAll('input')].map((i) => i.value)")
    assert SECRET not in "".join(values)
    api = ui_server.api()
    bodies += [(url, api.get(url.removeprefix(ui_server.url)).content) for url in again
               if urlsplit(url).path != "/events"]
    checked = []
    for url, body in bodies:
        assert SECRET.encode() not in body, url
        checked.append(url.removeprefix(ui_server.url))
    assert "/runs" in checked and f"/runs/{run_id}" in checked
    assert any(url.startswith(f"/runs/{run_id}/events") for url in checked), checked
    assert SECRET not in api.get("/runs").text


def test_live_output_then_cancel_shows_the_ladder(page, ui_server: UiServer) -> None:
    page.goto(f"{ui_server.url}/#/jobs/examples.long")
    page.get_by_label("seconds", exact=True).fill("120")
    page.get_by_label("ignore_term", exact=True).check()
    page.get_by_role("button", name="Run").click()
    expect(page).to_have_url(RUN_URL)
    # Live: ticks arrive while the run is running.
    expect(page.locator(".title-badge")).to_have_text("running")
    expect(page.get_by_role("region", name="Run output")).to_contain_text("long: tick 2")
    expect(page.locator(".conn")).to_have_text("live")

    page.get_by_role("button", name="Cancel").click()
    ladder = page.get_by_role("region", name="Cancel progress")
    expect(ladder).to_contain_text("TERM sent at")
    expect(ladder).to_contain_text(re.compile(rf"grace period: \d s left of {UI_GRACE} s"))
    # The grandchild ignores TERM: the run ends when KILL comes, after the grace.
    expect(page.locator(".title-badge")).to_have_text("canceled", timeout=60_000)
    expect(ladder.get_by_role("heading")).to_have_text("Canceled")
    expect(ladder).to_contain_text(f"grace period ({UI_GRACE} s) over")
    expect(ladder).to_contain_text("KILL sent to what was left")
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    assert ui_server.api().get(f"/runs/{run_id_of(page)}").json()["status"] == "canceled"


def test_rerun_and_edit_and_rerun(page, ui_server: UiServer) -> None:
    api = ui_server.api()
    first = api.post("/runs", json={"job_id": "demo", "args": {"name": "Bob", "tags": ["x"]}}).json()
    page.goto(f"{ui_server.url}/#/runs/{first['id']}")
    expect(page.locator(".title-badge")).to_have_text("completed")
    expect(page.get_by_role("link", name=f"{ui_server.url}/#/runs/{first['id']}")).to_be_visible()

    page.get_by_role("button", name="Re-run", exact=True).click()
    expect(page).not_to_have_url(re.compile(f".*{first['id']}$"))
    expect(page).to_have_url(RUN_URL)
    again = run_id_of(page)
    expect(page.get_by_role("region", name="Run output")).to_contain_text("demo: Hello, Bob!")
    expect(page.locator(".title-badge")).to_have_text("completed")
    assert api.get(f"/runs/{again}").json()["result"]["resolved_args"] == \
        first["result"]["resolved_args"]

    page.get_by_role("button", name="Edit and re-run").click()
    expect(page).to_have_url(re.compile(rf".*#/jobs/demo\?rerun={again}$"))
    expect(page.get_by_label("name", exact=True)).to_have_value("Bob")
    expect(page.get_by_label("tags", exact=True)).to_have_value("x")
    expect(page.get_by_label("secret_token", exact=True)).to_have_value("")
    page.get_by_label("name", exact=True).fill("Carol")
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("region", name="Run output")).to_contain_text("demo: Hello, Carol!")


def test_a_secret_run_is_rerun_from_its_form(page, ui_server: UiServer) -> None:
    api = ui_server.api()
    run = api.post("/runs", json={"job_id": "demo", "args": {"name": "Dee", "secret_token": SECRET}}).json()
    page.goto(f"{ui_server.url}/#/runs/{run['id']}")
    expect(page.locator(".title-badge")).to_have_text("completed")
    page.get_by_role("button", name="Re-run", exact=True).click()
    # Secrets are never kept: the form asks for it again.
    expect(page).to_have_url(re.compile(rf".*#/jobs/demo\?rerun={run['id']}$"))
    expect(page.get_by_text("Secrets are never kept: enter them again.")).to_be_visible()
    expect(page.get_by_label("name", exact=True)).to_have_value("Dee")
    expect(page.get_by_label("secret_token", exact=True)).to_have_value("")


def test_dag_steps_have_sections_with_status(page, ui_server: UiServer) -> None:
    page.goto(f"{ui_server.url}/#/jobs/examples.pipeline")
    page.get_by_role("button", name="Run").click()
    expect(page.locator(".title-badge")).to_have_text("completed")
    steps = page.get_by_role("region", name="Steps")
    for step in ("fetch", "build", "lint", "test", "package"):
        item = steps.get_by_role("listitem").filter(has=page.get_by_role("button", name=step, exact=True))
        expect(item).to_contain_text("completed")
    output = page.get_by_role("region", name="Run output")
    expect(output).to_contain_text("▶ package started")
    page.get_by_label("Show step").select_option(label="lint")
    expect(output).not_to_contain_text("package")
    expect(output).to_contain_text("✔ lint completed")


def test_a_failed_run_jumps_to_its_first_error(page, ui_server: UiServer) -> None:
    page.goto(f"{ui_server.url}/#/jobs/examples.fail")
    page.get_by_role("button", name="Run").click()
    expect(page.locator(".title-badge")).to_have_text("failed")
    page.get_by_role("button", name="Jump to first error").click()
    current = page.locator(".log-row.current")
    expect(current).to_have_count(1)
    expect(current).to_have_class(re.compile(r"\berr\b"))
    expect(current).to_contain_text("fail: about to fail with status 3")
    expect(page.get_by_role("region", name="Run output")).to_be_focused()


def test_downloads_of_the_log_as_text_and_ndjson(page, ui_server: UiServer) -> None:
    run = ui_server.api().post("/runs", json={"job_id": "demo", "args": {"name": "Eve"}}).json()
    page.goto(f"{ui_server.url}/#/runs/{run['id']}")
    expect(page.locator(".title-badge")).to_have_text("completed")
    with page.expect_download() as text:
        page.get_by_role("button", name="Download log").click()
    assert "demo: Hello, Eve!" in text.value.path().read_text()
    with page.expect_download() as ndjson:
        page.get_by_role("button", name="Download NDJSON").click()
    events = [json.loads(line) for line in ndjson.value.path().read_text().splitlines()]
    assert events[0]["type"] == "run.start" and events[-1]["type"] == "run.finish"
    assert {event["run_id"] for event in events} == {run["id"]}
