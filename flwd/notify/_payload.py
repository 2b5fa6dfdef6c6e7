"""What a notification says, and how a webhook's body is signed (sans-IO).

The body is JSON::

    {"event": "failure", "delivery": "run-….failure.1a2b3c4d5e",
     "run": {"id", "job_id", "status", "exit_code", "error", "created_at",
             "started_at", "finished_at", "duration_seconds", "trigger", "args",
             "url", "api_url"},
     "consecutive_failures": 3}          # with after_failures
     "running_seconds": 612.4}           # running_longer_than

``args`` are the run's redacted arguments: a secret argument is ``[secret]``, as
everywhere else. A webhook's signature is ``X-Flwd-Signature: sha256=<hex>``, the
HMAC-SHA256 under the sink's secret of ``<X-Flwd-Timestamp>.<body>``: a receiver
recomputes it and refuses a timestamp too far from its clock, so a recorded
request cannot be replayed later (:func:`verify_signature`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from flwd.events import RunRow, format_ts

SIGNATURE_HEADER = "X-Flwd-Signature"
TIMESTAMP_HEADER = "X-Flwd-Timestamp"
#: How far a receiver should accept a timestamp from its clock (seconds), by default.
SIGNATURE_TOLERANCE = 300

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class RunLinks:
    """Where a run can be looked at: the server's public URL (``--public-url``), else
    its bind address; ``ui``: the web UI is served (its run page is the link)."""

    base: str
    ui: bool = True

    def api_url(self, run_id: str) -> str:
        return f"{self.base.rstrip('/')}/runs/{quote(run_id, safe='')}"

    def page_url(self, run_id: str) -> str:
        if not self.ui:
            return self.api_url(run_id)
        return f"{self.base.rstrip('/')}/#/runs/{quote(run_id, safe='')}"


def public_url_valid(url: str) -> bool:
    """Whether ``url`` can be a server's public URL: http(s), a host, no query, no
    credentials (it is sent in every notification and shown by ``GET /server``)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a port out of range raises here)
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query
            and parts.username is None and parts.password is None
            and not parts.fragment and not any(ch.isspace() for ch in url))


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification of a run: its document, and the JSON a sink sends."""

    run_id: str
    job_id: str
    event: str
    delivery: str
    document: dict[str, Any]

    @property
    def body(self) -> bytes:
        return _dumps(self.document).encode()


def run_summary(run: RunRow, links: RunLinks | None) -> dict[str, Any]:
    """The run as a notification shows it (its arguments redacted)."""
    finished = run.finished_at
    duration = (None if run.started_at is None or finished is None
                else round(max(0.0, finished - run.started_at), 3))
    return {
        "id": run.id, "job_id": run.job_id, "status": run.status,
        "exit_code": run.exit_code, "error": run.error,
        "created_at": format_ts(run.created_at),
        "started_at": None if run.started_at is None else format_ts(run.started_at),
        "finished_at": None if finished is None else format_ts(finished),
        "duration_seconds": duration, "trigger": run.trigger, "args": run.args,
        "url": None if links is None else links.page_url(run.id),
        "api_url": None if links is None else links.api_url(run.id),
    }


def notification(event: str, run: RunRow, delivery: str, links: RunLinks | None, *,
                 consecutive_failures: int | None = None,
                 running_seconds: float | None = None) -> Notification:
    document: dict[str, Any] = {"event": event, "delivery": delivery,
                                "run": run_summary(run, links)}
    if consecutive_failures is not None:
        document["consecutive_failures"] = consecutive_failures
    if running_seconds is not None:
        document["running_seconds"] = round(running_seconds, 3)
    return Notification(run.id, run.job_id, event, delivery, document)


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``<timestamp>.<body>`` under ``secret``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(secret: bytes, timestamp: str, body: bytes, header: str, *, now: float,
                     tolerance: float = SIGNATURE_TOLERANCE) -> bool:
    """What a receiver checks: the signature matches (in constant time) and the
    timestamp is within ``tolerance`` seconds of ``now``."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), header)


_TITLES = {"failure": "failed", "recovery": "recovered", "success": "succeeded",
           "canceled": "was canceled", "running_longer_than": "is running long"}


def email_text(note: Notification) -> tuple[str, str]:
    """(subject, plain-text body) of a notification mail."""
    run = note.document["run"]
    title = _TITLES.get(note.event, note.event)
    subject = f"[flwd] {run['job_id']} {title} ({run['id']})"
    facts = [("Event", note.event), ("Job", run["job_id"]), ("Run", run["id"]),
             ("Status", run["status"]), ("Exit code", run["exit_code"]),
             ("Error", run["error"]), ("Started", run["started_at"]),
             ("Finished", run["finished_at"]), ("Duration (s)", run["duration_seconds"]),
             ("Failures in a row", note.document.get("consecutive_failures")),
             ("Running for (s)", note.document.get("running_seconds")),
             ("Trigger", None if run["trigger"] is None else _dumps(run["trigger"])),
             ("Link", run["url"])]
    lines = [f"{label}: {value}" for label, value in facts if value is not None]
    lines += ["", f"Delivery: {note.delivery}"]
    # One line per header field: a job id or an error never breaks the subject.
    return " ".join(subject.split()), "\n".join(lines) + "\n"
