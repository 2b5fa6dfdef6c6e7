"""Every control of every page has an accessible name (read from Chromium's accessibility
tree, as a screen reader gets it), at desktop and phone widths, in light and dark."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import UiServer

CONTROLS = {"button", "link", "textbox", "searchbox", "checkbox", "radio", "combobox",
            "spinbutton", "listbox", "slider", "switch", "menuitem", "tab"}


def unnamed_controls(page: Any) -> list[str]:
    session = page.context.new_cdp_session(page)
    try:
        nodes = session.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        session.detach()
    missing = []
    for node in nodes:
        role = node.get("role", {}).get("value")
        if node.get("ignored") or role not in CONTROLS:
            continue
        name = (node.get("name") or {}).get("value", "")
        if not str(name).strip():
            missing.append(f"{role} (backend node {node.get('backendDOMNodeId')})")
    return missing


@pytest.mark.parametrize("viewport,scheme", [({"width": 1200, "height": 900}, "light"),
                                             ({"width": 360, "height": 740}, "dark")])
def test_every_control_has_a_name(new_page, ui_server: UiServer, viewport: dict[str, int],
                                  scheme: str) -> None:
    page = new_page(viewport=viewport, color_scheme=scheme)
    run = ui_server.api().post("/runs", json={"job_id": "examples.pipeline", "args": {}}).json()
    visits = {
        "#/jobs": page.get_by_role("heading", name="Jobs"),
        "#/jobs/uitest.types": page.get_by_role("button", name="Preview plan"),
        f"#/runs/{run['id']}": page.locator(".title-badge", has_text="completed"),
        "#/runs": page.get_by_role("navigation", name="Pages"),
        "#/automation": page.get_by_role("region", name="backup-push"),
        "#/jobs/uitest.nightly": page.get_by_role("region", name="Automation"),
        "#/sources": page.get_by_role("button", name="Add source"),
        "#/status": page.get_by_role("region", name="Storage"),
        "#/login": page.get_by_role("button", name="Log in"),
    }
    for address, ready in visits.items():
        page.goto(f"{ui_server.url}/{address}")
        expect(ready).to_be_visible()
        if address == "#/jobs/uitest.types":
            # Rows added on demand are named too.
            page.get_by_role("button", name="Add ports").click()
            page.get_by_role("button", name="Add labels entry").click()
        assert unnamed_controls(page) == [], address
        # Nothing wider than the screen but the log and tables, which scroll themselves.
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], address
