"""The CLI's run renderer (``flwd.cli._render.RunOutput``) on hand-made event sequences."""

from __future__ import annotations

import io
from typing import Any

import pytest

from flwd.cli._render import RunOutput
from flwd.events import EventRecord


def _record(kind: str, data: dict[str, Any], lines: bytes | None = None) -> EventRecord:
    return EventRecord(run_id="run-R", job_id="job", type=kind, ts=0.0, data=data, lines=lines)


def _render(records: list[EventRecord], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("NO_COLOR", "1")
    output = RunOutput(False)
    both = io.BytesIO()
    output.stdout = output.stderr = both
    output.write(records)
    return both.getvalue().decode()


def test_a_step_error_that_ends_the_run_is_said_once_on_the_last_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    error = "interpreter 'pwsh' not found on PATH"
    text = _render([_record("step.finish", {"step": "100_a.ps1", "status": "failed",
                                            "error": error}),
                    _record("run.finish", {"status": "failed", "error": error})], monkeypatch)
    assert text == f"flwd: run run-R failed: {error}\n"


def test_a_step_error_is_shown_in_place_when_more_follows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = _render([_record("step.finish", {"step": "a", "status": "failed", "error": "E1"}),
                    _record("step.log", {"step": "b", "channel": "stdout"}, b"next"),
                    _record("run.finish", {"status": "failed", "error": "E1 (2 steps failed)"})],
                   monkeypatch)
    assert text.splitlines() == ["flwd: step a failed: E1", "next",
                                 "flwd: run run-R failed: E1 (2 steps failed)"]


def test_the_last_line_always_keeps_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _render([_record("step.finish", {"step": "a", "status": "failed", "exit_code": 3}),
                    _record("run.finish", {"status": "failed",
                                           "error": "step a exited with status 3"})],
                   monkeypatch)
    assert text.splitlines() == ["flwd: step a failed with exit status 3",
                                 "flwd: run run-R failed: step a exited with status 3"]


def test_a_run_start_warning_is_said_before_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job with nothing to run: its run.start carries the warning, shown live and by :logs."""
    warning = {"code": "job.nothing.to.run", "level": "warning", "message": "job 'j' has nothing"}
    text = _render([_record("run.start", {"status": "running", "steps": [],
                                          "warnings": [warning]}),
                    _record("run.finish", {"status": "completed", "steps": {}})], monkeypatch)
    assert text.splitlines() == ["flwd: warning: job 'j' has nothing"]
