"""Screenshots of the job form, a run, history and automation — light and dark, desktop
and phone.

They are taken by this test on every run (into a temporary folder), so the pages they
show are the pages the other tests check. ``FLWD_UI_SCREENSHOTS=docs/images`` writes
them where docs/ui.md and the README use them (``just screenshots``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import UiServer

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 360, "height": 740}}
PNG = b"\x89PNG\r\n\x1a\n"


def _folder(tmp_path: Path) -> Path:
    chosen = os.environ.get("FLWD_UI_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(new_page: Callable[..., Any], ui_server: UiServer, tmp_path: Path,
                     scheme: str) -> None:
    folder = _folder(tmp_path)
    run = ui_server.api().post("/runs", json={"job_id": "demo",
                                              "args": {"name": "Ada", "tags": ["docs"]}})
    run_id = run.json()["id"]
    taken: dict[str, bytes] = {}
    for size, viewport in SIZES.items():
        page = new_page(viewport=viewport, color_scheme=scheme)

        page.goto(f"{ui_server.url}/#/jobs/demo")
        expect(page.get_by_label("name", exact=True)).to_be_visible()
        taken[f"ui-job-form-{scheme}-{size}"] = page.screenshot(full_page=True)

        page.goto(f"{ui_server.url}/#/runs/{run_id}")
        expect(page.get_by_role("region", name="Run output")).to_contain_text("Hello, Ada!")
        expect(page.locator(".title-badge")).to_have_text("completed")
        taken[f"ui-run-{scheme}-{size}"] = page.screenshot(full_page=True)

        page.goto(f"{ui_server.url}/#/runs?job_id=demo")
        expect(page.get_by_role("link", name=run_id)).to_be_visible()
        taken[f"ui-history-{scheme}-{size}"] = page.screenshot(full_page=True)

        # In a browser whose zone is not the schedules' (both clocks show).
        page = new_page(viewport=viewport, color_scheme=scheme, timezone_id="America/New_York")
        page.goto(f"{ui_server.url}/#/automation")
        expect(page.get_by_role("region", name="nightly", exact=True).get_by_role(
            "listitem")).to_have_count(3)
        expect(page.get_by_role("region", name="backup-push")).to_contain_text("none yet")
        taken[f"ui-automation-{scheme}-{size}"] = page.screenshot(full_page=True)

    for name, image in taken.items():
        assert image.startswith(PNG), name
        (folder / f"{name}.png").write_bytes(image)
    # A phone's page is not the desktop's squeezed: the shots differ in size.
    assert taken[f"ui-job-form-{scheme}-phone"] != taken[f"ui-job-form-{scheme}-desktop"]
