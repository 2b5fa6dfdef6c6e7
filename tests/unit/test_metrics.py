"""The metrics registry (flwd/http/_metrics.py): bounded labels, no _created series, the
process collector, label values alerts rely on present from the start."""

from __future__ import annotations

import random
import re
import string

from prometheus_client.parser import text_string_to_metric_families

from flwd.http._metrics import METHODS, Metrics


def _samples(metrics: Metrics) -> list[tuple[str, dict[str, str], float]]:
    text = metrics.render().decode()
    return [(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text) for sample in family.samples]


def test_made_up_methods_paths_and_statuses_add_no_series() -> None:
    metrics = Metrics("secure")
    metrics.observe_request("GET", "/runs", 200, 0.01)
    before = len(metrics.render())
    chooser = random.Random(11)
    for _ in range(2000):
        method = "".join(chooser.choices(string.ascii_uppercase, k=8))
        metrics.observe_request(method, None, chooser.choice([404, 405, 999, 42]), 0.001)
    metrics.observe_run_finish("exploded")
    after = _samples(metrics)
    methods = {labels["method"] for _, labels, _ in after if "method" in labels}
    assert methods <= METHODS | {"other"}
    assert {labels["route"] for _, labels, _ in after if "route" in labels} == {
        "/runs", "(unmatched)"}
    assert {labels["code"] for _, labels, _ in after if "code" in labels} == {"200", "404",
                                                                             "405", "other"}
    assert {labels["status"] for name, labels, _ in after if name == "flwd_runs_total"} == {
        "completed", "failed", "canceled", "interrupted", "other"}
    # 2,000 requests with new methods grow the text by a few series, not 2,000 of them.
    assert len(metrics.render()) < before + 5000


def test_alerting_series_exist_at_zero_and_no_created_series() -> None:
    samples = _samples(Metrics("secure"))
    runs = {labels["status"]: value for name, labels, value in samples
            if name == "flwd_runs_total"}
    assert runs == {"completed": 0.0, "failed": 0.0, "canceled": 0.0, "interrupted": 0.0}
    assert ("flwd_policy_denials_total", {"reason": "policy.denied"}, 0.0) in samples
    assert not [name for name, _, _ in samples if name.endswith("_created")]


def test_process_collector_and_a_websocket_gauge_apart_from_sse() -> None:
    metrics = Metrics("secure")
    metrics.websockets.inc()
    text = metrics.render().decode()
    for name in ("process_resident_memory_bytes", "process_open_fds",
                 "process_cpu_seconds_total"):
        assert re.search(rf"^{name} \d", text, re.M), name
    assert re.search(r"^flwd_websocket_active_connections 1\.0$", text, re.M)
    assert re.search(r"^flwd_sse_active_streams 0\.0$", text, re.M)


def test_observer_values_outside_the_known_sets_are_other() -> None:
    # The engine only passes flwd.observe's constants; anything else must not add series.
    metrics = Metrics("secure")
    before = {(name, tuple(sorted(labels.items()))) for name, labels, _ in _samples(metrics)}
    metrics.persistence("made-up", "weird", 0.001)
    metrics.persistence("journal_append", "weird", 0.001)
    metrics.evicted("runs", 1, 10)
    metrics.image_pulled("maybe", 1.0)
    metrics.source_added("ftp")
    new = {(name, tuple(sorted(labels.items()))) for name, labels, _ in _samples(metrics)
           } - before
    values = {value for _, labels in new for key, value in labels if key != "le"}
    assert values == {"other"}
    samples = _samples(metrics)
    assert ("flwd_container_pulls_total", {"outcome": "other"}, 1.0) in samples
    # An image that failed to pull is not timed as a pull.
    assert ("flwd_container_pull_seconds_count", {}, 0.0) in samples


def test_hook_requests_take_only_known_outcomes_and_a_bounded_set_of_hooks() -> None:
    from flwd.http._metrics import MAX_HOOK_LABELS
    from flwd.observe import HOOK_OUTCOMES, UNKNOWN_HOOK

    metrics = Metrics("secure")
    # The alerting series of unknown hooks exists at 0 from the start.
    assert ("flwd_hook_requests_total", {"hook": UNKNOWN_HOOK, "outcome": "unknown"}, 0.0) \
        in _samples(metrics)
    metrics.hook_request("github-push", "signature")
    metrics.hook_request("github-push", "made-up")
    for number in range(MAX_HOOK_LABELS + 50):  # a config renaming its hooks for ever
        metrics.hook_request(f"hook-{number}", "accepted")
    series = [(labels["hook"], labels["outcome"]) for name, labels, _ in _samples(metrics)
              if name == "flwd_hook_requests_total"]
    assert {outcome for _, outcome in series} <= {*HOOK_OUTCOMES, "other"}
    assert ("github-push", "signature") in series and ("github-push", "other") in series
    assert len({hook for hook, _ in series}) <= MAX_HOOK_LABELS + 1
    assert ("other", "accepted") in series
