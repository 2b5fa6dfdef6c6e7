"""What the CLI shows: tables, plan previews, run listings, and a run's events as it prints them.

Every verb renders here what its backend (local or remote) answered, so both modes
print the same bytes. The functions return text (sans-IO); :class:`RunOutput` writes
a run's output lines and status lines as they arrive (it is :mod:`flwd.output`'s,
which the thin client uses too).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from flwd.events import RunRow, format_ts
from flwd.jobs import NOTHING_TO_RUN, Arg, flag_help
from flwd.output import RunOutput as RunOutput
from flwd.output import Style as Style
from flwd.output import use_color as use_color

from ._backend import CancelAnswer, JobListing


def dumps(value: object) -> str:
    """A ``--json`` document as the CLI prints it."""
    return json.dumps(value, indent=2, ensure_ascii=False)


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
