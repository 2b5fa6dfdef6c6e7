"""What the CLI shows: tables, plan previews, run listings, and a run's events as it prints them.

Every verb renders here what its backend (local or remote) answered, so both modes
print the same bytes. The functions return text (sans-IO); :class:`RunOutput` writes
a run's output lines and status lines as they arrive.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO, TextIO

from flwd.events import (
    POLICY_DECISION,
    RUN_CANCELED,
    RUN_FINISH,
    RUN_START,
    STEP_FINISH,
    STEP_LOG,
    STEP_START,
    EventRecord,
    RunRow,
    format_ts,
)
from flwd.jobs import NOTHING_TO_RUN, Arg, flag_help

from ._backend import CancelAnswer, JobListing


def dumps(value: object) -> str:
    """A ``--json`` document as the CLI prints it."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def use_color(stream: TextIO) -> bool:
    """Colour only on a TTY, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


class Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        """``text`` in the colour ``code``, which every line opens and closes itself.

        A reset written after a newline (``ESC[31m…\\nESC[0m``) leaves the newline and
        what follows it coloured until the reset arrives: a pager or a log viewer
        showing lines one by one, a prompt printed after an interrupted write, and
        ``grep`` on the output all see a colour that never ends on that line.
        """
        if not self.enabled:
            return text
        return "\n".join(f"\x1b[{code}m{line}\x1b[0m" if line else line
                         for line in text.split("\n"))

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def status(self, status: str) -> str:
        color = {"completed": self.green, "failed": self.red, "canceled": self.yellow,
                 "interrupted": self.yellow, "running": self.bold}.get(status)
        return color(status) if color else status


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _width(cell: str) -> int:
    return len(_ANSI.sub("", cell))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to the widest cell plus two spaces (last column unpadded)."""
    widths = [_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], _width(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row[:-1])]
        cells.append(row[-1])
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def render_plan(plan: dict[str, Any], style: Style) -> str:
    lines = [f"{style.bold('Job:')}       {plan['job_id']}"
             + (f"  ({plan['name']})" if plan.get("name") != plan["job_id"] else "")]
    if plan.get("summary"):
        lines.append(f"{style.bold('Summary:')}   {plan['summary']}")
    source = plan.get("provenance", {}).get("source", {})
    if source:
        lines.append(f"{style.bold('Source:')}    {source.get('ref')} ({source.get('type')})")
    preview = plan.get("executor_preview", {})
    executor = preview.get("executor", "proc")
    if preview.get("interpreter"):
        executor += f", interpreter {preview['interpreter']}"
    lines.append(f"{style.bold('Executor:')}  {executor}")
    lines.append(f"{style.bold('Profile:')}   {plan.get('security_profile')}")
    if plan.get("timeout_seconds") is not None:
        lines.append(f"{style.bold('Timeout:')}   {plan['timeout_seconds']:g}s")
    handling = plan.get("error_handling", {})
    if handling and handling.get("policy") != "abort":
        lines.append(f"{style.bold('On error:')}  {handling['policy']}"
                     + (f" ({handling['retries']} retries)" if handling.get("retries") else ""))
    lines.append(style.bold("Steps:"))
    steps = plan.get("steps", [])
    if not steps:
        lines.append("  (none)")
    for index, step in enumerate(steps, 1):
        needs = f"  {style.dim('needs ' + ', '.join(step['needs']))}" if step.get("needs") else ""
        lines.append(f"  {index}. {step['id']}: {step['command']}{needs}")
    lines.append(style.bold("Args:"))
    args = plan.get("effective_argspec", {}).get("args", [])
    resolved = plan.get("resolved_args", {})
    if not args:
        lines.append("  (none)")
    else:
        rows = []
        for arg in args:
            marks = []
            if arg.get("required"):
                marks.append("required")
            if arg.get("format") == "secret" or arg.get("secret"):
                marks.append("secret")
            value = resolved.get(arg["name"])
            shown = "(unset)" if value is None else _value(value)
            rows.append(["  " + arg["name"], arg["type"], shown, ", ".join(marks)])
        lines.append(table(["  NAME", "TYPE", "VALUE", ""], rows))
    for finding in plan.get("policy_findings", []):
        # One list, as in the reference; a job's own warning is not the policy's.
        label = "warning:" if finding.get("code") == NOTHING_TO_RUN else "policy:"
        lines.append(f"{style.yellow(label)} {finding['message']}")
    return "\n".join(lines)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def duration(run: RunRow) -> str:
    if run.started_at is None:
        return "-"
    end = run.finished_at
    if end is None:
        return "running"
    seconds = end - run.started_at
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def render_runs(runs: Sequence[RunRow], style: Style, *, workspaces: bool = False,
                empty: str | None = None) -> str:
    """The ``:runs`` table; ``workspaces`` adds a WORKSPACE column (``-``: a run of a
    flwd that did not record it); ``empty``: what to say when there is no run."""
    if not runs:
        return empty or "(no runs yet)"
    rows = [[run.id, run.job_id, style.status(run.status), format_ts(run.created_at)[:19] + "Z",
             duration(run), *([run.workspace or "-"] if workspaces else [])] for run in runs]
    return table(["RUN", "JOB", "STATUS", "CREATED", "DURATION",
                  *(["WORKSPACE"] if workspaces else [])], rows)


def write(stream: TextIO, text: str) -> None:
    stream.write(text + "\n")


def eprint(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# -- :jobs, :cancel, :sources ------------------------------------------------------


def render_jobs(listing: JobListing) -> str:
    """The ``:jobs`` tables: the jobs (a SOURCE column once a job comes from a source),
    then the aliases."""
    if not listing.jobs:
        return listing.empty
    rows = [[job.id, job.name, job.summary] for job in listing.jobs]
    headers = ["ID", "NAME", "SUMMARY"]
    if any(job.source is not None for job in listing.jobs):
        rows = [[*row, job.source or "-"] for row, job in zip(rows, listing.jobs, strict=True)]
        headers.append("SOURCE")
    if any(job.next_fire is not None for job in listing.jobs):
        rows = [[*row, job.next_fire or "-"] for row, job in zip(rows, listing.jobs, strict=True)]
        headers.append("NEXT FIRE")
    text = table(headers, rows)
    if listing.aliases:
        text += "\n\n" + table(["ALIAS", "RUNS", "DESCRIPTION"],
                               [[alias.name, alias.target_id, alias.description]
                                for alias in listing.aliases])
    return text


def render_discovery_problems(document: Mapping[str, Any]) -> str:
    """The stderr lines of ``:jobs``: each of ``errors`` and ``warnings`` of its
    ``--json`` document at that level (with its code, the word to look up), and each
    colliding alias as an error (it cannot be used; ``X-Flwd-Discovery-Errors``
    counts it). Made from the document so that local and remote modes say the same.
    """
    lines = []
    collisions = document.get("alias_collisions") or {}
    for level, issues in (("error", document.get("errors") or []),
                          ("warning", document.get("warnings") or [])):
        for issue in issues:
            code = f" [{issue['code']}]" if issue.get("code") else ""
            lines.append(f"flwd: {level}: {issue.get('path')}: {issue.get(level)}{code}")
        if level == "error":
            lines += [f"flwd: error: alias '{name}' is declared for several jobs "
                      f"({', '.join(sorted({str(a.get('target_id')) for a in contenders}))})"
                      " [alias.collision]"
                      for name, contenders in sorted(collisions.items())]
    # A server's text stays on its line: one line per problem, whatever it holds.
    return "".join(" ".join(line.splitlines()) + "\n" for line in lines)


def render_cancel(answer: CancelAnswer) -> str:
    if answer.outcome == "requested":
        return f"cancel requested for run {answer.run_id}"
    if answer.outcome == "recovered":
        return (f"run {answer.run_id} interrupted: the flwd process that owned it "
                f"(pid {answer.owner_pid}) had exited")
    return f"run {answer.run_id} already finished ({answer.status})"


def render_sources(documents: Sequence[Mapping[str, Any]]) -> str:
    """The ``:sources list`` table: NAME TYPE REF STATUS JOBS RESOLVED."""
    if not documents:
        return "(no sources configured)"
    return table(["NAME", "TYPE", "REF", "STATUS", "JOBS", "RESOLVED"],
                 [_source_row(document) for document in documents])


def _source_row(document: Mapping[str, Any]) -> list[str]:
    resolved = str(document.get("resolved_commit") or document.get("resolved_ref") or "-")
    if document.get("type") == "git" and document.get("resolved_commit"):
        resolved = resolved[:12]
    elif document.get("type") == "oci":
        resolved = resolved[:19] if document.get("digest") else "(digest on first run)"
    status = str(document.get("status", "?"))
    return [str(document.get("name")), str(document.get("type")), str(document.get("ref", "")),
            status, str(document.get("jobs", "-")), resolved]


# -- a job's --help ------------------------------------------------------------------


def help_text(words: Sequence[str], name: str, summary: str | None, args: Sequence[Arg]) -> str:
    """A job's ``--help`` (from its config locally, from the server's argspec remotely)."""
    lines = [f"usage: flwd {' '.join(words)} [FLAGS]", ""]
    lines.append(name + (f" — {summary}" if summary else ""))
    rows = [["  " + form, text] for form, text in flag_help(args)]
    lines += ["", "Arguments:", table(["", ""], rows).split("\n", 1)[1] if rows else "  (none)"]
    if any(arg.is_secret for arg in args):
        lines += ["", "A secret typed on the command line shows in ps and in the shell's history:",
                  "pass it with --NAME-file PATH or --NAME - (stdin). A missing required secret",
                  "is asked for, without echo, on a terminal."]
    lines += ["", "Common flags:", table(["", ""], [
        ["  --json", "print run events as NDJSON on stdout"],
        ["  --profile PROFILE", "security profile: secure (default), permissive, disabled"],
        ["  --debug", "show a traceback on internal errors"],
        ["  -h, --help", "show this help"],
    ]).split("\n", 1)[1]]
    lines += ["", f"Preview without running: flwd :plan {' '.join(words)} [FLAGS]"]
    return "\n".join(lines)


# -- a run's events ------------------------------------------------------------------


class RunOutput:
    """Renders a run's events: raw output lines (human) or NDJSON (``--json``).

    ``prefix_steps``: tag output lines with their step (``[build] …``), as for
    ``composition: steps`` jobs; a ``run.start`` that names its composition sets it, so a
    replay (``:logs``) renders like the live run did. Lines go out in ``seq`` order: when
    the output switches between stdout and stderr, the other stream is flushed first, so a
    terminal showing both gets them interleaved as the job wrote them.
    """

    def __init__(self, as_json: bool, *, prefix_steps: bool = False) -> None:
        self.as_json = as_json
        self.prefix_steps = prefix_steps
        self.stdout: BinaryIO = sys.stdout.buffer
        self.stderr: BinaryIO = sys.stderr.buffer
        self.style = Style(use_color(sys.stderr))
        self.broken = False
        #: A CLI run canceled by SIGTERM (``flwd :cancel``) exits 143, not 130.
        self.canceled_by_sigterm = False
        self._last: BinaryIO | None = None
        #: A step that failed with an error (it could not start, it crashed) is shown
        #: when the next line is printed — unless that line is the run's last one with
        #: the same error, which then says it once, with the reason (a run's last line
        #: always carries its reason).
        self._held: tuple[str, str] | None = None
    def write(self, records: list[EventRecord]) -> None:
        for record in records:
            if record.type == RUN_START and "composition" in record.data:
                self.prefix_steps = record.data["composition"] == "steps"
            elif record.type == RUN_CANCELED:
                self.canceled_by_sigterm = (
                    record.data.get("by") == "cli"
                    and str(record.data.get("reason", "")).startswith("interrupted by SIGTERM"))
        if self.broken:
            return
        try:
            if self.as_json:
                self.stdout.write(b"".join(record.ndjson() for record in records))
                self.stdout.flush()
                return
            for record in records:
                if record.type == STEP_LOG and record.lines is not None:
                    stream = self.stdout if record.data.get("channel") == "stdout" else self.stderr
                    self._release()
                    self._switch(stream)
                    stream.write(record.text(step_prefix=self.prefix_steps))
                elif record.type in (POLICY_DECISION, RUN_START, STEP_START, STEP_FINISH,
                                     RUN_CANCELED, RUN_FINISH):
                    self._status(record)
            self.stdout.flush()
            self.stderr.flush()
        except BrokenPipeError:
            self.broken = True
            # Point the fds at /dev/null so the interpreter's final flush is quiet.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)

    def _switch(self, stream: BinaryIO) -> None:
        if self._last is not None and self._last is not stream:
            self._last.flush()
        self._last = stream

    def _release(self, unless: object = None) -> None:
        held, self._held = self._held, None
        if held is not None and held[0] != unless:
            self._switch(self.stderr)
            self.stderr.write((held[1] + "\n").encode())

    def error(self, text: str) -> None:
        """One line on stderr (whatever the output mode)."""
        try:
            self._release()
            self.stderr.write((self.style.red(text) + "\n").encode())
            self.stderr.flush()
        except BrokenPipeError:
            pass

    def _status(self, record: EventRecord) -> None:
        data = record.data
        style = self.style
        text = None
        step = data.get("step")
        if record.type == POLICY_DECISION:
            # What policy allowed but wants seen (an unsigned image in permissive, an
            # override in disabled) is journaled and shown; plain "info" decisions are not.
            if data.get("level") == "warning":
                text = style.yellow(f"flwd: warning: policy: {data.get('reason')}")
        elif record.type == RUN_START and data.get("warnings"):
            # The job's own warnings (nothing to run), live and replayed by :logs.
            text = "\n".join(style.yellow(f"flwd: warning: {warning.get('message')}")
                              for warning in data["warnings"] if isinstance(warning, dict))
        elif record.type == STEP_START:
            attempt, most = data.get("attempt", 1), data.get("max_attempts", 1)
            if isinstance(attempt, int) and attempt > 1:
                text = style.yellow(f"flwd: step {step}: attempt {attempt}/{most}")
        elif record.type == STEP_FINISH and data.get("status") == "failed":
            if data.get("error"):
                self._release()
                self._held = (str(data["error"]), style.red(f"flwd: step {step} failed: "
                                                            f"{data['error']}"))
                return
            text = style.red(f"flwd: step {step} failed with exit status {data.get('exit_code')}")
        elif record.type == STEP_FINISH and data.get("status") == "skipped":
            text = style.yellow(f"flwd: step {step} skipped: {data.get('reason', 'not run')}")
        elif record.type == RUN_CANCELED:
            text = style.yellow(f"flwd: canceling run {record.run_id}: {data.get('reason')}")
        elif record.type == RUN_FINISH:
            status = data.get("status", "?")
            self._release(unless=str(data.get("error")))
            if status != "completed" or style.enabled:
                detail = f": {data['error']}" if data.get("error") else ""
                text = f"flwd: run {record.run_id} {style.status(status)}{detail}"
        if text:
            self._release()
            self._switch(self.stderr)
            self.stderr.write((text + "\n").encode())
