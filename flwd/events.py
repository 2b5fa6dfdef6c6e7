"""Run events: the record kept in the journal and its framings at the edges.

An event is ``{seq, run_id, job_id, type, ts, data}``. Output lines are events
too (``step.log``), but inside the engine they travel as *chunks*: one
:class:`EventRecord` carries ``n`` lines as raw bytes and owns the sequence
numbers ``seq … seq + n - 1``. Lines are framed one by one only at the edges
(CLI, NDJSON, SSE), because a JSON document per line costs more than the rest
of the pipeline together (DESIGN §5).

Sans-IO: nothing here imports trio.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

RUN_START = "run.start"
STEP_START = "step.start"
STEP_LOG = "step.log"
STEP_FINISH = "step.finish"
RUN_CANCELED = "run.canceled"
RUN_FINISH = "run.finish"
POLICY_DECISION = "policy.decision"
#: One attempt to deliver a notification of the run (flwd.notify). It may come after
#: the run's ``run.finish``: a run's own stream ends at ``run.finish`` and skips it.
NOTIFY_DELIVERY = "notify.delivery"

TERMINAL_STATUSES = frozenset({"completed", "failed", "canceled", "interrupted"})

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def format_ts(ts: float) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-11-24T19:48:13.123456Z``.

    Same digits as ``datetime.fromtimestamp(ts, UTC).strftime(...%fZ)`` (its
    round-half-even split into seconds and microseconds), at a fraction of
    the cost: every event and run row is formatted at least once.
    """
    global _second_prefix
    fraction, whole = math.modf(ts)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        micros -= 1_000_000
        whole += 1.0
    elif micros < 0:
        micros += 1_000_000
        whole -= 1.0
    second = int(whole)
    if second != _second_prefix[0]:
        _second_prefix = (second, datetime.fromtimestamp(second, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S"))
    return f"{_second_prefix[1]}.{micros:06d}Z"


#: The formatted whole second of the last :func:`format_ts` (events come in bursts).
_second_prefix: tuple[int, str] = (-(2**63), "")


#: RFC 3339's date-time (its §5.6), with the ``T`` and ``Z`` of either case and the
#: space its note allows between date and time.
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
                      r"(?:([Zz])|([+-])(\d{2}):(\d{2}))", re.ASCII)
#: The longest date-time looked at (nine fraction digits and an offset fit well within).
_MAX_TS_TEXT = 64


def parse_ts(text: str) -> float:
    """The instant an RFC 3339 date-time names, in Unix seconds: ``2026-11-24T19:48:13Z``,
    ``2026-11-24T20:48:13.5+01:00``; a leap second (``:60``) is the second after.

    Every valid date-time is accepted (year 0000 included); the fraction counts to
    the microsecond, as :func:`format_ts` writes it.

    Raises:
        ValueError: ``text`` is not an RFC 3339 date-time (the message says how).
    """
    match = _RFC3339.fullmatch(text) if len(text) <= _MAX_TS_TEXT else None
    if match is None:
        raise ValueError("not an RFC 3339 date-time: write e.g. 2026-11-24T19:48:13Z "
                         "(a date, T, a time, then Z or an offset like +01:00)")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)
            and hour <= 23 and minute <= 59 and second <= 60):
        raise ValueError("not a date and time of the calendar (month 01-12, a day of "
                         "that month, hour 00-23, minute 00-59, second 00-60)")
    offset = 0
    if match[9] is not None:
        offset_hours, offset_minutes = int(match[10]), int(match[11])
        if offset_hours > 23 or offset_minutes > 59:
            raise ValueError("the offset is not a time zone offset (-23:59 to +23:59)")
        offset = (offset_hours * 3600 + offset_minutes * 60) * (-1 if match[9] == "-" else 1)
    micros = int((match[7] or "").ljust(6, "0")[:6])
    days = _days_from_civil(year, month, day)
    return days * 86400 + hour * 3600 + minute * 60 + second - offset + micros / 1e6


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to the date in the proleptic Gregorian calendar (any year;
    ``datetime`` stops at year 1). Howard Hinnant's ``days_from_civil``."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def now() -> float:
    return time.time()


@dataclass(slots=True)
class EventRecord:
    """One journal row: a single event, or a chunk of ``n`` output lines.

    ``seq`` is 0 until the journal commits the record and assigns it.
    For ``step.log`` chunks ``data`` holds ``{"step", "channel"}`` and ``lines``
    the redacted lines joined by ``\\n`` (no trailing newline).
    """

    run_id: str
    job_id: str
    type: str
    ts: float
    data: dict[str, Any]
    lines: bytes | None = None
    n: int = 1
    seq: int = 0
    #: The record's SSE frames, encoded once and shared by every subscriber.
    sse_cache: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def last_seq(self) -> int:
        return self.seq + self.n - 1

    def line_list(self) -> list[bytes]:
        return self.lines.split(b"\n") if self.lines is not None else []

    def iter_events(self, after: int = 0) -> Iterator[dict[str, Any]]:
        """Expand into envelopes (one per line for chunks), skipping seq <= after."""
        if self.lines is None:
            if self.seq > after:
                yield self.envelope()
            return
        base = {"step": self.data.get("step"), "channel": self.data.get("channel")}
        ts = format_ts(self.ts)
        for offset, line in enumerate(self.line_list()):
            seq = self.seq + offset
            if seq <= after:
                continue
            yield {
                "seq": seq,
                "run_id": self.run_id,
                "job_id": self.job_id,
                "type": self.type,
                "ts": ts,
                "data": {**base, "message": line.decode("utf-8", "replace")},
            }

    def text(self, *, step_prefix: bool = False) -> bytes:
        """The output lines of a ``step.log`` record as a terminal shows them: each ended
        by a newline, after ``[<step>] `` for a ``composition: steps`` job; ``b""`` for
        any other record. stdout and stderr lines alike (the terminal interleaves them
        unmarked): ``data["channel"]`` says which, where it matters."""
        if self.type != STEP_LOG or self.lines is None:
            return b""
        if not step_prefix:
            return self.lines + b"\n"
        tag = f"[{self.data.get('step')}] ".encode()
        return b"".join(tag + line + b"\n" for line in self.line_list())

    def envelope(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "run_id": self.run_id,
            "job_id": self.job_id,
            "type": self.type,
            "ts": format_ts(self.ts),
            "data": self.data,
        }

    def ndjson(self, after: int = 0) -> bytes:
        """NDJSON bytes for every event of the record with seq > after."""
        if self.lines is None:
            return (_dumps(self.envelope()) + "\n").encode() if self.seq > after else b""
        return _ndjson_chunk(self, after)


# Safe bytes are printable ASCII other than '"' and '\\': a line made only of
# those is already a valid JSON string body, so it can be framed without
# json.dumps (which would cost ~2 µs a line).
_UNSAFE = bytes(b for b in range(256) if b < 0x20 or b >= 0x7F or b in (0x22, 0x5C))


def _ndjson_chunk(record: EventRecord, after: int) -> bytes:
    lines = record.line_list()
    start = max(0, after - record.seq + 1)
    if start >= len(lines):
        return b""
    head = b'{"seq":'
    middle = (
        ',"run_id":' + _dumps(record.run_id) + ',"job_id":' + _dumps(record.job_id)
        + ',"type":"step.log","ts":"' + format_ts(record.ts) + '","data":{"step":'
        + _dumps(record.data.get("step")) + ',"channel":' + _dumps(record.data.get("channel"))
        + ',"message":'
    ).encode()
    tail = b"}}\n"
    if _is_safe(record.lines or b""):
        parts = [
            b"%s%d%s\"%s\"%s" % (head, record.seq + i, middle, lines[i], tail)
            for i in range(start, len(lines))
        ]
    else:
        parts = [
            b"%s%d%s%s%s"
            % (head, record.seq + i, middle, _dumps(lines[i].decode("utf-8", "replace")).encode(), tail)
            for i in range(start, len(lines))
        ]
    return b"".join(parts)


def _is_safe(body: bytes) -> bool:
    # translate() deleting the unsafe bytes (newline separators excepted) keeps the
    # length iff none was present; this runs at C speed over the whole chunk.
    stripped = body.replace(b"\n", b"")
    return len(stripped.translate(None, _UNSAFE)) == len(stripped)


@dataclass(slots=True)
class RunRow:
    """A run as kept in the ``runs`` table."""

    id: str
    job_id: str
    status: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    error: str | None = None
    profile: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    owner_pid: int | None = None
    owner_start: int | None = None
    owner_host: str | None = None
    owner_kind: str | None = None
    #: The absolute path of the folder holding the scripts/ the run's job came from
    #: (of the server, for a run it started); None for runs of flwd before schema 6.
    workspace: str | None = None
    #: How its steps run: ``proc`` (host processes) or ``container``, as its plan's
    #: ``executor_preview.executor``; None for a run whose plan did not say (schema 8
    #: filled it in from the stored plan of older runs).
    executor: str | None = None
    #: The container runtime of a ``container`` run (``podman`` or ``docker``).
    runtime: str | None = None
    #: What started it (:class:`Trigger`'s ``detail``); None for the API and the CLI.
    trigger: dict[str, Any] | None = None
    #: Its trigger's unique key (:class:`Trigger`); None for the API and the CLI.
    trigger_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "job_id": self.job_id,
            "status": self.status,
            "created_at": format_ts(self.created_at),
            # Always there (null while queued): when the run began executing, which
            # a run waiting for a slot has not.
            "started_at": None if self.started_at is None else format_ts(self.started_at),
        }
        if self.finished_at is not None:
            out["finished_at"] = format_ts(self.finished_at)
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
        if self.error:
            out["error"] = self.error
        if self.profile:
            out["security_profile"] = self.profile
        out["workspace"] = self.workspace
        out["executor"] = self.executor
        if self.runtime is not None:
            out["runtime"] = self.runtime
        if self.trigger is not None:
            out["trigger"] = self.trigger
        out["result"] = {"resolved_args": self.args}
        if self.provenance:
            out["provenance"] = self.provenance
        return out


@dataclass(slots=True)
class ClusterRun(RunRow):
    """A run row as a replica of a cluster creates it (flwd/engine/_cluster.py): queued
    for any replica (``replica_id`` None; ``queue`` holds what another replica needs to
    plan it again), or claimed at once by the replica that took it (a run with secret
    arguments, whose values never go to the Core DB)."""

    #: The plan request another replica re-plans (no secret value), with the digest of
    #: the plan shown to the client; None for a run only this replica may execute.
    queue: dict[str, Any] | None = None
    #: The labels a replica needs (the job's ``runs_on``).
    runs_on: list[str] = field(default_factory=list)
    #: The job's ``concurrency``, honoured across the cluster.
    concurrency: int | None = None
    #: The source the job comes from (a replica without its checkout leaves the run).
    job_source: str | None = None
    #: The replica that holds the run's lease (None: queued for any).
    replica_id: str | None = None
    #: Seconds the lease lasts from its commit (on the database's clock).
    lease: float = 0.0


def schedule_key_prefix(workspace: str | None, name: str) -> str:
    """What the trigger keys of schedule ``name`` of ``workspace`` start with.

    The workspace is part of it: several workspaces may share a data dir (and its Core
    DB), each with a schedule of the same name (a job id), and one's fire must never
    stand for the other's. A digest, so the key stays short whatever the path.
    """
    import hashlib  # start-up: the thin client renders events and never makes a key

    scope = hashlib.sha256((workspace or "").encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"schedule:{scope}/{name}@"


@dataclass(frozen=True, slots=True)
class Trigger:
    """What started a run other than a person: a schedule's fire, a webhook's delivery.

    ``key`` is its identity (``schedule:<name>@<fire_at>``, ``hook:<name>:<delivery>``):
    the Core DB keeps at most one run per key, so a fire or a delivery handled twice (a
    crash between fire and journal, a retry, another replica) never makes a second run.
    ``detail`` is what runs show as their ``trigger`` (``{"kind", "name", …}``).
    """

    key: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """``POST /runs`` with an ``Idempotency-Key``: the scoped key, the body's digest, the run."""

    key: str
    #: ``hmac-sha256:<hex>@<key id>`` under the install's key (:func:`flwd.store.body_digest`),
    #: never a plain hash of the body, which may hold a secret. (The column kept
    #: its first name.)
    body_sha256: str
    run_id: str
    created_at: float
