"""Property tests of inbound webhooks (flwd.hooks): any declaration is a hook or a
HookInvalid naming fields (never another exception), and any request — headers, body,
query — is mapped and checked to a result or a Rejected with a known reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flwd.hooks import (
    REFUSALS,
    Hook,
    HookInvalid,
    Inbound,
    Rejected,
    check_peer,
    delivery_of,
    map_args,
    parse_hook,
    verify_hmac,
    verify_token,
)

from .strategies import nested, scalars

pytestmark = pytest.mark.fuzz

WORDS = ["name", "job", "args", "auth", "hmac", "token", "bearer", "allow_ips", "none",
         "secret_file", "secret_env", "header", "algorithm", "format", "timestamp_header",
         "signed_payload", "tolerance", "body", "query", "value", "delivery_header",
         "replay_window", "stripe", "sha256={hex}", "{timestamp}.{body}", "v1,{base64}",
         "/a/0", "a.b", "10.0.0.0/8", "sha1", "5m", True]
leaves = st.one_of(scalars, st.sampled_from(WORDS))
documents = st.recursive(
    leaves, lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from([w for w in WORDS if isinstance(w, str)]),
                                  st.text(max_size=8)), children, max_size=6)),
    max_leaves=25)


@given(entry=documents)
def test_any_declaration_is_a_hook_or_named_problems(entry: Any) -> None:
    try:
        hook = parse_hook(entry, base=Path("/ws"))
    except HookInvalid as exc:
        assert exc.problems and all(isinstance(where, str) and message
                                    for where, message in exc.problems)
        return
    assert isinstance(hook, Hook) and hook.to_json()["name"] == hook.name


HOOKS = [parse_hook(definition, base=Path("/ws")) for definition in (
    {"name": "gh", "job": "j", "auth": {"hmac": {"secret_env": "S"}, "allow_ips": ["::/0"]},
     "args": {"a": {"body": "/a/0/b"}, "b": {"header": "X-B"}, "c": {"query": "c"}}},
    {"name": "st", "job": "j", "auth": {"hmac": {"secret_env": "S", "format": "stripe"}},
     "args": {"a": {"body": "a.b"}}, "delivery_header": "X-D"},
    {"name": "sw", "job": "j", "delivery_header": "webhook-id", "auth": {"hmac": {
        "secret_env": "S", "header": "webhook-signature", "format": "v1,{base64}",
        "timestamp_header": "webhook-timestamp",
        "signed_payload": "{delivery}.{timestamp}.{body}"}, "token": {"secret_env": "T"}}},
)]
header_names = st.sampled_from(["X-Hub-Signature-256", "Stripe-Signature", "webhook-id",
                                "webhook-timestamp", "webhook-signature", "X-Gitlab-Token",
                                "X-GitHub-Delivery", "X-D", "X-B", "Content-Type"])
header_values = st.one_of(st.text(max_size=60), st.sampled_from([
    "sha256=" + "0" * 64, "t=1800000000,v1=" + "a" * 64, "v1,AAAA", "application/json",
    "application/x-www-form-urlencoded", "1800000000"]))
bodies = st.one_of(st.binary(max_size=200), nested().map(lambda value: repr(value).encode()),
                   st.sampled_from([b'{"a": [{"b": 1}]}', b"payload=%7B%7D", b"[[[["]))


@given(hook=st.sampled_from(HOOKS), headers=st.lists(st.tuples(header_names, header_values),
                                                     max_size=6),
       body=bodies, query=st.dictionaries(st.text(max_size=5), st.text(max_size=10),
                                          max_size=3),
       peer=st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["::1", "10.0.0.1"])))
def test_any_request_is_checked_to_a_result_or_a_known_refusal(
        hook: Hook, headers: list[tuple[str, str]], body: bytes, query: dict[str, str],
        peer: str | None) -> None:
    inbound = Inbound.build(headers, query.items(), body, peer)
    try:
        check_peer(hook.auth.allow_ips, peer)
        delivery = delivery_of(hook, inbound)
        if hook.auth.token is not None:
            verify_token(hook.auth.token, b"secret", inbound)
        if hook.auth.hmac is not None:
            verify_hmac(hook.auth.hmac, b"secret", inbound, delivery, 1_800_000_000.0)
    except Rejected as exc:
        assert exc.reason in REFUSALS and exc.detail
    try:
        args = map_args(hook, inbound)
    except Rejected as exc:
        assert exc.reason == "request"
    else:
        assert set(args) <= set(hook.args)
