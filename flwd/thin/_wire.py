"""The frames of a command line's stream, back into what the CLI renders (sans-IO).

A run's events arrive as ``GET /runs/<id>/events`` frames them: one envelope per
event, an output line per ``step.log`` event. :func:`record` makes each the
:class:`~flwd.events.EventRecord` the engine journaled (a one-line chunk for output),
so :class:`flwd.output.RunOutput` prints the same bytes as it does for a local run: the
line's exact bytes (a ``cli.bytes`` frame carries those a frame cannot), its data, its
timestamp (the frame's text and :func:`~flwd.events.format_ts` agree to the
microsecond both ways).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from flwd.events import STEP_LOG, EventRecord, parse_ts


class WireError(Exception):
    """A frame that is not what the server sends."""


def record(envelope: Any, exact: Mapping[int, bytes]) -> EventRecord:
    """The record of one event's envelope; ``exact``: output lines' bytes by seq (from
    ``cli.bytes`` frames).

    Raises:
        WireError: not an event envelope.
    """
    try:
        seq, data = envelope["seq"], envelope["data"]
        run_id, job_id, type_ = envelope["run_id"], envelope["job_id"], envelope["type"]
        ts = parse_ts(envelope["ts"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"not an event: {exc}") from None
    if type(seq) is not int or not isinstance(data, dict) or not all(
            isinstance(text, str) for text in (run_id, job_id, type_)):
        raise WireError("not an event: a member has the wrong type")
    if type_ != STEP_LOG:
        return EventRecord(run_id, job_id, type_, ts, data, seq=seq)
    message = data.get("message")
    if not isinstance(message, str):
        raise WireError("an output event without its message")
    line = exact.get(seq)
    if line is None:
        line = message.encode()
    return EventRecord(run_id, job_id, type_, ts,
                       {"step": data.get("step"), "channel": data.get("channel")},
                       lines=line, n=1, seq=seq)


def exact_line(document: Any) -> tuple[int, bytes]:
    """A ``cli.bytes`` frame's seq and bytes.

    Raises:
        WireError: not such a frame.
    """
    try:
        seq, text = document["seq"], document["base64"]
        if type(seq) is not int or not isinstance(text, str):
            raise TypeError("a member has the wrong type")
        return seq, base64.b64decode(text, validate=True)
    except (KeyError, TypeError, binascii.Error) as exc:
        raise WireError(f"not a cli.bytes frame: {exc}") from None
