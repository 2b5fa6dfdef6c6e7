"""Prometheus metrics of a serve process (prometheus-client, a private registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from flwd import __version__
from flwd.events import POLICY_DECISION, EventRecord

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DURATION = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    """Every metric flwd exposes; one instance per server, own registry (tests run several)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, profile: str) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
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
        self.http_requests = Counter("flwd_http_requests_total", "HTTP requests served",
                                     ["method", "route", "code"], registry=registry)
        self.http_duration = Histogram("flwd_http_request_duration_seconds",
                                       "HTTP request handling time", ["method", "route"],
                                       buckets=_LATENCY, registry=registry)
        self.container_run = Histogram("flwd_container_run_seconds",
                                       "Wall time of container steps", buckets=_DURATION,
                                       registry=registry)
        self.container_pull = Histogram("flwd_container_pull_seconds",
                                        "Wall time of image pulls", buckets=_DURATION,
                                        registry=registry)
        self.runs = Counter("flwd_runs_total", "Runs finished, by final status", ["status"],
                            registry=registry)
        self.run_duration = Histogram("flwd_run_duration_seconds", "Wall time of runs",
                                      buckets=_DURATION, registry=registry)
        self.sse_streams = Gauge("flwd_sse_active_streams", "Open event streams",
                                 ["transport"], registry=registry)
        self.journal_batches = Counter("flwd_journal_batches_total",
                                       "Transactions committed by the journal",
                                       registry=registry)
        self.journal_events = Counter("flwd_journal_events_total",
                                      "Events journaled (output lines counted one by one)",
                                      registry=registry)
        self.sse_resumes = Counter("flwd_sse_resumes_total",
                                   "Event streams resumed with a cursor", registry=registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def observe_policy_and_containers(metrics: Metrics, record: EventRecord) -> None:
    """Count a journaled policy denial; time a finished container step (and its pull)."""
    data = record.data
    if record.type == POLICY_DECISION:
        if data.get("decision") == "denied":
            metrics.policy_denials.labels(str(data.get("code") or "policy.denied")).inc()
        return
    container = data.get("container")
    if isinstance(container, dict):
        run_seconds = container.get("run_seconds")
        if isinstance(run_seconds, int | float):
            metrics.container_run.observe(run_seconds)
        pull_seconds = container.get("pull_seconds")
        if isinstance(pull_seconds, int | float):
            metrics.container_pull.observe(pull_seconds)
