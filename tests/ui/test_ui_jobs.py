"""The jobs list and a job's form, in a real browser against a real server."""

from __future__ import annotations

import json
import time
from typing import Any

from playwright.sync_api import expect

from .conftest import UiServer


def open_job(page: Any, ui_server: UiServer, job_id: str) -> None:
    page.goto(f"{ui_server.url}/#/jobs/{job_id}")
    expect(page.get_by_role("button", name="Preview plan")).to_be_visible()


def test_jobs_are_grouped_by_folder_with_aliases_and_searchable(page, ui_server) -> None:
    jobs = ui_server.api().get("/jobs").json()
    real = [job for job in jobs if not job.get("alias_of")]
    page.goto(f"{ui_server.url}/")
    expect(page.get_by_role("heading", name="Jobs", level=1)).to_be_visible()
    expect(page.get_by_text(f"{len(real)} of {len(real)} jobs")).to_be_visible()
    for folder in ("examples/", "uitest/", "scripts/"):
        expect(page.get_by_role("region", name=folder)).to_be_visible()
    examples = page.get_by_role("region", name="examples/")
    expect(examples.get_by_role("link", name="examples.long")).to_be_visible()
    # The alias hello-demo (flwd.yaml) is shown on the job it names, not as a job.
    demo_card = page.get_by_role("listitem").filter(has=page.get_by_role("link", name="demo — Demo job"))
    expect(demo_card.get_by_role("link", name="hello-demo")).to_be_visible()

    page.get_by_label("Search jobs").fill("pipe")
    expect(page.get_by_text(f"1 of {len(real)} jobs")).to_be_visible()
    expect(page.get_by_role("link", name="examples.pipeline")).to_be_visible()
    expect(page.get_by_role("link", name="examples.long")).to_have_count(0)
    # Aliases are searched too.
    page.get_by_label("Search jobs").fill("hello-demo")
    expect(page.get_by_role("link", name="demo — Demo job")).to_be_visible()

    page.get_by_role("link", name="demo — Demo job").click()
    expect(page.get_by_role("heading", name="Demo job (demo)")).to_be_visible()
    expect(page.get_by_text("Prints a greeting")).to_be_visible()


def test_form_has_a_control_per_type_with_defaults_help_and_required(page, ui_server) -> None:
    open_job(page, ui_server, "uitest.types")
    title = page.get_by_label("title", exact=True)
    expect(title).to_have_attribute("aria-required", "true")
    expect(page.locator("#field-title .req")).to_have_text("required")
    expect(title).to_have_accessible_description("A lower-case title")
    expect(title).to_have_attribute("maxlength", "20")
    count = page.get_by_label("count", exact=True)
    expect(count).to_have_attribute("type", "number")
    expect(count).to_have_value("3")
    expect(count).to_have_attribute("min", "1")
    expect(count).to_have_attribute("max", "10")
    expect(page.get_by_label("ratio", exact=True)).to_have_value("0.5")
    expect(page.get_by_label("dry_run", exact=True)).to_be_checked()
    # Two choices: radio buttons, the default chosen; six: a select.
    expect(page.get_by_role("radiogroup", name="mode")).to_be_visible()
    expect(page.get_by_role("radio", name="fast")).to_be_checked()
    expect(page.get_by_role("combobox", name="level")).to_be_visible()
    # An array: one input per item, more on demand; an object: key/value rows.
    page.get_by_label("ports", exact=True).fill("80")
    page.get_by_role("button", name="Add ports").click()
    expect(page.get_by_label("ports 2", exact=True)).to_be_focused()
    page.get_by_label("ports 2", exact=True).fill("443")
    page.get_by_label("labels", exact=True).fill("team")
    page.get_by_label("labels value 1", exact=True).fill("core")
    secret = page.get_by_label("api_key", exact=True)
    expect(secret).to_have_attribute("type", "password")
    expect(secret).to_have_attribute("autocomplete", "off")
    expect(secret).to_have_value("")

    title.fill("hello world")
    secret.fill("k3y-never-shown")
    page.get_by_role("button", name="Copy as curl").click()
    curl = page.get_by_role("region", name="curl command").locator("pre")
    expect(curl).to_contain_text('"api_key":"<api_key>"')
    body = json.loads(curl.inner_text().split("-d '", 1)[1].rstrip("'"))
    assert body == {"job_id": "uitest.types", "args": {
        "title": "hello world", "ports": [80, 443], "labels": {"team": "core"},
        "api_key": "<api_key>"}}
    page.get_by_role("button", name="Copy as CLI").click()
    cli = page.get_by_role("region", name="CLI command").locator("pre")
    expect(cli).to_have_text(f"flwd --server {ui_server.url} uitest.types --title 'hello world' "
                             "--ports 80 --ports 443 --labels team=core "
                             '--api_key-file "$API_KEY_FILE"')
    page.get_by_role("button", name="Preview plan").click()
    plan = page.get_by_role("region", name="Plan")
    expect(plan.get_by_role("row", name="api_key [secret]")).to_be_visible()
    expect(plan.get_by_role("row", name='ports [80,443]')).to_be_visible()
    assert "k3y-never-shown" not in page.content()


def test_the_browser_checks_what_the_server_checks_before_sending(page, ui_server) -> None:
    open_job(page, ui_server, "uitest.types")
    posted: list[str] = []
    page.on("request", lambda request: posted.append(request.url) if request.method == "POST" else None)
    page.get_by_label("title", exact=True).fill("Not Lower")
    page.get_by_label("count", exact=True).fill("11")
    page.get_by_label("ports", exact=True).fill("8.5")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#field-title .field-error")).to_have_text(
        "'Not Lower' does not match pattern '[a-z ]+'")
    expect(page.locator("#field-count .field-error")).to_have_text("must be at most 10 (got 11)")
    expect(page.locator("#field-ports .field-error")).to_have_text("item '8.5' is not an integer")
    expect(page.locator("#field-api_key .field-error")).to_have_text("required")
    expect(page.get_by_label("title", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("title", exact=True)).to_be_focused()
    assert posted == []


def test_the_servers_message_shows_next_to_its_field(page, ui_server) -> None:
    # format: file is checked on the server's host: only the server can say it is wrong.
    open_job(page, ui_server, "uitest.types")
    page.get_by_label("title", exact=True).fill("ok")
    page.get_by_label("api_key", exact=True).fill("s3cret-value")
    page.get_by_label("config", exact=True).fill("nope.txt")
    with page.expect_response(lambda r: r.url.endswith("/runs") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Run").click()
    assert answer.value.status == 422
    error = page.locator("#field-config .field-error")
    expect(error).to_have_text("'nope.txt' does not exist (format: file)")
    expect(page.get_by_label("config", exact=True)).to_have_accessible_description(
        "A file the job reads 'nope.txt' does not exist (format: file)")
    expect(page.get_by_role("alert").first).to_contain_text("argument validation failed")
    assert page.url.endswith("#/jobs/uitest.types")


def test_the_first_load_asks_for_the_jobs_beside_the_session(page: Any, ui_server: UiServer) -> None:
    # GET /session is held until GET /jobs has been asked for: a page that waited for the
    # session before asking for its list (two round trips in a row) never gets here.
    held: list[Any] = []
    page.route("**/session", lambda route: held.append(route))
    with page.expect_request(lambda request: request.url.endswith("/jobs"), timeout=15_000):
        page.goto(f"{ui_server.url}/#/jobs", wait_until="commit")
    # The held route reaches this process as its own message: wait for it (round trips).
    deadline = time.monotonic() + 15
    while not held and time.monotonic() < deadline:
        page.evaluate("0")
    assert len(held) == 1
    held[0].continue_()
    jobs = ui_server.api().get("/jobs").json()
    real = [job for job in jobs if not job.get("alias_of")]
    expect(page.get_by_text(f"{len(real)} of {len(real)} jobs")).to_be_visible()
    # Only the landing page's list, once: a navigation asks again (its data is current).
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.get_by_role("link", name="demo — Demo job").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    expect(page.get_by_text(f"{len(real)} of {len(real)} jobs")).to_be_visible()
    assert any(url.endswith("/jobs") for url in asked), asked
