"""Notifications, sans-IO (issue 16 item 3): the ``notify:`` schema of a job's config and of
flwd.yaml, which events a finished run sends (failure, recovery, success, canceled, N
failures in a row), the payload, its signature, and reading a sink's secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from flwd.errors import ConfigInvalid
from flwd.events import RunRow
from flwd.jobs import (
    NotifyRule,
    file_key,
    know_workspace_notify,
    load_workspace_notify,
    parse_config,
    read_alias_entries,
    read_workspace_notify,
)
from flwd.notify import (
    RunLinks,
    SecretUnavailable,
    Streaks,
    arm,
    delivery_id,
    email_text,
    finish_event,
    history_depth,
    notification,
    read_credentials,
    read_secret_file,
    signature,
    streaks,
    verify_signature,
)
from flwd.notify._attempt import bounded


def rules_of(text: str) -> list[NotifyRule]:
    return parse_config(text, path="config.yaml").config.notify


def problems_of(text: str) -> list[dict[str, str]]:
    with pytest.raises(ConfigInvalid) as info:
        parse_config(text, path="config.yaml")
    return list(info.value.errors)


# -- the schema -----------------------------------------------------------------------------


def test_a_bare_on_key_is_on_not_true_and_one_rule_may_be_a_mapping() -> None:
    # YAML 1.1 reads a bare `on:` as the boolean true (GitHub Actions' trap).
    [rule] = rules_of("notify:\n  on: [failure, Recovery]\n  command: [./alert.sh]\n")
    assert rule.on == ["failure", "recovery"]
    assert rule.kind == "command" and rule.command is not None
    assert rule.command.argv == ["./alert.sh"]
    assert rule.events == {"failure", "recovery"}


def test_every_sink_and_trigger_is_read_with_its_defaults() -> None:
    webhook, mail, command = rules_of("""
notify:
  - on: failure
    after_failures: 3
    jobs: backup.*
    webhook: {url: "https://hooks.example.com/x", secret_env: ALERT_SECRET,
              headers: {X-Team: ops, X-Level: 2}, backoff: 500ms}
  - name: ops mail
    on: [success, canceled]
    email: {smtp_host: mail.example.com, from: flwd@example.com, to: ops@example.com,
            credentials_file: ~/.config/flwd/smtp}
  - running_longer_than: 10m
    command: {argv: [notify-send, flwd], timeout: 5s, attempts: 2}
""")
    assert (webhook.after_failures, webhook.jobs) == (3, ["backup.*"])
    assert webhook.events == frozenset({"failure"})
    hook, smtp, program = webhook.webhook, mail.email, command.command
    assert hook is not None and smtp is not None and program is not None
    assert hook.headers == {"X-Team": "ops", "X-Level": "2"}
    assert (hook.attempts, hook.timeout, hook.backoff) == (5, 10.0, 0.5)
    assert (mail.name, smtp.port, smtp.starttls, smtp.to) == (
        "ops mail", 587, True, ["ops@example.com"])
    assert smtp.sender == "flwd@example.com" and smtp.attempts == 3
    assert command.running_longer_than == 600 and command.events == frozenset()
    assert (program.timeout, program.attempts) == (5.0, 2)


def test_each_bad_field_is_named_by_its_path_in_the_file() -> None:
    errors = problems_of("""
notify:
  - on: [failur]
    webhook: {url: "ftp://example.com/T0KEN"}
  - on: [failure]
    email: {smtp_host: mail.example.com, from: nope, to: [], starttls: false}
  - {}
  - on: [failure]
    webhook: {url_env: "not a name", secret_file: a, secret_env: B}
    command: [x]
  - on: [success]
    email: {smtp_host: m.example.com, from: a@example.com, to: b@example.com,
            starttls: false, credentials_file: creds}
  - on: [failure]
    webhook: {url: "http://example.com", headers: {Content-Type: text/plain,
              X-Flwd-Signature: forged, "bad name": x, X-Two: "a\\nb", X-Key: k},
              headers_env: {Host: H, X-Token: "not a name", x-key: K, "a b": C}}
  - on: [failure]
    running_longer_than: 0
    after_failures: 0
    command: []
""")
    by_path = {error["arg"]: error["message"] for error in errors}
    assert [error["message"][:21] for error in errors if error["arg"] == "notify[2]"] == [
        "give exactly one sink", "say when to notify: o"]
    assert "is not one of" in by_path["notify[0].on[0]"]
    assert by_path["notify[0].webhook.url"] == "must be an http:// or https:// URL with a host"
    assert "is not an e-mail address" in by_path["notify[1].email.from"]
    assert by_path["notify[1].email.to"] == "give at least one recipient"
    assert "environment variable name" in by_path["notify[3].webhook.url_env"]
    assert "only sent over STARTTLS" in by_path["notify[4].email.starttls"]
    assert by_path["notify[5].webhook.headers.Content-Type"] == "flwd sets this header itself"
    assert by_path["notify[5].webhook.headers.X-Flwd-Signature"] == "flwd sets this header itself"
    assert by_path["notify[5].webhook.headers.bad name"] == "not a header name"
    assert by_path["notify[5].webhook.headers.X-Two"] == "must be one line of text"
    assert by_path["notify[5].webhook.headers_env.Host"] == "flwd sets this header itself"
    assert "must name an environment variable" in by_path["notify[5].webhook.headers_env.X-Token"]
    assert by_path["notify[5].webhook.headers_env.a b"] == "not a header name"
    assert "greater than 0" in by_path["notify[6].running_longer_than"]
    assert "at least 1" in by_path["notify[6].after_failures"]
    assert "notify[6].command.argv" in by_path
    # A URL may carry a token (a chat service's webhook): it is never quoted back.
    assert "T0KEN" not in json.dumps(errors)


def test_a_webhook_needs_one_url_and_one_secret_at_most() -> None:
    errors = problems_of("notify:\n  on: [failure]\n  webhook: {url: 'http://a.example', "
                         "url_env: U, secret_file: s, secret_env: S}\n")
    assert [(error["arg"], error["message"]) for error in errors] == [
        ("notify[0].webhook", "give url (or url_env, when the URL is itself a secret), "
                              "not both"),
        ("notify[0].webhook.secret_env", "give secret_file or secret_env, not both")]


def test_an_unknown_key_of_a_rule_is_an_error() -> None:
    # A misspelt secret_env would send unsigned notifications: never silently.
    errors = problems_of("notify:\n  - on: [failure]\n    webhook: {url: 'http://a.example', "
                         "secert_env: S}\n  - on: [failure]\n    webhok: {}\n    "
                         "command: [x]\n")
    assert [(error["arg"], error["message"]) for error in errors] == [
        ("notify[0].webhook.secert_env", "unknown key"), ("notify[1].webhok", "unknown key")]


def test_the_workspace_rules_of_flwd_yaml_skip_a_bad_rule_and_keep_the_good(
        tmp_path: Path) -> None:
    (tmp_path / "flwd.yaml").write_text("""
aliases: []
notify:
  - on: [failure]
    jobs: [backup.*]
    webhook: {url_env: ALERTS_URL}
  - on: [nope]
    command: [x]
  - on: [canceled]
    command: [y]
    extra: 1
""")
    rules, issues = load_workspace_notify(tmp_path, "scripts/flwd.yaml")
    assert [rule.kind for rule in rules] == ["webhook"]
    assert [(issue.level, issue.message) for issue in issues] == [
        ("error", "notify[1].on[0]: 'nope' is not one of: 'failure', 'recovery', 'success' "
                  "or 'canceled' (the rule is not used)"),
        ("error", "notify[2].extra: unknown key (the rule is not used)")]
    # flwd :jobs reports them with the aliases' (and no longer calls notify unknown).
    _, alias_issues = read_alias_entries(tmp_path, "scripts/flwd.yaml")
    assert [issue.message for issue in alias_issues] == [issue.message for issue in issues]



def test_a_read_of_flwd_yaml_kept_by_the_run_index_is_used_only_for_the_file_as_it_was(
        tmp_path: Path) -> None:
    path = tmp_path / "flwd.yaml"
    path.write_text("notify:\n  on: [failure]\n  command: [kept]\n")
    key = file_key(path)
    assert key is not None
    read = read_workspace_notify(tmp_path)
    assert read == ("value", {True: ["failure"], "command": ["kept"]})  # YAML 1.1: on is true
    # Known for this file as it is: used (once) instead of reading it.
    know_workspace_notify(tmp_path, key, ("value", {"on": ["success"], "command": ["told"]}))
    [rule] = load_workspace_notify(tmp_path, "scripts/flwd.yaml")[0]
    assert rule.command is not None and rule.command.argv == ["told"]
    # The file changed since (another size): it is read again.
    know_workspace_notify(tmp_path, key, ("value", {"on": ["success"], "command": ["told"]}))
    path.write_text("notify:\n  on: [failure]\n  command: [changed]\n")
    [rule] = load_workspace_notify(tmp_path, "scripts/flwd.yaml")[0]
    assert rule.command is not None and rule.command.argv == ["changed"]
    # What could not be read is said as when it was read.
    know_workspace_notify(tmp_path, file_key(path) or key, ("unreadable", "invalid YAML: x"))
    assert [issue.message for issue in load_workspace_notify(tmp_path, "f")[1]] == [
        "cannot read: invalid YAML: x"]


# -- which events a run sends ---------------------------------------------------------------


def test_a_finished_run_sends_the_event_its_status_calls_for() -> None:
    [rule] = rules_of("notify: {on: [failure, recovery, success, canceled], command: [x]}")
    first_failure, after_two = Streaks(current=1, before=0), Streaks(current=0, before=2)
    assert finish_event(rule, "failed", first_failure) == "failure"
    assert finish_event(rule, "completed", after_two) == "recovery"  # instead of success
    assert finish_event(rule, "completed", Streaks(0, 0)) == "success"
    assert finish_event(rule, "canceled", Streaks(0, 0)) == "canceled"
    [quiet] = rules_of("notify: {on: [recovery], command: [x]}")
    assert finish_event(quiet, "completed", Streaks(0, 0)) is None
    assert finish_event(quiet, "failed", first_failure) is None
    assert finish_event(quiet, "canceled", Streaks(0, 0)) is None


def _replay(rule: NotifyRule, statuses: list[str]) -> list[str | None]:
    """The events of a job's runs finishing in this order, the history read as the
    notifier reads it (newest first, this run's included, canceled runs left out)."""
    depth = history_depth(arm("job", [rule], []))
    history: list[str] = []
    sent: list[str | None] = []
    for status in statuses:
        if status == "canceled":
            sent.append(finish_event(rule, status, streaks([status])))
            continue
        history.insert(0, status)
        sent.append(finish_event(rule, status, streaks(history[:depth])))
    return sent


def test_after_failures_sends_once_per_streak_at_the_nth_failure_in_a_row() -> None:
    [rule] = rules_of("notify: {after_failures: 3, on: [recovery], command: [x]}")
    assert rule.events == {"failure", "recovery"}
    statuses = ["failed", "failed", "canceled", "failed", "failed", "failed",
                "completed", "failed", "completed", "failed", "interrupted", "failed"]
    assert _replay(rule, statuses) == [
        None, None, None, "failure",  # the 3rd in a row: a canceled run breaks no streak
        None, None,                   # the 4th and 5th: already told
        "recovery",                   # after a streak of at least 3
        None, None,                   # a streak of 1 ended: nothing to recover from
        None, None, "failure"]        # interrupted runs are failures too


def test_without_after_failures_every_failure_is_sent_and_one_failure_is_recovered() -> None:
    [rule] = rules_of("notify: {on: [failure, recovery], command: [x]}")
    assert _replay(rule, ["failed", "failed", "completed", "completed"]) == [
        "failure", "failure", "recovery", None]


def test_history_depth_is_what_the_rules_look_back_at() -> None:
    def depth(text: str) -> int:
        return history_depth(arm("job", rules_of(text), []))

    assert depth("notify: {on: [failure, success], command: [x]}") == 0
    assert depth("notify: {on: [recovery], command: [x]}") == 2
    assert depth("notify: [{after_failures: 5, command: [x]}, "
                 "{on: [recovery], command: [y]}]") == 6


def test_rules_are_armed_for_the_jobs_they_name_job_rules_first() -> None:
    job_rules = rules_of("notify: {on: [failure], command: [x]}")
    workspace = rules_of("notify: [{on: [failure], jobs: [Backup.*], command: [y]}, "
                         "{name: all, on: [failure], command: [z]}]")
    armed = arm("backup.nightly", job_rules, workspace)
    assert [(a.name, a.key) for a in armed] == [
        ("notify[0]", "job:backup.nightly:0"), ("flwd.yaml notify[0]", "workspace:0"),
        ("all", "workspace:1")]
    assert [a.name for a in arm("demo", [], workspace)] == ["all"]
    ids = {delivery_id("run-1", "failure", a.key) for a in armed}
    assert len(ids) == 3 and all(i.startswith("run-1.failure.") for i in ids)


# -- what a notification says ---------------------------------------------------------------


def _run(**extra: Any) -> RunRow:
    fields: dict[str, Any] = {
        "id": "run-01ABC", "job_id": "backup.nightly", "status": "failed",
        "created_at": 1_800_000_000.0, "started_at": 1_800_000_001.0,
        "finished_at": 1_800_000_031.5, "exit_code": 3,
        "error": "step 100_main.sh exited with status 3",
        "args": {"target": "/srv", "token": "[secret]"},
        "trigger": {"kind": "schedule", "name": "nightly", "fire_at": "2027-01-01T02:30:00Z"}}
    return RunRow(**{**fields, **extra})


def test_the_payload_summarises_the_run_with_its_args_redacted_and_a_link() -> None:
    note = notification("failure", _run(), "run-01ABC.failure.x",
                        RunLinks("https://flwd.example.com/"), consecutive_failures=3)
    document = json.loads(note.body)
    assert document == {
        "event": "failure", "delivery": "run-01ABC.failure.x", "consecutive_failures": 3,
        "run": {"id": "run-01ABC", "job_id": "backup.nightly", "status": "failed",
                "exit_code": 3, "error": "step 100_main.sh exited with status 3",
                "created_at": "2027-01-15T08:00:00.000000Z",
                "started_at": "2027-01-15T08:00:01.000000Z",
                "finished_at": "2027-01-15T08:00:31.500000Z", "duration_seconds": 30.5,
                "trigger": {"kind": "schedule", "name": "nightly",
                            "fire_at": "2027-01-01T02:30:00Z"},
                "args": {"target": "/srv", "token": "[secret]"},
                "url": "https://flwd.example.com/#/runs/run-01ABC",
                "api_url": "https://flwd.example.com/runs/run-01ABC"}}
    no_ui = notification("success", _run(), "d", RunLinks("http://127.0.0.1:8080", ui=False))
    assert no_ui.document["run"]["url"] == "http://127.0.0.1:8080/runs/run-01ABC"
    assert notification("success", _run(), "d", None).document["run"]["url"] is None


def test_a_signature_covers_the_timestamp_and_the_body() -> None:
    body = b'{"event":"failure"}'
    header = signature(b"s3cret", 1_800_000_000, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(b"s3cret", "1800000000", body, header, now=1_800_000_100)
    assert not verify_signature(b"s3cret", "1800000000", body + b" ", header,
                                now=1_800_000_100)  # a changed body
    assert not verify_signature(b"other", "1800000000", body, header, now=1_800_000_100)
    assert not verify_signature(b"s3cret", "1800000001", body, header, now=1_800_000_100)
    # Replayed later than the tolerance (5 minutes by default): refused.
    assert not verify_signature(b"s3cret", "1800000000", body, header, now=1_800_000_301)
    assert not verify_signature(b"s3cret", "18e8", body, header, now=1_800_000_000)


def test_a_mail_subject_is_one_line_whatever_the_run_says() -> None:
    note = notification("failure", _run(job_id="odd\njob", error="line one\nline two"),
                        "d", RunLinks("http://h:1"))
    subject, text = email_text(note)
    assert subject == "[flwd] odd job failed (run-01ABC)"
    assert "Error: line one\nline two" in text and "Link: http://h:1/#/runs/run-01ABC" in text


def test_what_an_attempt_reports_is_one_bounded_line_without_the_secrets() -> None:
    text = bounded("POST https://hooks.example.com/T0KEN failed\nwith s3cret " + "x" * 500,
                   "https://hooks.example.com/T0KEN", "s3cret", "")
    assert "T0KEN" not in text and "s3cret" not in text and "\n" not in text
    assert len(text) == 300 and text.endswith("…")


# -- secrets ----------------------------------------------------------------------------------


def test_a_secret_file_must_be_private_to_flwd_s_user(tmp_path: Path) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    with pytest.raises(SecretUnavailable) as info:
        read_secret_file("hook.secret", tmp_path)  # relative: in the workspace
    assert "mode 0644" in str(info.value) and "chmod 600" in str(info.value)
    assert "s3cret" not in str(info.value)
    secret.chmod(0o600)
    assert read_secret_file(str(secret), tmp_path) == b"s3cret"
    (tmp_path / "link").symlink_to(secret)
    with pytest.raises(SecretUnavailable, match="cannot open"):
        read_secret_file("link", tmp_path)  # the file itself is checked, not a link to it
    empty = tmp_path / "empty"
    empty.write_text("")
    empty.chmod(0o600)
    with pytest.raises(SecretUnavailable, match="is empty"):
        read_secret_file("empty", tmp_path)
    os.mkfifo(tmp_path / "fifo", 0o600)
    with pytest.raises(SecretUnavailable, match="not a regular file"):
        read_secret_file("fifo", tmp_path)


def test_credentials_are_one_user_password_line(tmp_path: Path) -> None:
    creds = tmp_path / "smtp"
    creds.write_text("alerts@example.com:pa:ss word\n")
    creds.chmod(0o600)
    assert read_credentials("smtp", tmp_path) == ("alerts@example.com", "pa:ss word")
    creds.write_text("no-colon\n")
    with pytest.raises(SecretUnavailable, match="USER:PASSWORD"):
        read_credentials("smtp", tmp_path)


def test_a_header_is_given_in_headers_or_headers_env_not_both() -> None:
    errors = problems_of("notify:\n  on: [failure]\n  webhook: {url: 'http://a.example', "
                         "headers: {X-Key: k}, headers_env: {x-key: K, X-Other: O}}\n")
    assert [(error["arg"], error["message"]) for error in errors] == [
        ("notify[0].webhook.headers_env.x-key", "also in headers: give it in one of them")]


def test_a_secret_header_of_more_than_one_line_fails_the_attempt_without_quoting_it(
        tmp_path: Path) -> None:
    import httpx
    import trio

    from flwd.notify import Notification
    from flwd.notify._webhook import post_webhook

    [rule] = rules_of("notify:\n  on: [failure]\n  webhook: {url: 'http://127.0.0.1:9/x', "
                      "headers_env: {Authorization: RCV_AUTH}}\n")
    assert rule.webhook is not None and rule.webhook.headers_env == {"Authorization": "RCV_AUTH"}
    note = Notification("run-1", "job", "failure", "d-1", {"event": "failure"})

    async def attempt(value: str | None) -> Any:
        environ = {} if value is None else {"RCV_AUTH": value}
        async with httpx.AsyncClient() as client:
            return await post_webhook(client, rule.webhook, note, environ=environ,
                                      workspace=tmp_path)

    injected = trio.run(attempt, "Bearer t0k\r\nX-Evil: 1")
    assert not injected.delivered and not injected.retry
    assert injected.error == ("the environment variable RCV_AUTH (header Authorization) is not "
                              "one line of text")
    unset = trio.run(attempt, None)
    assert unset.error == "the environment variable RCV_AUTH is not set in the flwd process"
