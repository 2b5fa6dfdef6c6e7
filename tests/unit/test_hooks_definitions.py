"""Hook definitions (flwd.hooks): parsing every auth style, every refusal of a bad
declaration, and the index of a real workspace (jobs, duplicates, secrets, auth: none)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from flwd.hooks import (
    DELIVERY_HEADERS,
    TRIGGER_SCOPE,
    Declaration,
    HookInvalid,
    index_hooks,
    load_hooks,
    parse_hook,
)
from flwd.jobs import discover
from flwd.tokens import SCOPES, check_scopes

BASE = Path("/srv/ws")
GITHUB: dict[str, Any] = {
    "name": "github-push", "job": "demo",
    "args": {"name": {"body": "/pusher/name"}, "loud": {"value": True}},
    "auth": {"hmac": {"secret_file": "hooks/github.secret"}}}


def problems(entry: Any, **options: Any) -> list[tuple[str, str]]:
    with pytest.raises(HookInvalid) as info:
        parse_hook(entry, base=BASE, **options)
    return info.value.problems


def test_a_github_hook_with_its_defaults() -> None:
    hook = parse_hook(GITHUB, base=BASE, declared_in="scripts/flwd.yaml")
    hmac = hook.auth.hmac
    assert hmac is not None
    assert (hmac.header, hmac.algorithm, hmac.template, hmac.payload) == (
        "X-Hub-Signature-256", "sha256", "sha256={hex}", "{body}")
    # A relative secret file is the workspace's; the secret itself is never read here.
    assert hmac.secret.kind == "file" and hmac.secret.where == "/srv/ws/hooks/github.secret"
    assert hook.args["name"].path == ("pusher", "name") and hook.args["loud"].value is True
    assert hook.delivery_headers == DELIVERY_HEADERS and hook.replay_window == 86400
    assert hook.auth.kinds == ["hmac"] and not hook.auth.none


def test_stripe_slack_standard_webhooks_and_gitlab_styles() -> None:
    stripe = parse_hook({"name": "s", "job": "j", "auth": {"hmac": {
        "secret_env": "STRIPE", "header": "Stripe-Signature", "format": "stripe",
        "tolerance": "2m"}}}, base=BASE)
    assert stripe.auth.hmac is not None and stripe.auth.hmac.stripe
    assert stripe.auth.hmac.payload == "{timestamp}.{body}" and stripe.auth.hmac.tolerance == 120
    slack = parse_hook({"name": "slack", "job": "j", "auth": {"hmac": {
        "secret_env": "SLACK", "header": "X-Slack-Signature", "format": "v0={hex}",
        "timestamp_header": "X-Slack-Request-Timestamp",
        "signed_payload": "v0:{timestamp}:{body}"}}}, base=BASE)
    assert slack.auth.hmac is not None and slack.auth.hmac.signs_time
    standard = parse_hook({"name": "std", "job": "j", "delivery_header": "webhook-id",
                           "auth": {"hmac": {
                               "secret_file": "/etc/flwd/std", "header": "webhook-signature",
                               "format": "v1,{base64}", "timestamp_header": "webhook-timestamp",
                               "signed_payload": "{delivery}.{timestamp}.{body}"}}}, base=BASE)
    assert standard.delivery_headers == ("webhook-id",)
    gitlab = parse_hook({"name": "gl", "job": "j",
                         "auth": {"token": {"secret_env": "GITLAB_TOKEN"}}}, base=BASE)
    assert gitlab.auth.token is not None and gitlab.auth.token.header == "X-Gitlab-Token"
    both = parse_hook({"name": "ci", "job": "j",
                       "auth": {"bearer": True, "allow_ips": ["10.0.0.0/8", "::1"]}}, base=BASE)
    assert both.auth.kinds == ["bearer", "allow_ips"]


def test_no_auth_is_refused_and_none_must_be_written() -> None:
    [(where, message)] = problems({"name": "x", "job": "j"})
    assert where == "auth" and "auth: none" in message and "--dev" in message
    assert parse_hook({"name": "x", "job": "j", "auth": "none"}, base=BASE).auth.none


@pytest.mark.parametrize(("auth", "where", "words"), [
    ({"hmac": {"secret": "hunter2"}}, "auth.hmac.secret", "never written in a config"),
    ({"hmac": {"secret_file": "a", "secret_env": "B"}}, "auth.hmac", "exactly one"),
    ({"hmac": {"secret_env": "1BAD"}}, "auth.hmac.secret_env", "variable name"),
    ({"hmac": {"secret_env": "S", "format": "sha256=%s"}}, "auth.hmac.format", "{hex}"),
    ({"hmac": {"secret_env": "S", "algorithm": "md5"}}, "auth.hmac.algorithm", "sha256"),
    ({"hmac": {"secret_env": "S", "timestamp_header": "X-T"}}, "auth.hmac.signed_payload",
     "not signed proves nothing"),
    ({"hmac": {"secret_env": "S", "signed_payload": "{timestamp}.{body}"}},
     "auth.hmac.timestamp_header", "name the header"),
    ({"hmac": {"secret_env": "S", "format": "stripe", "timestamp_header": "X-T"}},
     "auth.hmac.timestamp_header", "leave timestamp_header out"),
    ({"hmac": {"secret_env": "S", "signed_payload": "{timestamp}"}},
     "auth.hmac.signed_payload", "{body} once"),
    ({"hmac": {"secret_env": "S", "tolerance": "2h"}}, "auth.hmac.tolerance", "between"),
    ({"hmac": {"secret_env": "S", "header": "Bad Header"}}, "auth.hmac.header", "header name"),
    ({"hmac": {"secret_env": "S", "secret_encoding": "hex"}}, "auth.hmac.secret_encoding",
     "base64"),
    ({"bearer": False}, "auth.bearer", "bearer: true"),
    ({"allow_ips": ["10.0.0.300"]}, "auth.allow_ips[0]", "not an address"),
    ({"allow_ips": []}, "auth.allow_ips", "list of addresses"),
    ({"hmca": {}}, "auth.hmca", "did you mean 'hmac'"),
    ("basic", "auth", "'none' or a mapping"),
])
def test_each_bad_auth_names_its_field(auth: Any, where: str, words: str) -> None:
    found = problems({"name": "x", "job": "j", "auth": auth})
    assert any(field == where and words in message for field, message in found), found


def test_a_signed_delivery_needs_its_header_named() -> None:
    found = problems({"name": "x", "job": "j", "auth": {"hmac": {
        "secret_env": "S", "signed_payload": "{delivery}.{body}"}}})
    assert found == [("auth.hmac.signed_payload",
                      "signs {delivery}: name its header with delivery_header")]


@pytest.mark.parametrize(("args", "where", "words"), [
    ({"a": {"body": "/x/~2"}}, "args.a.body", "~0"),
    ({"a": {"body": "x..y"}}, "args.a.body", "no empty part"),
    ({"a": {"body": "/x", "query": "y"}}, "args.a", "one of body"),
    ({"a": "/x"}, "args.a", "one of body"),
    ({"a": {"header": "X-Hub-Signature-256"}}, "args.a", "credential"),
    ({"a": {"header": "authorization"}}, "args.a", "credential"),
    ({"a": {"query": "a b"}}, "args.a.query", "parameter name"),
])
def test_each_bad_argument_mapping_names_its_field(args: Any, where: str, words: str) -> None:
    found = problems({**GITHUB, "args": args})
    assert any(field == where and words in message for field, message in found), found


def test_names_keys_and_windows() -> None:
    found = dict(problems({"name": "a/b", "job": "", "auth": "none", "replay_window": "10s",
                           "descripton": "typo"}))
    assert "name" in found and "job" in found
    assert "between" in found["replay_window"]
    assert "did you mean 'description'" in found["descripton"]
    assert problems("text") == [("", "each hook is a mapping with name, job, args and auth")]


def test_a_hook_in_a_job_config_runs_that_job() -> None:
    hook = parse_hook({"name": "x", "auth": "none"}, base=BASE, implied_job="tools.deploy")
    assert hook.job == "tools.deploy"
    [(where, message)] = problems({"name": "x", "job": "other", "auth": "none"},
                                  implied_job="tools.deploy")
    assert where == "job" and "leave 'job' out" in message


def test_the_trigger_scope_is_a_token_scope_and_star_grants_it() -> None:
    assert TRIGGER_SCOPE in SCOPES and TRIGGER_SCOPE in check_scopes(["*"])
    from flwd.complete._verbs import TOKEN_SCOPES  # the fast path's own list

    assert set(TOKEN_SCOPES) == {*SCOPES, "*"}


# -- the index of a workspace ---------------------------------------------------------


def _job(root: Path, rel: str, config: str) -> None:
    folder = root / "scripts" / rel
    (folder / "config.d").mkdir(parents=True)
    (folder / "config.d" / "config.yaml").write_text(config)
    (folder / "100_main.sh").write_text("true\n")


DEMO = """interpreter: bash
argspec:
  args:
    - {name: name, type: string, required: true}
    - {name: count, type: integer, default: 1}
    - {name: api_key, type: string, format: secret}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    _job(tmp_path, "demo", DEMO)
    _job(tmp_path, "deploy", DEMO + """hooks:
  - name: deploy-now
    args: {name: {query: who}}
    auth: {bearer: true}
""")
    return tmp_path


def _declared(*entries: Any) -> list[Declaration]:
    return [Declaration(entry, "scripts/flwd.yaml", index) for index, entry in enumerate(entries)]


def test_the_index_checks_jobs_arguments_and_constants(workspace: Path) -> None:
    catalog = discover(workspace / "scripts")
    index = index_hooks(_declared(
        {**GITHUB, "args": {"name": {"body": "/a"}, "api_key": {"value": "s3cr3t"}}},
        {"name": "nojob", "job": "missing", "auth": "none"},
        {"name": "noarg", "job": "demo", "auth": {"bearer": True}, "args": {"nope": {"value": 1}}},
        {"name": "badconst", "job": "demo", "auth": {"bearer": True},
         "args": {"count": {"value": "three"}}},
    ), catalog, base=workspace, dev=True)
    assert sorted(index.hooks) == ["github-push"]
    messages = [issue.message for issue in index.issues]
    assert any("hooks[1] (nojob): job: no job missing" in m for m in messages), messages
    assert any("hooks[2] (noarg): args.nope: job demo has no argument nope" in m
               for m in messages), messages
    assert any("hooks[3] (badconst): args.count.value: must be an integer" in m
               for m in messages), messages
    # A constant for a secret argument is never shown.
    shown = index.to_json()["hooks"][0]
    assert shown["args"]["api_key"] == {"value": "[secret]"}
    assert "s3cr3t" not in repr(index.to_json()) and "github.secret" not in repr(shown)


def test_a_name_declared_twice_is_served_by_neither(workspace: Path) -> None:
    catalog = discover(workspace / "scripts")
    hook = {"job": "demo", "auth": {"bearer": True}}
    index = index_hooks(_declared({**hook, "name": "Same"}, {**hook, "name": "same"},
                                  {**hook, "name": "other"}), catalog, base=workspace, dev=False)
    assert sorted(index.hooks) == ["other"]
    assert [issue.code for issue in index.issues] == ["hook.duplicate"] * 2


@pytest.mark.parametrize(("dev", "served", "level"), [
    (True, True, None), (False, False, "error"), (None, True, "warning")])
def test_auth_none_is_for_a_dev_server(workspace: Path, dev: bool | None, served: bool,
                                       level: str | None) -> None:
    catalog = discover(workspace / "scripts")
    index = index_hooks(_declared({"name": "open", "job": "demo", "auth": "none"}), catalog,
                        base=workspace, dev=dev)
    assert ("open" in index.hooks) == served
    assert [issue.level for issue in index.issues] == ([level] if level else [])


def test_load_reads_flwd_yaml_and_job_configs_and_checks_secrets(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = workspace / "github.secret"
    secret.write_text("topsecret\n")
    secret.chmod(0o644)
    (workspace / "scripts" / "flwd.yaml").write_text(f"""
aliases: []
hooks:
  - name: github-push
    job: demo
    args: {{name: {{body: /pusher/name}}}}
    auth: {{hmac: {{secret_file: github.secret}}}}
  - name: from-env
    job: demo
    auth: {{hmac: {{secret_env: FLWD_TEST_HOOK_SECRET}}}}
  - name: gone
    job: demo
    auth: {{token: {{secret_file: {workspace}/missing}}}}
""")
    monkeypatch.delenv("FLWD_TEST_HOOK_SECRET", raising=False)
    catalog = discover(workspace / "scripts", display_base=workspace)
    index = load_hooks(workspace / "scripts", workspace, catalog, dev=False)
    assert sorted(index.hooks) == ["deploy-now", "github-push"]
    assert index.hooks["deploy-now"].declared_in == "scripts/deploy/config.d/config.yaml"
    [exposed] = [issue for issue in index.issues if issue.code == "hook.secret.exposed"]
    assert exposed.level == "warning"  # 0644: others may read it
    unavailable = [issue.message for issue in index.issues
                   if issue.code == "hook.secret.unavailable"]
    assert len(unavailable) == 2
    assert "hook from-env: the environment variable FLWD_TEST_HOOK_SECRET is not set" in \
        unavailable[0]
    assert "hook gone: cannot read the secret file" in unavailable[1]
    # Not a server (flwd :jobs): another process's environment is not checked.
    cli = load_hooks(workspace / "scripts", workspace, catalog, dev=None)
    assert "from-env" in cli.hooks and "gone" not in cli.hooks
    monkeypatch.setenv("FLWD_TEST_HOOK_SECRET", "x")
    assert "from-env" in load_hooks(workspace / "scripts", workspace, catalog, dev=False).hooks
    listed = repr(index.to_json()["hooks"])
    assert "topsecret" not in listed and str(secret) not in listed, listed


def test_a_malformed_hooks_list_is_one_issue(workspace: Path) -> None:
    (workspace / "scripts" / "flwd.yaml").write_text("hooks: {name: x}\n")
    catalog = discover(workspace / "scripts", display_base=workspace)
    index = load_hooks(workspace / "scripts", workspace, catalog, dev=False)
    assert [issue.message for issue in index.issues if issue.path == "scripts/flwd.yaml"] == [
        "expected 'hooks:' to be a list of {name, job, args, auth}"]
    assert os.path.exists(workspace / "scripts" / "flwd.yaml")
