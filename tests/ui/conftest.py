"""Browser tests of the web UI: a real ``flwd :serve --dev`` driven through Debian's
Chromium by Playwright for Python (``executable_path``: the system's browser, never one
that ``playwright install`` would download).

Starting a server and a browser is slow, so both are per module; every test gets fresh
browser contexts (cookies, storage, viewport) from ``new_page``. Other UI test modules
reuse these fixtures: ``ui_server`` (``.url``, ``.workspace``, ``.data_dir``, ``.api()``),
``browser``, ``new_page(**context options)`` and ``page``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, copy_bundled_scripts, processes_under, start_server, write_job

#: Debian's Chromium (``apt-get install chromium``; .ci/run installs it).
CHROMIUM = os.environ.get("FLWD_TEST_CHROMIUM", "/usr/bin/chromium")
#: Headless, and nothing that would reach beyond this machine.
BROWSER_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync"]
#: The servers' FLWD_GRACE (seconds between TERM and KILL when a run is cancelled).
UI_GRACE = 3
#: How long an expectation waits (a run starts and prints within this on a busy machine).
EXPECT_TIMEOUT_MS = 20_000

HERE = Path(__file__).resolve().parent

#: Jobs the UI tests add to the bundled scripts: every argument type, and a format the
#: browser cannot check (a file on the server's host), so the server's message shows.
UI_JOBS: dict[str, tuple[str, dict[str, str]]] = {
    "uitest/types": ("""\
job: {summary: Every argument type (UI tests)}
interpreter: bash
argspec:
  args:
    - {name: title, type: string, required: true, minLength: 2, maxLength: 20,
       pattern: "[a-z ]+", description: A lower-case title}
    - {name: count, type: integer, default: 3, minimum: 1, maximum: 10}
    - {name: ratio, type: number, default: 0.5}
    - {name: dry_run, type: boolean, default: true}
    - {name: mode, type: string, enum: [fast, slow], default: fast}
    - {name: level, type: string, enum: [a, b, c, d, e, f]}
    - {name: ports, type: array, items_type: integer}
    - {name: labels, type: object}
    - {name: api_key, type: string, format: secret, required: true}
    - {name: config, type: string, format: file, description: A file the job reads}
""", {"100_main.sh": 'echo "args: $FLWD_ARGS_JSON"\n'}),
    # Schedules that never fire while the tests run (29 February, and 2099), and a webhook.
    "uitest/nightly": ("""\
job: {summary: A nightly backup (schedules and a webhook)}
interpreter: bash
argspec:
  args:
    - {name: target, type: string, default: /srv}
schedule:
  - {cron: "30 2 29 2 *", timezone: Europe/Berlin, name: nightly, args: {target: /srv/nightly}}
  - {at: "2099-01-01T09:00:00+01:00", name: new-year}
hooks:
  - name: backup-push
    description: Back up the repository that was pushed
    args:
      target: {body: /repository/name}
    auth:
      hmac: {secret_file: hooks/backup.secret}
""", {"100_main.sh": 'echo "backing up $target"\n'}),
}
#: The secret of the ``backup-push`` hook (a 0600 file of the workspace, as a real one is).
UI_HOOK_SECRET = "ui-hook-secret-7f3a"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test of this folder drives a browser: `-m "not browser"` leaves them out.
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


@dataclass
class UiServer:
    """A ``--dev`` server on its own workspace (bundled scripts + :data:`UI_JOBS`); the
    folder ``extra`` next to the workspace (``scripts/hello``) may be added as a source."""

    server: Server
    workspace: Path
    data_dir: Path
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def extra(self) -> Path:
        return self.workspace.parent / "extra" / "scripts"

    def api(self) -> httpx.Client:
        """An API client of this server (``--dev``: the token ``dev-token``)."""
        client = httpx.Client(base_url=self.url, timeout=30,
                              headers={"Authorization": "Bearer dev-token"})
        self.clients.append(client)
        return client


def ui_workspace(root: Path) -> Path:
    workspace = copy_bundled_scripts(root)
    for rel, (config, scripts) in UI_JOBS.items():
        write_job(workspace, rel, config, scripts)
    secret = workspace / "hooks" / "backup.secret"
    secret.parent.mkdir(mode=0o700, exist_ok=True)
    secret.write_text(UI_HOOK_SECRET)
    secret.chmod(0o600)
    return workspace


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """One ``flwd :serve --dev`` per module; afterwards no process of its runs may survive."""
    root = tmp_path_factory.mktemp("ui")
    data_dir = root / "data"
    # A folder of jobs the sources page may add (inside --allow-path).
    write_job(root / "extra", "hello", "job: {summary: A job of the extra source}\n"
              "interpreter: bash\n", {"100_hello.sh": "echo hello from extra\n"})
    # A grace that is not the default: the cancel ladder must show the server's.
    server = UiServer(start_server(ui_workspace(root / "ws"), data_dir, "--dev",
                                   "--allow-path", str(root / "extra"),
                                   FLWD_GRACE=str(UI_GRACE)), root / "ws", data_dir)
    yield server
    for client in server.clients:
        client.close()
    server.server.stop()
    leaked = processes_under(f"FLWD_RUN_DIR={data_dir}")
    for pid in leaked:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leaked, f"processes of the UI tests' runs survived: {leaked}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, headless, once per module."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no browser at {CHROMIUM}: apt-get install chromium (or set FLWD_TEST_CHROMIUM)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """``new_page(**options)``: a page in a fresh context (``viewport``, ``color_scheme``,
    … as ``browser.new_context`` takes them). A script error on any page fails the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make(**options: Any) -> Any:
        options.setdefault("viewport", {"width": 1200, "height": 900})
        context = browser.new_context(**options)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    return new_page()
