"""Which runs a history query answers: :class:`RunFilter`, built from user text by
:func:`run_filter` (``GET /runs``'s query, ``flwd :runs``' flags), and its SQL.

Sans-IO but for :func:`where_clause`, which only writes SQL text and parameters.

**Argument filters.** A run keeps the arguments it was planned with, secrets
replaced by :data:`SECRET_MARK` (``runs.args``). ``arg.NAME=VALUE`` matches a run
whose argument ``NAME`` is ``VALUE`` written as on the command line: a string as
it is, a number in decimal (``5`` matches ``5`` and ``5.0``), a boolean ``true`` or
``false``; an array when one of its elements is; an object when one of its
entries is ``KEY=VALUE``. A secret's value is never stored, so no filter matches
it — not even ``[secret]``, which is what is stored in its place (nor, therefore,
a plain argument whose value is that very text).

**Trigger filters.** ``trigger=KIND`` matches the runs something other than a person
started — ``schedule`` (a schedule's fire, by hand too) or ``hook`` (a webhook's
delivery) — and ``none`` the runs the API or the CLI started; ``KIND:NAME`` those of one
schedule or hook (``runs.trigger``'s ``kind`` and ``name``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from flwd.errors import RunFilterInvalid
from flwd.events import TERMINAL_STATUSES, parse_ts

from ._dialect import SQLITE, Dialect

#: What a secret argument's value is stored as (``flwd.jobs.SECRET_MARK``; the
#: store does not import the job model — a test pins the two equal).
SECRET_MARK: Final = "[secret]"
STATUSES: Final = ("queued", "running", *sorted(TERMINAL_STATUSES))
#: Bounds on a query, each named in the 400 that refuses more: a filter costs a
#: JSON walk per candidate run, and a value is compared, never searched.
MAX_ARG_FILTERS: Final = 16
MAX_ARG_VALUE: Final = 1024
MAX_JOB_ID: Final = 256
MAX_WORKSPACE: Final = 4096
#: What ``trigger=`` takes before an optional ``:NAME`` (``none``: no trigger at all).
TRIGGER_KINDS: Final = ("schedule", "hook", "none")
#: A schedule's or a hook's name in ``trigger=KIND:NAME``, at most (a schedule is named
#: after its job: a job id's bound and a suffix).
MAX_TRIGGER_NAME: Final = 300
#: An argument's name (``flwd.jobs``' rule) — also what makes the JSON path safe.
ARG_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,127}", re.ASCII)
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)", re.ASCII)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)
_INT64 = 1 << 63
_HALF_MICROSECOND = 0.5e-6


@dataclass(frozen=True, slots=True)
class RunFilter:
    """The runs ``Store.list_runs`` and ``Store.count_runs`` answer: every condition given holds.

    Build one from user text with :func:`run_filter` (it checks and bounds what it takes).
    """

    #: The run's job id, in any case.
    job_id: str | None = None
    #: Any of these statuses (empty: any status).
    statuses: tuple[str, ...] = ()
    #: The run's ``workspace``, exactly (runs of a flwd before schema 6 have none).
    workspace: str | None = None
    #: ``created_at >= since`` (Unix seconds; compared to the microsecond, as runs show
    #: their times: a run's own ``created_at`` includes it).
    since: float | None = None
    #: ``created_at < until`` (likewise: a run's own ``created_at`` excludes it).
    until: float | None = None
    #: ``(name, value)``: the run's argument ``name`` is ``value`` (see the module doc).
    args: tuple[tuple[str, str], ...] = ()
    #: What started the run: a :data:`TRIGGER_KINDS` kind (``none``: no trigger), and
    #: the name of its schedule or hook (None: any of that kind).
    trigger: tuple[str, str | None] | None = None


#: A filter that selects every run.
EVERY_RUN: Final = RunFilter()


def run_filter(*, job_id: str | None = None, statuses: Iterable[str] = (),
               workspace: str | None = None, since: str | None = None,
               until: str | None = None, args: Sequence[tuple[str, str]] = (),
               trigger: str | None = None) -> RunFilter:
    """A :class:`RunFilter` from text as a user wrote it.

    ``job_id``: empty or None, any job; ``statuses``: each a status or a
    comma-separated list of them; ``since`` and
    ``until``: RFC 3339 date-times; ``args``: ``(name, value)`` pairs; ``trigger``:
    ``KIND`` or ``KIND:NAME`` (empty or None: any run).

    Raises:
        RunFilterInvalid: every unusable part, each in ``errors`` under its query
            name (``status``, ``since``, ``arg.<name>``…).
    """
    errors: list[dict[str, str]] = []
    wanted: list[str] = []
    for text in statuses:
        for status in text.split(","):
            if status not in STATUSES:
                errors.append({"arg": "status", "message": f"{_show(status)} is not a status: "
                                                           f"use one of {', '.join(STATUSES)}"})
            elif status not in wanted:
                wanted.append(status)
    if job_id is not None and len(job_id) > MAX_JOB_ID:
        errors.append({"arg": "job_id", "message": f"a job id of at most {MAX_JOB_ID} "
                                                   "characters"})
    if workspace is not None and not (workspace.startswith("/") and len(workspace) <= MAX_WORKSPACE
                                      and "\0" not in workspace):
        errors.append({"arg": "workspace",
                       "message": "use an absolute path, as a run's `workspace` shows it"})
    instants = {name: _instant(name, text, errors)
                for name, text in (("since", since), ("until", until))}
    checked = _arg_filters(args, errors)
    started_by = _trigger(trigger, errors) if trigger else None
    if errors:
        first = errors[0]
        raise RunFilterInvalid(f"invalid run filter {first['arg']}: {first['message']}",
                               errors=errors)
    return RunFilter(job_id=job_id or None, statuses=tuple(wanted), workspace=workspace,
                     since=instants["since"], until=instants["until"], args=checked,
                     trigger=started_by)


def _trigger(text: str, errors: list[dict[str, str]]) -> tuple[str, str | None] | None:
    kind, colon, name = text.partition(":")
    if kind not in TRIGGER_KINDS:
        errors.append({"arg": "trigger", "message": f"{_show(kind)} is not a trigger kind: use "
                                                    f"{', '.join(TRIGGER_KINDS)} (or KIND:NAME)"})
    elif colon and kind == "none":
        errors.append({"arg": "trigger", "message": "none has no name: use trigger=none"})
    elif colon and not 0 < len(name) <= MAX_TRIGGER_NAME:
        errors.append({"arg": "trigger", "message": f"name the {kind} after the colon "
                                                    f"(at most {MAX_TRIGGER_NAME} characters)"})
    elif "\0" in name:
        errors.append({"arg": "trigger", "message": "a name cannot hold a NUL character"})
    else:
        return kind, name if colon else None
    return None


def _instant(name: str, text: str | None, errors: list[dict[str, str]]) -> float | None:
    if text is None:
        return None
    try:
        return parse_ts(text)
    except ValueError as exc:
        errors.append({"arg": name, "message": f"{_show(text)} is {exc}"})
        return None


def _arg_filters(args: Sequence[tuple[str, str]],
                 errors: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
    if len(args) > MAX_ARG_FILTERS:
        errors.append({"arg": "arg.", "message": f"{len(args)} argument filters: at most "
                                                 f"{MAX_ARG_FILTERS} in one query"})
        return ()
    checked: list[tuple[str, str]] = []
    for name, value in args:
        field = f"arg.{name[:128]}"
        if not ARG_NAME.fullmatch(name):
            errors.append({"arg": field, "message": (
                "name the argument: arg.NAME=VALUE" if not name else
                f"{_show(name)} is not an argument name (a letter, then letters, digits, "
                "_ or -; at most 128)")})
        elif len(value) > MAX_ARG_VALUE:
            errors.append({"arg": field, "message": f"a value of {len(value)} characters: at "
                                                    f"most {MAX_ARG_VALUE}"})
        elif "\0" in value:
            errors.append({"arg": field, "message": "a value cannot hold a NUL character"})
        else:
            checked.append((name, value))
    return tuple(checked)


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:39] + "…")


def _number(text: str) -> int | float | None:
    """The number ``text`` writes (as the CLI reads one), or None."""
    if _INTEGER.fullmatch(text) and len(text) <= 20:
        value = int(text)
        if -_INT64 <= value < _INT64:
            return value
    if _NUMBER.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else None
    return None


def where_clause(query: RunFilter, *, has_workspace: bool = True, has_trigger: bool = True,
                 dialect: Dialect = SQLITE) -> tuple[str, dict[str, Any]]:
    """``WHERE …`` (or ``""``) over the ``runs`` table, and its named parameters.

    ``has_workspace``: the table has the ``workspace`` column (a reader of a Core DB
    older than schema 6 does not migrate it: its runs belong to no workspace);
    ``has_trigger``: likewise the ``trigger`` column (schema 10: older runs have none).
    """
    where: list[str] = []
    params: dict[str, Any] = {}
    if query.job_id:
        where.append(f"{dialect.fold('job_id')} = {dialect.fold(':job_id')}")
        params["job_id"] = query.job_id
    if query.statuses:
        names = [f":status{index}" for index in range(len(query.statuses))]
        where.append(f"status IN ({', '.join(names)})")
        params.update(zip((name[1:] for name in names), query.statuses, strict=True))
    if query.workspace is not None:
        where.append("workspace = :workspace" if has_workspace else "NULL = :workspace")
        params["workspace"] = query.workspace
    # Compared as runs show their times, to the microsecond (``format_ts`` rounds): the
    # created_at a run shows is a bound that includes it (since) or excludes it (until).
    if query.since is not None:
        where.append("created_at >= :since")
        params["since"] = query.since - _HALF_MICROSECOND
    if query.until is not None:
        where.append("created_at < :until")
        params["until"] = query.until - _HALF_MICROSECOND
    if query.trigger is not None:
        kind, name = query.trigger
        column = "runs.trigger" if has_trigger else "NULL"
        if kind == "none":
            where.append(f"{column} IS NULL")
        else:
            where.append(f"{dialect.json_field(column, 'kind')} = :trigger_kind")
            params["trigger_kind"] = kind
            if name is not None:
                where.append(f"{dialect.json_field(column, 'name')} = :trigger_name")
                params["trigger_name"] = name
    for index, (name, value) in enumerate(query.args):
        key, _, entry = value.partition("=")
        # The name was checked against ARG_NAME: quoting it makes the path exact.
        params.update({f"path{index}": f'$."{name}"', f"name{index}": name, f"t{index}": value,
                       f"n{index}": _number(value), f"k{index}": key if _ else None,
                       f"e{index}": entry, f"en{index}": _number(entry)})
        where.append(dialect.arg_matches(index, SECRET_MARK))
    return (f"WHERE {' AND '.join(where)}" if where else ""), params
