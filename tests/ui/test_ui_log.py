"""The log view's own parts, in the browser: the line store, ANSI colours, the
virtualised view at a million lines (the modules served by a real server, run in page)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import UiServer

MODULE = "/ui/js/log.js"


@pytest.fixture
def log_page(page: Any, ui_server: UiServer) -> Any:
    page.goto(f"{ui_server.url}/#/status")
    page.wait_for_selector("h1")
    return page


def run_js(page: Any, body: str) -> Any:
    """Evaluate `body` (an async function body) with the log module as `log`."""
    return page.evaluate(f"async () => {{ const log = await import('{MODULE}'); {body} }}")


def test_ansi_sgr_becomes_segments(log_page: Any) -> None:
    segments = run_js(log_page, r"""
        return [
          log.ansiSegments('plain'),
          log.ansiSegments('\x1b[1;31mred bold\x1b[0m and \x1b[38;5;208morange\x1b[39m.'),
          log.ansiSegments('\x1b[38;2;1;2;3mrgb\x1b[48;5;4mbg\x1b[m'),
          log.ansiSegments('10%\r50%\r100%\r'),
          log.ansiSegments('\x1b[2Kcleared\x1b]0;title\x07 text'),
        ];""")
    assert segments[0] == [{"text": "plain"}]
    assert segments[1] == [{"text": "red bold", "bold": True, "fg": 1}, {"text": " and "},
                           {"text": "orange", "fg": "rgb(255,135,0)"}, {"text": "."}]
    assert segments[2] == [{"text": "rgb", "fg": "rgb(1,2,3)"},
                           {"text": "bg", "fg": "rgb(1,2,3)", "bg": 4}]
    # A progress bar: the terminal shows what came after the last carriage return.
    assert segments[3] == [{"text": "100%"}]
    # Cursor and title sequences are dropped.
    assert "".join(s["text"] for s in segments[4]) == "cleared text"


def test_a_million_lines_keep_few_rows_in_the_page(log_page: Any) -> None:
    result = run_js(log_page, r"""
        const store = new log.LogStore();
        for (let i = 0; i < 1000000; i++) {
          store.push(`line ${i} ${i % 1000 === 999 ? 'needle' : 'hay'}`, i % 7 === 0 ? log.STDERR : 0, 1);
        }
        const view = new log.LogView(store);
        view.el.style.height = '400px';
        document.querySelector('main').append(view.el);
        view.appended(0);
        const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        await frame();
        const rows = () => [...view.el.querySelectorAll('.log-row .tx')].map((e) => e.textContent);
        const atEnd = rows();
        const domRows = view.el.querySelectorAll('.log-row').length;
        const height = view.el.scrollHeight;
        view.reveal(500000);
        await frame();
        const middle = rows();
        const current = view.el.querySelector('.log-row.current .tx').textContent;
        view.el.scrollTop = 0;
        await frame();
        const top = rows();
        const found = store.find(/needle/g);
        const err = view.el.querySelector('.log-row.err .ch').textContent;
        return { atEnd, domRows, height, middle, current, top, found: [found.length, found[0], found[999]],
                 text: [store.text(0), store.text(4095), store.text(4096), store.text(999999)], err };""")
    # Following: the last lines show; only about a screenful of rows exists in the page.
    assert result["atEnd"][-1] == "line 999999 needle"
    assert result["domRows"] < 40
    # 18 million pixels of rows are scaled into what a browser can scroll.
    assert 1_000_000 < result["height"] <= 8_000_000
    assert result["current"] == "line 500000 hay"
    assert "line 500000 hay" in result["middle"]
    assert result["top"][0] == "line 0 hay"
    assert result["found"] == [1000, 999, 999999]
    assert result["text"] == ["line 0 hay", "line 4095 hay", "line 4096 hay", "line 999999 needle"]
    assert result["err"] == "err"


def test_the_cancel_ladder_measures_on_the_servers_clock(log_page: Any) -> None:
    # The cancel request's answer comes a little after the server sent TERM (its
    # run.canceled event's time); a run KILLed after a grace of 3 s ends just after the
    # grace by the server's clock: that is "KILL sent", however late the answer came.
    outcome = log_page.evaluate("""async () => {
        const { cancelLadder } = await import('/ui/js/run.js');
        const ladder = (grace) => cancelLadder(grace, new AbortController().signal);
        const server = Date.now() - 10000;
        const killed = ladder(3);
        killed.start(server + 400);        // the 202, 0.4 s after TERM
        killed.start(server, true);        // run.canceled
        killed.finish(server + 3100, 'canceled');
        const quick = ladder(3);
        quick.start(server, true);
        quick.finish(server + 800, 'canceled');
        return [killed.el.innerText, quick.el.innerText];
    }""")
    assert "grace period (3 s) over" in outcome[0] and "KILL sent to what was left" in outcome[0]
    assert "The run ended 3.1 s after TERM." in outcome[0]
    assert "ended within the grace period (0.8 s)" in outcome[1]
    assert "KILL not needed" in outcome[1]
