"""What each label of flwd's metrics may say: a fixed set of values, whatever clients send
(see ``_metrics``), and :func:`bounded`, which maps anything else to ``other``."""

from __future__ import annotations

from http import HTTPStatus

from flwd.errors import PROBLEMS
from flwd.observe import (
    DELIVERY_OUTCOMES,
    EVICTION_KINDS,
    HOOK_OUTCOMES,
    LISTEN_CHANNELS,
    PULL_OUTCOMES,
    SCHEDULE_OUTCOMES,
    SINK_KINDS,
    SOURCE_TYPES,
)

OTHER = "other"
UNMATCHED = "(unmatched)"
#: The methods the API serves (HEAD and OPTIONS are answered for every route).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STATUS_CODES = frozenset(str(status.value) for status in HTTPStatus)
#: A policy denial's reason is a problem code (flwd.errors.PROBLEMS).
DENIAL_REASONS = frozenset(spec.code for spec in PROBLEMS.values())
#: The kinds of event stream (the ``kind`` label of stream refusals).
STREAM_KINDS = ("sse", "ndjson", "text", "websocket")
#: The streams that take a cursor, so can refuse an expired one (WebSocket takes none).
CURSOR_TRANSPORTS = ("sse", "ndjson")
KNOWN_EVICTION_KINDS = frozenset(EVICTION_KINDS)
KNOWN_PULL_OUTCOMES = frozenset(PULL_OUTCOMES)
KNOWN_SOURCE_TYPES = frozenset(SOURCE_TYPES)
KNOWN_SCHEDULE_OUTCOMES = frozenset(SCHEDULE_OUTCOMES)
KNOWN_SINK_KINDS = frozenset(SINK_KINDS)
KNOWN_DELIVERY_OUTCOMES = frozenset(DELIVERY_OUTCOMES)
KNOWN_HOOK_OUTCOMES = frozenset(HOOK_OUTCOMES)
KNOWN_LISTEN_CHANNELS = frozenset(LISTEN_CHANNELS)
#: Hook names counted apart: they are the configured ones (the adapter sends any other
#: as UNKNOWN_HOOK); past this many, a config that keeps renaming them is "other".
MAX_HOOK_LABELS = 1000


def bounded(value: str, known: frozenset[str]) -> str:
    """``value`` when it is one of ``known``, else ``other``."""
    return value if value in known else OTHER
