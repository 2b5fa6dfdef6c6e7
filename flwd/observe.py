"""What the engine, the store's callers and the add-on sources tell a metrics collector.

The core knows nothing of Prometheus: it calls an :class:`Observer` it was handed
(``flwd.http``'s ``Metrics`` is one; a process without metrics gets
:data:`UNOBSERVED`). Every method is called synchronously, from trio or from a
worker thread: it must be quick, thread-safe, and never raise.

The label values are fixed here, so that a collector can export every series at
0 from the start (an alert's series exists before the first event).
"""

from __future__ import annotations

from typing import Final, Protocol

#: The Core DB operations that are timed, and the outcomes each can have.
#: ``journal_append`` is one batch (one transaction of the journal's writer,
#: however many events it holds), ``journal_read`` one page of a replay,
#: ``idempotency_store`` the commit of a run's row with its Idempotency-Key.
PERSISTENCE_OUTCOMES: Final[dict[str, tuple[str, ...]]] = {
    "idempotency_lookup": ("hit", "miss", "expired", "error"),
    "idempotency_store": ("ok", "error"),
    "journal_append": ("ok", "quota_exceeded", "error"),
    "journal_read": ("ok", "error"),
}
#: What retention evicts: journal rows (events) and idempotency keys, with their runs.
EVICTION_KINDS: Final = ("journal", "idempotency")
#: How an image pull ended.
PULL_OUTCOMES: Final = ("ok", "error")
#: The source types (``flwd.sources``).
SOURCE_TYPES: Final = ("local", "git", "oci")
#: How a schedule's fire ended: a run started on time (``fired``), catching up a
#: missed fire (``catchup``) or asked for (``manual``); a fire that already had its
#: run (``duplicate``); or skipped, by reason (a skipped fire counts once per fire).
SCHEDULE_OUTCOMES: Final = (
    "fired", "catchup", "manual", "duplicate", "skipped_overlap", "skipped_queue_full",
    "skipped_misfire", "skipped_outside_catchup_window", "skipped_catchup_limit",
    "skipped_paused", "skipped_disabled", "skipped_refused")

#: The kinds of notification sink (``flwd.notify``); ``unknown`` for a run's
#: notifications dropped before any rule was looked at (the notifier's queue was full).
SINK_KINDS: Final = ("webhook", "email", "command", "unknown")
#: How a notification's delivery attempt ended (``retrying``: another attempt follows).
DELIVERY_OUTCOMES: Final = ("delivered", "retrying", "failed", "dropped", "abandoned")

#: How a request to ``POST /hooks/<name>`` ended: ``accepted`` (a run started), a
#: refusal's reason (``flwd.hooks.REFUSALS``), or ``unknown`` (no such hook; its
#: ``hook`` label is then :data:`UNKNOWN_HOOK`, never the name that was asked).
HOOK_OUTCOMES: Final = ("accepted", "ip", "signature", "timestamp", "token", "bearer", "scope",
                        "replay", "request", "too_large", "timeout", "args", "refused",
                        "unavailable", "unknown")
UNKNOWN_HOOK: Final = "(unknown)"
#: The channels a server on a PostgreSQL Core DB listens on (flwd/engine/_listener.py):
#: the journal's commits of other replicas, cancel requests for runs live here, runs
#: queued for any replica (its claimer looks: flwd/engine/_cluster.py).
LISTEN_CHANNELS: Final = ("events", "cancels", "queue")


class Observer(Protocol):
    """A collector of the core's measurements (see the module docstring)."""

    def persistence(self, operation: str, outcome: str, seconds: float) -> None:
        """One Core DB operation of :data:`PERSISTENCE_OUTCOMES` took ``seconds``."""

    def evicted(self, kind: str, count: int, size: int) -> None:
        """Retention removed ``count`` records of ``kind`` holding ``size`` bytes."""

    def image_pulled(self, outcome: str, seconds: float) -> None:
        """A container image was pulled from its registry (an image already present
        is not a pull)."""

    def manifest_invalid(self) -> None:
        """An add-on image's manifest was missing or broke the schema."""

    def source_added(self, kind: str) -> None:
        """A new source of this type was registered."""

    def schedule_fires(self, outcome: str, count: int) -> None:
        """``count`` fires of a schedule ended as ``outcome`` (:data:`SCHEDULE_OUTCOMES`)."""

    def schedule_lag(self, seconds: float) -> None:
        """A scheduled run was created ``seconds`` after its fire was due."""

    def notification(self, sink_kind: str, outcome: str) -> None:
        """A notification's delivery attempt to a sink of ``sink_kind`` ended as
        ``outcome`` (:data:`DELIVERY_OUTCOMES`)."""

    def hook_request(self, hook: str, outcome: str) -> None:
        """A request to a hook ended with ``outcome`` (:data:`HOOK_OUTCOMES`); ``hook``
        is a configured hook's name, or :data:`UNKNOWN_HOOK`."""

    def listening(self, connected: bool) -> None:
        """The LISTEN connection to the Core DB came up (again) or went down."""

    def heard(self, channel: str, count: int) -> None:
        """``count`` notifications came on ``channel`` (:data:`LISTEN_CHANNELS`)."""

    def cancels_taken(self, count: int) -> None:
        """``count`` cancel requests recorded through other replicas were taken for runs
        live here."""


class _Unobserved:
    """Drops every measurement (a CLI process, a server with ``--no-metrics``)."""

    def persistence(self, operation: str, outcome: str, seconds: float) -> None:
        pass

    def evicted(self, kind: str, count: int, size: int) -> None:
        pass

    def image_pulled(self, outcome: str, seconds: float) -> None:
        pass

    def manifest_invalid(self) -> None:
        pass

    def source_added(self, kind: str) -> None:
        pass

    def schedule_fires(self, outcome: str, count: int) -> None:
        pass

    def schedule_lag(self, seconds: float) -> None:
        pass

    def notification(self, sink_kind: str, outcome: str) -> None:
        pass

    def hook_request(self, hook: str, outcome: str) -> None:
        pass

    def listening(self, connected: bool) -> None:
        pass

    def heard(self, channel: str, count: int) -> None:
        pass

    def cancels_taken(self, count: int) -> None:
        pass


UNOBSERVED: Final[Observer] = _Unobserved()
