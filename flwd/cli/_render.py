"""Human renderings: aligned tables, plan previews, run summaries (sans-IO: returns text)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from flwd.events import RunRow, format_ts


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
        lines.append("  (none: the job has no NNN_* scripts)")
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
        lines.append(f"{style.yellow('policy:')} {finding['message']}")
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
