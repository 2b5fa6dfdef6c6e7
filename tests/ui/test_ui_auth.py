"""Logging in from a browser, against a server without ``--dev``: the login form, what the
page keeps (nothing but an HttpOnly cookie), what a session's scopes show, a foreign
page's forged requests (served from real second origins), and a revoked token ending
the session and the live stream it opened.

Tokens are minted and revoked with the real ``flwd :tokens`` CLI, as a person would.
"""

from __future__ import annotations

import http.server
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.conftest import Server, processes_under, run_cli, sse_events, start_server

from .conftest import ui_workspace

#: What a person who runs jobs from the UI needs.
OPERATOR = ("jobs:read", "runs:read", "runs:write", "events:read", "sources:read")
#: Looking only, with the live output.
READER = ("jobs:read", "runs:read", "events:read")
LOGIN_URL = re.compile(r".*#/login\?next=.*")


@dataclass
class AuthServer:
    """A server without ``--dev`` on its own workspace and data dir."""

    server: Server
    workspace: Path
    data_dir: Path
    admin: str = ""

    @property
    def url(self) -> str:
        return self.server.url

    def mint(self, name: str, *scopes: str) -> str:
        created = run_cli([":tokens", "create", "--name", name,
                           *(f"--scope={scope}" for scope in scopes)],
                          cwd=self.workspace, data_dir=self.data_dir)
        assert created.returncode == 0, created.stderr
        return created.stdout.strip()

    def revoke(self, name: str) -> None:
        revoked = run_cli([":tokens", "revoke", name], cwd=self.workspace,
                          data_dir=self.data_dir)
        assert revoked.returncode == 0, revoked.stderr

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request with the admin's bearer token (every scope)."""
        return httpx.request(method, f"{self.url}{path}", timeout=30,
                             headers={"Authorization": f"Bearer {self.admin}"}, **kwargs)

    def run_ids(self) -> list[str]:
        answer = self.api("GET", "/runs", params={"per_page": 100})
        assert answer.status_code == 200, answer.text
        return [run["id"] for run in answer.json()]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    root = tmp_path_factory.mktemp("ui-auth")
    workspace = ui_workspace(root / "ws")
    data_dir = root / "data"
    server = AuthServer(start_server(workspace, data_dir), workspace, data_dir)
    server.admin = server.mint("admin", "*")
    yield server
    server.server.stop()
    leaked = processes_under(f"FLWD_RUN_DIR={data_dir}")
    assert not leaked, f"processes of the auth tests' runs survived: {leaked}"


_NAMES = itertools.count(1)


@pytest.fixture
def names() -> Callable[[str], str]:
    """Unique token names (the server and its tokens are the module's)."""
    return lambda prefix: f"{prefix}-{next(_NAMES)}"


def wait_finished(server: AuthServer, run_id: str) -> str:
    """Follow the run's events until it ends; its final status."""
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", timeout=60,
                      headers={"Authorization": f"Bearer {server.admin}"}) as response:
        for event in sse_events(response.iter_lines()):
            if event["type"] == "run.finish":
                return str(event["data"]["status"])
    raise AssertionError(f"the events of {run_id} ended without run.finish")


def log_in(page: Any, token: str) -> None:
    """Fill the login form by its accessible names and submit it."""
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()


def test_log_in_with_a_minted_token_and_keep_nothing_but_an_http_only_cookie(
        new_page: Callable[..., Any], auth_server: AuthServer, names: Any) -> None:
    name = names("browser")
    token = auth_server.mint(name, *OPERATOR)
    page = new_page()
    # Every request the page makes and every answer it gets, to look for the token.
    sent: list[tuple[str, str]] = []
    answers: list[tuple[str, bytes]] = []
    page.on("request", lambda r: sent.append((r.url, r.post_data or "")))

    def keep(response: Any) -> None:
        if "text/event-stream" in (response.headers.get("content-type") or ""):
            return  # a stream never ends while the page is open: nothing to read back
        try:
            answers.append((response.url, response.body()))
        except PlaywrightError:
            pass  # a redirect or an aborted request has no body

    page.on("response", keep)

    # Anything but the login page asks for a login first, and comes back afterwards.
    page.goto(f"{auth_server.url}/#/runs")
    expect(page).to_have_url(LOGIN_URL)
    expect(page.get_by_label("Token")).to_be_focused()
    # A wrong token is refused on the form, and the field is emptied.
    log_in(page, "flwd_not-a-token")
    expect(page.get_by_role("alert")).to_contain_text("Not logged in")
    expect(page.get_by_label("Token")).to_have_value("")
    log_in(page, token)
    expect(page).to_have_url(re.compile(r".*#/runs$"))
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    jobs = auth_server.api("GET", "/jobs").json()
    real = [job for job in jobs if not job.get("alias_of")]
    expect(page.get_by_text(f"{len(real)} of {len(real)} jobs")).to_be_visible()
    expect(page.get_by_role("link", name="examples.long")).to_be_visible()
    expect(page.locator("#who")).to_contain_text(name)
    expect(page.get_by_role("button", name="Log out")).to_be_visible()

    # The page keeps nothing a script could read: no storage, no readable cookie.
    kept = page.evaluate("""async () => ({
        local: Object.entries(localStorage), session: Object.entries(sessionStorage),
        cookie: document.cookie,
        databases: indexedDB.databases ? (await indexedDB.databases()).map((d) => d.name) : [],
        caches: self.caches ? await caches.keys() : [],
        inputs: [...document.querySelectorAll('input')].map((i) => i.value),
    })""")
    assert kept == {"local": [], "session": [], "cookie": "", "databases": [], "caches": [],
                    "inputs": [""]}, kept
    assert token not in page.content()
    # The browser holds the session in an HttpOnly, SameSite=Strict cookie — not the token.
    [cookie] = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
        "flwd_session", True, "Strict", "/")
    assert token not in cookie["value"]
    # The token went to the server once (the login), and no answer ever carried it back.
    assert [urlsplit(url).path for url, body in sent if token in body] == ["/session"]
    assert not [url for url, _ in sent if token in url]
    assert answers and not [url for url, body in answers if token.encode() in body]

    # Log out: the server ends the session, the cookie goes, the UI asks for a login.
    session_id = cookie["value"]
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert page.context.cookies() == []
    replayed = httpx.get(f"{auth_server.url}/jobs", timeout=30,
                         headers={"Cookie": f"flwd_session={session_id}"})
    assert replayed.status_code == 401
    page.goto(f"{auth_server.url}/#/jobs")
    expect(page).to_have_url(LOGIN_URL)


def test_a_read_only_session_sees_no_control_its_scopes_do_not_allow(
        new_page: Callable[..., Any], auth_server: AuthServer, names: Any) -> None:
    done = auth_server.api("POST", "/runs", json={"job_id": "demo", "args": {"name": "Ro"}})
    assert done.status_code == 201, done.text
    run_id = done.json()["id"]
    page = new_page()
    page.goto(f"{auth_server.url}/#/jobs/demo")
    log_in(page, auth_server.mint(names("reader"), *READER))
    expect(page).to_have_url(re.compile(r".*#/jobs/demo$"))
    expect(page.get_by_role("heading", name="Demo job (demo)")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["Jobs", "History", "Automation", "Status"])
    # No Run (runs:write); the plan preview needs jobs:read only, and its POST passes the
    # CSRF check (the page sends the session's token).
    expect(page.get_by_role("button", name="Run", exact=True)).to_have_count(0)
    page.get_by_label("name", exact=True).fill("Ro")
    page.get_by_role("button", name="Preview plan").click()
    expect(page.get_by_role("region", name="Plan")).to_contain_text("Plan of demo")
    expect(page.get_by_role("alert")).to_have_count(0)

    page.goto(f"{auth_server.url}/#/runs/{run_id}")
    expect(page.locator(".title-badge")).to_have_text("completed")
    expect(page.get_by_role("region", name="Run output")).to_contain_text("demo: Hello, Ro!")
    expect(page.get_by_role("button", name="Download log")).to_be_visible()
    for hidden in ("Cancel", "Re-run", "Edit and re-run"):
        expect(page.get_by_role("button", name=hidden, exact=True)).to_have_count(0)
    # Schedules are seen, not paused, resumed or fired (runs:write).
    page.goto(f"{auth_server.url}/#/automation")
    nightly = page.get_by_role("region", name="nightly", exact=True)
    expect(nightly.get_by_role("listitem")).to_have_count(3)
    expect(page.get_by_role("region", name="backup-push")).to_be_visible()
    for hidden in ("Pause", "Resume", "Trigger now"):
        expect(page.get_by_role("button", name=hidden, exact=True)).to_have_count(0)
    page.goto(f"{auth_server.url}/#/sources")
    expect(page.get_by_role("alert")).to_have_text(
        "Your session may not see this (it lacks the scope sources:read).")
    page.goto(f"{auth_server.url}/#/status")
    expect(page.get_by_role("region", name="Your session")).to_contain_text(
        ", ".join(sorted(READER)))

    # Without events:read: no output, no downloads — said, not failed.
    blind = new_page()
    blind.goto(f"{auth_server.url}/#/runs/{run_id}")
    log_in(blind, auth_server.mint(names("blind"), "jobs:read", "runs:read"))
    expect(blind.locator(".title-badge")).to_have_text("completed")
    expect(blind.get_by_text("Your session may not read events (scope events:read)")
           ).to_be_visible()
    expect(blind.get_by_role("region", name="Run output")).to_have_count(0)
    expect(blind.get_by_role("button", name="Download log")).to_have_count(0)


# -- a foreign page's forged requests -----------------------------------------------------


class _ForeignPages(http.server.BaseHTTPRequestHandler):
    """Pages of another origin that post to the flwd server (``target``) on their own."""

    target = ""

    def do_GET(self) -> None:
        forged = json.dumps({"job_id": "demo", "args": {"name": "forged"}})
        pages = {
            # The classic: a form that submits itself. text/plain smuggles a JSON body
            # (name + "=" + value): {"job_id":"demo","args":{"name":"forged="}}.
            "/form": f"""<!doctype html><title>win a prize</title>
<form id="f" method="post" action="{self.target}/runs" enctype="text/plain">
<input type="hidden" name='{forged[:-3]}' value='"}}}}'></form>
<script>document.getElementById('f').submit()</script>""",
            # The same from a script: a simple request (no preflight) with the cookie,
            # and one that needs a preflight, which no CORS answer allows.
            "/fetch": f"""<!doctype html><title>win a prize</title>
<script>
window.outcome = (async () => {{
  const out = {{}};
  try {{
    const r = await fetch('{self.target}/runs', {{method: 'POST', mode: 'no-cors',
      credentials: 'include', headers: {{'Content-Type': 'text/plain'}}, body: '{forged}'}});
    out.simple = r.type;
  }} catch (e) {{ out.simple = 'error: ' + e; }}
  try {{
    const r = await fetch('{self.target}/runs', {{method: 'POST', credentials: 'include',
      headers: {{'Content-Type': 'application/json'}}, body: '{forged}'}});
    out.preflighted = r.status;
  }} catch (e) {{ out.preflighted = 'refused'; }}
  return out;
}})();
</script>""",
        }
        body = pages.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write((body or "").encode())

    def log_message(self, *args: Any) -> None:
        pass  # quiet


@pytest.fixture(scope="module")
def foreign_port(auth_server: AuthServer) -> Iterator[int]:
    """A second origin on this host: a plain http.server on another port."""
    handler = type("Pages", (_ForeignPages,), {"target": auth_server.url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


@pytest.mark.parametrize(("host", "status", "code"), [
    # Another port of the same host is the same *site*: SameSite=Strict still attaches the
    # cookie, and the server's own check (Origin, Sec-Fetch-Site) refuses the request.
    ("127.0.0.1", 403, "csrf.failed"),
    # Another site: the browser does not attach the cookie at all.
    ("localhost", 401, "unauthorized"),
])
def test_a_foreign_pages_forged_posts_are_refused(
        new_page: Callable[..., Any], auth_server: AuthServer, foreign_port: int,
        names: Any, host: str, status: int, code: str) -> None:
    page = new_page()
    page.goto(f"{auth_server.url}/#/jobs")
    log_in(page, auth_server.mint(names("victim"), *OPERATOR))
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    before = auth_server.run_ids()
    # What the server answered each POST /runs the browser made.
    posts: list[int] = []
    page.context.on("response", lambda r: posts.append(r.status) if r.request.method == "POST"
                    and urlsplit(r.url).path == "/runs" else None)
    foreign = f"http://{host}:{foreign_port}"

    # The foreign page's scripts, in the same browser, while the session is alive.
    attacker = page.context.new_page()
    attacker.goto(f"{foreign}/fetch")
    outcome = attacker.evaluate("() => window.outcome")
    assert outcome == {"simple": "opaque", "preflighted": "refused"}, outcome
    # Its self-submitting form: the browser navigates to the server's refusal (and shows
    # the problem document as text).
    with attacker.expect_response(lambda r: r.request.method == "POST") as posted:
        attacker.goto(f"{foreign}/form")
    assert posted.value.status == status
    expect(attacker).to_have_url(f"{auth_server.url}/runs")
    assert json.loads(attacker.locator("pre").text_content() or "")["code"] == code

    # What reached the server was refused: the simple fetch and the form (the
    # preflighted one was never sent), and no run was made.
    assert posts == [status, status]
    assert auth_server.run_ids() == before

    # The session itself was never at fault: its own page starts a run.
    page.goto(f"{auth_server.url}/#/jobs/demo")
    page.get_by_label("name", exact=True).fill("genuine")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("region", name="Run output")).to_contain_text("demo: Hello, genuine!")
    assert len(auth_server.run_ids()) == len(before) + 1


# -- revocation ---------------------------------------------------------------------------


def test_revoking_the_token_ends_the_session_its_pages_and_their_live_stream(
        new_page: Callable[..., Any], auth_server: AuthServer, names: Any) -> None:
    name = names("revoked")
    token = auth_server.mint(name, *OPERATOR)
    started = auth_server.api("POST", "/runs", json={"job_id": "examples.long",
                                                     "args": {"seconds": 120}})
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    try:
        # A run page following the live output, and a job's form in another tab.
        page = new_page()
        streams: list[Any] = []   # the run's event streams, as the page opens them
        ended: list[str] = []     # those the server ended
        page.on("response", lambda r: streams.append(r) if "/events?" in r.url else None)
        page.on("requestfinished", lambda r: ended.append(r.url) if "/events?" in r.url else None)
        page.goto(f"{auth_server.url}/#/runs/{run_id}")
        log_in(page, token)
        expect(page.get_by_role("region", name="Run output")).to_contain_text("long: tick 1")
        expect(page.locator(".conn")).to_have_text("live")
        form = page.context.new_page()
        form.goto(f"{auth_server.url}/#/jobs/demo")
        form.get_by_label("name", exact=True).fill("late")
        before = auth_server.run_ids()
        assert [response.status for response in streams] == [200]
        assert ended == []

        auth_server.revoke(name)

        # The server ends the open stream; the page's reconnection is refused, and it
        # goes back to the login form, keeping the run page as where to return.
        expect(page).to_have_url(LOGIN_URL)
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        expect(page).to_have_url(re.compile(rf".*next=%23%2Fruns%2F{run_id}$"))
        statuses = [response.status for response in streams]
        assert statuses[0] == 200 and 401 in statuses[1:], statuses
        assert ended and ended[0] == streams[0].url

        # The other tab's next action is refused, and it asks for a login too.
        form.get_by_role("button", name="Run", exact=True).click()
        expect(form).to_have_url(LOGIN_URL)
        assert auth_server.run_ids() == before
        # The cookie opens nothing any more.
        [cookie] = page.context.cookies()
        refused = httpx.get(f"{auth_server.url}/jobs", timeout=30,
                            headers={"Cookie": f"flwd_session={cookie['value']}"})
        assert refused.status_code == 401

        # A new token logs the tab in again, back on the form it was on.
        log_in(form, auth_server.mint(names("again"), *OPERATOR))
        expect(form).to_have_url(re.compile(r".*#/jobs/demo$"))
        expect(form.get_by_role("button", name="Run", exact=True)).to_be_visible()
    finally:
        auth_server.api("POST", f"/runs/{run_id}:cancel")
        assert wait_finished(auth_server, run_id) == "canceled"
