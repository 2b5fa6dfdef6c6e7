"""Prometheus metrics of a serve process (prometheus-client, a private registry).

Every label takes its values from a fixed set, whatever clients send: an HTTP
method flwd does not serve is ``other``, a path no route matched is
``(unmatched)`` (the route label is the matched rule, never the path), a status
or a policy code outside the known ones is ``other``. Otherwise each new value
an anonymous client makes up is a new series, kept for the life of the
process (20,000 random methods made a 36 MB scrape).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from flwd import __version__
from flwd.events import POLICY_DECISION, TERMINAL_STATUSES, EventRecord
from flwd.observe import (
    DELIVERY_OUTCOMES,
    EVICTION_KINDS,
    LISTEN_CHANNELS,
    PERSISTENCE_OUTCOMES,
    PULL_OUTCOMES,
    SCHEDULE_OUTCOMES,
    SINK_KINDS,
    SOURCE_TYPES,
    UNKNOWN_HOOK,
)

from ._labels import (
    CURSOR_TRANSPORTS,
    DENIAL_REASONS,
    KNOWN_DELIVERY_OUTCOMES,
    KNOWN_EVICTION_KINDS,
    KNOWN_HOOK_OUTCOMES,
    KNOWN_LISTEN_CHANNELS,
    KNOWN_PULL_OUTCOMES,
    KNOWN_SCHEDULE_OUTCOMES,
    KNOWN_SINK_KINDS,
    KNOWN_SOURCE_TYPES,
    MAX_HOOK_LABELS,
    METHODS,
    OTHER,
    STATUS_CODES,
    STREAM_KINDS,
    UNMATCHED,
    bounded,
)
from ._replica_metrics import watch_replica

if TYPE_CHECKING:
    from flwd.engine import Engine

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Core DB operations take from tens of microseconds (a read from the page cache)
#: to seconds (a batch waiting on fsync or on the write lock).
_PERSISTENCE = (0.0001, 0.00025, 0.0005, *_LATENCY)
_DURATION = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
#: From a fire's due time to its run's creation: milliseconds on an idle host; minutes
#: or hours for a fire queued behind a slow run, or caught up after a downtime.
_LAG = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600, 6 * 3600)


class Metrics:
    """Every metric flwd exposes; one instance per server, own registry (tests run several)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, profile: str) -> None:
        # The *_created series double every counter and histogram for a value
        # Prometheus does not use (process-wide: one server per process).
        disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated upstream
        self.registry = registry = CollectorRegistry(auto_describe=True)
        # process_resident_memory_bytes, process_open_fds, process_cpu_seconds_total …
        ProcessCollector(registry=registry)
        self.build_info = Info("flwd_build", "flwd build information", registry=registry)
        self.build_info.info({"version": __version__})
        self.security_profile = Gauge("flwd_security_profile",
                                      "The configured security profile (1 = active)",
                                      ["profile"], registry=registry)
        for name in ("secure", "permissive", "disabled"):
            self.security_profile.labels(name).set(1 if name == profile else 0)
        self.policy_denials = Counter("flwd_policy_denials_total",
                                      "Policy decisions that denied a request", ["reason"],
                                      registry=registry)
        self.policy_denials.labels("policy.denied")  # at 0: an alert's series exists
        self.http_requests = Counter("flwd_http_requests_total", "HTTP requests served",
                                     ["method", "route", "code"], registry=registry)
        self.http_duration = Histogram("flwd_http_request_duration_seconds",
                                       "HTTP request handling time", ["method", "route"],
                                       buckets=_LATENCY, registry=registry)
        self.container_run = Histogram("flwd_container_run_seconds",
                                       "Wall time of container steps", buckets=_DURATION,
                                       registry=registry)
        self.container_pull = Histogram("flwd_container_pull_seconds",
                                        "Wall time of successful image pulls",
                                        buckets=_DURATION, registry=registry)
        self.runs = Counter("flwd_runs_total", "Runs finished, by final status", ["status"],
                            registry=registry)
        for status in sorted(TERMINAL_STATUSES):
            # Present at 0 from the start: rate(flwd_runs_total{status="failed"}[1h])
            # must be 0, not "no data", before the first failure.
            self.runs.labels(status)
        self.run_duration = Histogram("flwd_run_duration_seconds", "Wall time of runs",
                                      buckets=_DURATION, registry=registry)
        self.sse_streams = Gauge("flwd_sse_active_streams", "Open Server-Sent Events streams",
                                 registry=registry)
        self.websockets = Gauge("flwd_websocket_active_connections",
                                "Open WebSocket event streams", registry=registry)
        self.journal_batches = Counter("flwd_journal_batches_total",
                                       "Transactions committed by the journal",
                                       registry=registry)
        self.journal_events = Counter("flwd_journal_events_total",
                                      "Events journaled (output lines counted one by one)",
                                      registry=registry)
        self.stream_refusals = Counter("flwd_stream_refusals_total",
                                       "Event streams refused with 503 streams.busy "
                                       "(--max-streams open)", ["kind"], registry=registry)
        for kind in STREAM_KINDS:
            self.stream_refusals.labels(kind)  # at 0: an alert's series exists
        self.sse_resumes = Counter("flwd_sse_resumes_total",
                                   "Event streams resumed with a cursor", registry=registry)
        self.cursor_expired = Counter("flwd_sse_cursor_expired_total",
                                      "Event streams refused with 410 cursor.expired (the "
                                      "events after the cursor were evicted)", ["transport"],
                                      registry=registry)
        for transport in CURSOR_TRANSPORTS:
            self.cursor_expired.labels(transport)
        self.container_runs = Counter("flwd_container_runs_total", "Container steps run",
                                      registry=registry)
        self.container_pulls = Counter("flwd_container_pulls_total",
                                       "Image pulls from a registry, for container steps and "
                                       "oci sources (an image already present is no pull)",
                                       ["outcome"], registry=registry)
        for outcome in PULL_OUTCOMES:
            self.container_pulls.labels(outcome)
        self.sources_added = Counter("flwd_sources_added_total", "Sources registered, by type",
                                     ["type"], registry=registry)
        for kind in SOURCE_TYPES:
            self.sources_added.labels(kind)
        self.manifests_invalid = Counter("flwd_addon_manifest_invalid_total",
                                         "Add-on images whose manifest was missing or invalid",
                                         registry=registry)
        self.notify_deliveries = Counter(
            "flwd_notify_deliveries_total", "Notification delivery attempts, by sink kind "
            "and outcome (retrying: another attempt follows; dropped: the sink had too many "
            "pending)", ["sink_kind", "outcome"], registry=registry)
        for kind in SINK_KINDS:
            for outcome in DELIVERY_OUTCOMES:
                self.notify_deliveries.labels(kind, outcome)
        self.hook_requests = Counter("flwd_hook_requests_total",
                                     "Requests to POST /hooks/<name>, by hook and outcome "
                                     "(accepted, or why it was refused)", ["hook", "outcome"],
                                     registry=registry)
        self.hook_requests.labels(UNKNOWN_HOOK, "unknown")  # at 0: an alert's series exists
        self._hook_labels: set[str] = {UNKNOWN_HOOK}
        self._persistence_metrics(registry)
        self.schedule_fire_count = Counter(
            "flwd_schedule_fires_total", "Fires of schedules, by how they ended: started "
            "(fired, catchup, manual), already started (duplicate) or skipped_<reason>",
            ["outcome"], registry=registry)
        for outcome in SCHEDULE_OUTCOMES:
            self.schedule_fire_count.labels(outcome)
        self.cluster_listening = Gauge(
            "flwd_cluster_listening", "1 while the LISTEN connection to a PostgreSQL Core DB "
            "is up (events and cancels of other replicas come at once), else 0",
            registry=registry)
        self.cluster_connects = Counter(
            "flwd_cluster_listen_connects_total", "LISTEN connections made to the Core DB "
            "(more than one: it was lost and made again)", registry=registry)
        self.cluster_notifications = Counter(
            "flwd_cluster_notifications_total", "Notifications heard from the Core DB, by "
            "channel (events: another replica's journal commits; cancels: cancel requests)",
            ["channel"], registry=registry)
        for channel in LISTEN_CHANNELS:
            self.cluster_notifications.labels(channel)
        self.cluster_cancels = Counter(
            "flwd_cluster_cancels_taken_total", "Cancel requests made through other replicas "
            "taken for runs live here", registry=registry)
        self.schedule_lag_seconds = Histogram(
            "flwd_schedule_lag_seconds", "From a fire's due time to its run's creation",
            buckets=_LAG, registry=registry)

    def _persistence_metrics(self, registry: CollectorRegistry) -> None:
        latency = Histogram("flwd_persistence_latency_seconds",
                            "Core DB operations: journal_append is one batch of the journal "
                            "writer (one transaction, however many events), journal_read one "
                            "page of a replay, idempotency_store the commit of a run with its "
                            "Idempotency-Key", ["operation", "outcome"],
                            buckets=_PERSISTENCE, registry=registry)
        # Resolved once: observing a batch is a dict lookup, not a labels() call.
        self._latency = {(operation, outcome): latency.labels(operation, outcome)
                         for operation, outcomes in PERSISTENCE_OUTCOMES.items()
                         for outcome in outcomes}
        self._latency_other = latency
        self.evictions = Counter("flwd_persistence_evictions_total",
                                 "Records retention evicted: journal rows (events), "
                                 "idempotency keys", ["kind"], registry=registry)
        self.eviction_bytes = Counter("flwd_persistence_eviction_bytes_total",
                                      "Bytes of the records retention evicted", ["kind"],
                                      registry=registry)
        for kind in EVICTION_KINDS:
            self.evictions.labels(kind)
            self.eviction_bytes.labels(kind)

    # -- flwd.observe.Observer: called from trio and from worker threads ----------
    def persistence(self, operation: str, outcome: str, seconds: float) -> None:
        child = self._latency.get((operation, outcome))
        if child is None:
            child = self._latency_other.labels(OTHER, OTHER)
        child.observe(seconds)

    def evicted(self, kind: str, count: int, size: int) -> None:
        kind = bounded(kind, KNOWN_EVICTION_KINDS)
        self.evictions.labels(kind).inc(count)
        self.eviction_bytes.labels(kind).inc(size)

    def image_pulled(self, outcome: str, seconds: float) -> None:
        self.container_pulls.labels(bounded(outcome, KNOWN_PULL_OUTCOMES)).inc()
        if outcome == "ok":
            self.container_pull.observe(seconds)

    def manifest_invalid(self) -> None:
        self.manifests_invalid.inc()

    def source_added(self, kind: str) -> None:
        self.sources_added.labels(bounded(kind, KNOWN_SOURCE_TYPES)).inc()

    def schedule_fires(self, outcome: str, count: int) -> None:
        self.schedule_fire_count.labels(bounded(outcome, KNOWN_SCHEDULE_OUTCOMES)).inc(count)

    def schedule_lag(self, seconds: float) -> None:
        self.schedule_lag_seconds.observe(max(0.0, seconds))

    def notification(self, sink_kind: str, outcome: str) -> None:
        self.notify_deliveries.labels(bounded(sink_kind, KNOWN_SINK_KINDS),
                                      bounded(outcome, KNOWN_DELIVERY_OUTCOMES)).inc()

    def hook_request(self, hook: str, outcome: str) -> None:
        if hook not in self._hook_labels:
            if len(self._hook_labels) >= MAX_HOOK_LABELS:
                hook = OTHER
            else:
                self._hook_labels.add(hook)
        self.hook_requests.labels(hook, bounded(outcome, KNOWN_HOOK_OUTCOMES)).inc()

    def listening(self, connected: bool) -> None:
        self.cluster_listening.set(1 if connected else 0)
        if connected:
            self.cluster_connects.inc()

    def heard(self, channel: str, count: int) -> None:
        self.cluster_notifications.labels(bounded(channel, KNOWN_LISTEN_CHANNELS)).inc(count)

    def cancels_taken(self, count: int) -> None:
        self.cluster_cancels.inc(count)

    def observe_request(self, method: str, route: str | None, status: int,
                        seconds: float) -> None:
        """Count one HTTP request; ``route`` is the matched rule (None: no route matched)."""
        method = bounded(method, METHODS)
        route = route if route is not None else UNMATCHED
        self.http_requests.labels(method, route, bounded(str(status), STATUS_CODES)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def observe_run_finish(self, status: object) -> None:
        self.runs.labels(bounded(str(status), TERMINAL_STATUSES)).inc()

    def watch_replica(self, engine: Engine) -> None:
        """When the server is a replica of a cluster: say which, and count its runs."""
        watch_replica(self.registry, engine)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def observe_policy_and_containers(metrics: Metrics, record: EventRecord) -> None:
    """Count a journaled policy denial; count and time a finished container step."""
    data = record.data
    if record.type == POLICY_DECISION:
        if data.get("decision") == "denied":
            reason = bounded(str(data.get("code") or "policy.denied"), DENIAL_REASONS)
            metrics.policy_denials.labels(reason).inc()
        return
    container = data.get("container")
    if isinstance(container, dict):
        run_seconds = container.get("run_seconds")
        if isinstance(run_seconds, int | float):
            metrics.container_runs.inc()
            metrics.container_run.observe(run_seconds)
