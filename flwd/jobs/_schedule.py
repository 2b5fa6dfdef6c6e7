"""The ``schedule:`` list of a job's config: :class:`ScheduleEntry` and its checks.

Each entry is validated when the config loads, like every other field: its cron
expression or ``at:`` instant (:mod:`flwd.schedule` reads them), its IANA zone, its
durations, and its ``args`` against the job's own argspec — so a schedule that could
only fail later, at 02:30 with nobody watching, is a discovery error now, naming the
file, the entry (``schedule[1]``, and its name) and the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from flwd.errors import ArgsInvalid
from flwd.schedule import (
    DEFAULT_CATCHUP_WINDOW,
    At,
    Cron,
    Every,
    Misfire,
    Overlap,
    Reboot,
    Schedule,
    parse_at,
    parse_when,
    resolve_zone,
)

from ._argspec import Arg, Loc, show, spec_error
from ._bind import bind_json
from ._duration import duration_validator, parse_duration
from ._suggest import did_you_mean

__all__ = ["ScheduleEntry", "check_schedules", "schedule_problems"]

#: A name written in the config: one word (``#`` and ``/`` are the defaults' own).
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
#: A job keeps its schedules few: each is a timer that runs it.
MAX_SCHEDULES: Final = 50


def _seconds(text: str) -> float:
    return parse_duration(text)


class ScheduleEntry(BaseModel):
    """One entry of ``schedule:`` (see docs/automation.md#schedules)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", defer_build=True)

    name: str | None = None
    cron: str | None = None
    at: str | None = None
    timezone: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    misfire: Misfire = "run_once"
    catchup_window: float = DEFAULT_CATCHUP_WINDOW
    overlap: Overlap = "skip"
    jitter: float = 0.0
    enabled: bool = True

    _when: Cron | Every | At | Reboot | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME_RE.fullmatch(value):
            raise ValueError(f"{show(value)} is not a schedule name (a word of letters, "
                             "digits, '_', '.', '-'; at most 100 characters)")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            parse_when(value, parse_seconds=_seconds)
        return value

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: Any) -> Any:
        # YAML reads an unquoted date-time as a datetime: with an offset it is one.
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"{value.isoformat()} has no offset: write e.g. "
                                 f"{value.isoformat()}+01:00 or {value.isoformat()}Z")
            value = value.isoformat()
        elif isinstance(value, date):
            raise ValueError(f"{value.isoformat()} is a date: give a time and an offset "
                             f"too, like {value.isoformat()}T09:00:00+01:00")
        if isinstance(value, str):
            parse_at(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            resolve_zone(value)
        return value

    @field_validator("misfire", "overlap", mode="before")
    @classmethod
    def _fold(cls, value: Any) -> Any:
        return value.strip().lower().replace("-", "_") if isinstance(value, str) else value

    @field_validator("catchup_window", "jitter", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_validator(value, allow_zero=True)

    @model_validator(mode="after")
    def _one_when(self) -> ScheduleEntry:
        if (self.cron is None) == (self.at is None):
            raise ValueError("give either cron: or at: (a cron expression, @daily, "
                             "@every 90s, @reboot; or one RFC 3339 instant)")
        self._when = (parse_when(self.cron, parse_seconds=_seconds) if self.cron is not None
                      else parse_at(str(self.at)))
        return self

    @property
    def when(self) -> Cron | Every | At | Reboot:
        assert self._when is not None
        return self._when

    def resolve(self, job_id: str, index: int, count: int, *, args: Sequence[Arg],
                default_zone: str, path: str = "") -> Schedule:
        """The :class:`~flwd.schedule.Schedule` of this entry of job ``job_id`` (entry
        ``index`` of ``count``), with the host's zone when it names none."""
        binding = bind_json(args, self.args, job_id=job_id)
        default = job_id if count == 1 else f"{job_id}#{index}"
        return Schedule(
            name=self.name or default, job_id=job_id, when=self.when,
            zone_name=self.timezone or default_zone, zone_given=self.timezone is not None,
            args=dict(self.args), shown_args=binding.redacted(), misfire=self.misfire,
            catchup_window=self.catchup_window, overlap=self.overlap, jitter=self.jitter,
            enabled=self.enabled, index=index, path=path)


def check_schedules(value: Any, describe: Callable[[Mapping[str, Any]], str]) -> Any:
    """Validate the raw ``schedule:`` list entry by entry (``mode="before"``): every
    problem of every entry, each located (``[1].timezone``) and naming the entry's
    ``name:`` when it has one. ``describe`` words one pydantic error."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"must be a list of schedules (got {show(value)})")
    if len(value) > MAX_SCHEDULES:
        raise ValueError(f"{len(value)} schedules; a job has at most {MAX_SCHEDULES}")
    entries: list[ScheduleEntry] = []
    problems: list[tuple[Loc, str]] = []
    for index, item in enumerate(value):
        named = item.get("name") if isinstance(item, dict) else None
        suffix = f" (schedule {named!r})" if isinstance(named, str) else ""
        try:
            entries.append(ScheduleEntry.model_validate(item))
        except ValidationError as exc:
            for error in exc.errors():
                loc: Loc = (index, *error["loc"])
                if error["type"] == "extra_forbidden":
                    hint = did_you_mean(str(error["loc"][-1]), ScheduleEntry.model_fields)
                    message = "unknown key" + (f" ({hint})" if hint else "")
                else:
                    message = describe(error)
                problems.append((loc, message + ("" if loc[1:] == ("name",) else suffix)))
    if problems:
        raise spec_error(problems)
    return entries


def schedule_problems(entries: Sequence[ScheduleEntry], args: Sequence[Arg] | None
                      ) -> list[tuple[Loc, str]]:
    """Names given twice, and each entry's ``args`` checked against the job's argspec
    (None: the argspec itself is invalid, and reported)."""
    problems: list[tuple[Loc, str]] = []
    names: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.name is not None and names.setdefault(entry.name, index) != index:
            problems.append(((index, "name"), f"{entry.name!r} is also the name of "
                                              f"schedule[{names[entry.name]}]"))
    for index, entry in enumerate(entries):
        suffix = f" (schedule {entry.name!r})" if entry.name else ""
        if args is None:
            continue
        try:
            bind_json(args, entry.args, job_id="")
        except ArgsInvalid as exc:
            for error in exc.errors:
                where: Loc = (index, "args", error["arg"]) if error["arg"] else (index, "args")
                problems.append((where, f"{error['message']}{suffix}"))
    return problems
