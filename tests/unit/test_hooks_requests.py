"""The checks of a request to a hook (flwd.hooks, sans-IO): signatures in every style,
timestamps, tokens, peers, delivery ids, the mapping of a request to arguments, the
refusal table and the journal's budget."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from flwd.hooks import (
    REFUSALS,
    Hook,
    Inbound,
    Rejected,
    RejectionBudget,
    check_peer,
    delivery_of,
    map_args,
    parse_hook,
    read_secret,
    verify_hmac,
    verify_token,
)
from flwd.observe import HOOK_OUTCOMES

SECRET = b"It's a Secret to Everybody"
NOW = 1_800_000_000.0
BASE = Path("/ws")


def hook(auth: Any, **more: Any) -> Hook:
    return parse_hook({"name": "h", "job": "j", "auth": auth, **more}, base=BASE)


def inbound(body: bytes = b"", *headers: tuple[str, str], query: dict[str, str] | None = None,
            peer: str | None = "127.0.0.1") -> Inbound:
    return Inbound.build(headers, (query or {}).items(), body, peer)


def reason(call: Any, *args: Any) -> str:
    with pytest.raises(Rejected) as info:
        call(*args)
    assert info.value.reason in REFUSALS
    return info.value.reason


# GitHub's documented example (docs.github.com, "Validating webhook deliveries").
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_githubs_documented_example_verifies() -> None:
    spec = hook({"hmac": {"secret_env": "X"}}).auth.hmac
    assert spec is not None
    verify_hmac(spec, SECRET, inbound(GITHUB_BODY, ("x-hub-signature-256", GITHUB_SIGNATURE)),
                None, NOW)
    # Hex digits in either case are the same signature.
    verify_hmac(spec, SECRET, inbound(GITHUB_BODY, ("X-Hub-Signature-256",
                                                    GITHUB_SIGNATURE.upper().replace("SHA256",
                                                                                     "sha256"))),
                None, NOW)


@pytest.mark.parametrize("headers", [
    # A forgery of the right length, one digit changed.
    [("X-Hub-Signature-256", GITHUB_SIGNATURE[:-1] + "f")],
    # Another body's signature, the algorithm's prefix missing, garbage, nothing.
    [("X-Hub-Signature-256", "sha256=" + "0" * 64)],
    [("X-Hub-Signature-256", GITHUB_SIGNATURE[7:])],
    [("X-Hub-Signature-256", "sha256=zz")],
    [("X-Hub-Signature-256", "")],
    [],
    # Sent twice (which one would count?).
    [("X-Hub-Signature-256", GITHUB_SIGNATURE), ("X-Hub-Signature-256", GITHUB_SIGNATURE)],
])
def test_a_forged_or_missing_signature_is_refused(headers: list[tuple[str, str]]) -> None:
    spec = hook({"hmac": {"secret_env": "X"}}).auth.hmac
    assert reason(verify_hmac, spec, SECRET, inbound(GITHUB_BODY, *headers), None,
                  NOW) == "signature"


def _hex(payload: bytes, digest: Any = hashlib.sha256) -> str:
    return hmac.new(SECRET, payload, digest).hexdigest()


def test_stripe_signatures_their_window_and_a_rotation() -> None:
    spec = hook({"hmac": {"secret_env": "X", "header": "Stripe-Signature",
                          "format": "stripe"}}).auth.hmac
    assert spec is not None
    body = b'{"id": "evt_1"}'
    t = int(NOW) - 60
    good = _hex(f"{t}.".encode() + body)
    header = ("Stripe-Signature", f"t={t},v1={'0' * 64},v1={good},v0=ignored")
    verify_hmac(spec, SECRET, inbound(body, header), None, NOW)
    # Outside the window (300 s by default), either way: signed, but not now.
    for skew in (-301, 301):
        old = int(NOW) + skew
        signed = ("Stripe-Signature", f"t={old},v1={_hex(f'{old}.'.encode() + body)}")
        assert reason(verify_hmac, spec, SECRET, inbound(body, signed), None, NOW) == "timestamp"
    # The timestamp is signed: changing it breaks the signature.
    moved = ("Stripe-Signature", f"t={t + 1},v1={good}")
    assert reason(verify_hmac, spec, SECRET, inbound(body, moved), None, NOW) == "signature"
    for text in (f"v1={good}", f"t=abc,v1={good}", f"t={t},t={t},v1={good}"):
        assert reason(verify_hmac, spec, SECRET, inbound(body, ("Stripe-Signature", text)),
                      None, NOW) == "timestamp"


def test_slack_and_standard_webhooks_sign_a_timestamp_and_a_delivery() -> None:
    slack = hook({"hmac": {"secret_env": "X", "header": "X-Slack-Signature",
                           "format": "v0={hex}", "timestamp_header": "X-Slack-Request-Timestamp",
                           "signed_payload": "v0:{timestamp}:{body}"}}).auth.hmac
    assert slack is not None
    body = b"token=x&command=/deploy"
    t = str(int(NOW))
    verify_hmac(slack, SECRET, inbound(body, ("X-Slack-Signature", "v0=" + _hex(
        f"v0:{t}:".encode() + body)), ("X-Slack-Request-Timestamp", t)), None, NOW)
    standard_hook = hook({"hmac": {"secret_env": "X", "header": "webhook-signature",
                                   "format": "v1,{base64}", "timestamp_header": "webhook-timestamp",
                                   "signed_payload": "{delivery}.{timestamp}.{body}",
                                   "algorithm": "sha256"}}, delivery_header="webhook-id")
    standard = standard_hook.auth.hmac
    assert standard is not None
    signature = base64.b64encode(hmac.new(SECRET, f"msg_1.{t}.".encode() + body,
                                          hashlib.sha256).digest()).decode()
    request = inbound(body, ("webhook-id", "msg_1"), ("webhook-timestamp", t),
                      ("webhook-signature", f"v1,{'A' * 44} v1,{signature}"))
    delivery = delivery_of(standard_hook, request)
    assert delivery == "msg_1"
    verify_hmac(standard, SECRET, request, delivery, NOW)
    # The delivery id is signed: another id is another signature.
    assert reason(verify_hmac, standard, SECRET, request, "msg_2", NOW) == "signature"


def test_sha512_and_sha1() -> None:
    for algorithm, digest in (("sha512", hashlib.sha512), ("sha1", hashlib.sha1)):
        spec = hook({"hmac": {"secret_env": "X", "header": "X-Sig", "algorithm": algorithm,
                              "format": "hex"}}).auth.hmac
        assert spec is not None
        verify_hmac(spec, SECRET, inbound(b"x", ("X-Sig", _hex(b"x", digest))), None, NOW)


def test_a_shared_token() -> None:
    spec = hook({"token": {"secret_env": "X"}}).auth.token
    assert spec is not None
    verify_token(spec, SECRET, inbound(b"", ("X-Gitlab-Token", SECRET.decode())))
    for headers in ([("X-Gitlab-Token", SECRET.decode()[:-1] + "X")], [],
                    [("X-Gitlab-Token", "é" * 3)], [("X-Gitlab-Token", "☃")]):
        assert reason(verify_token, spec, SECRET, inbound(b"", *headers)) == "token"


@pytest.mark.parametrize(("networks", "peer", "allowed"), [
    ([], None, True),
    (["127.0.0.0/8"], "127.0.0.1", True),
    (["10.0.0.0/8"], "127.0.0.1", False),
    (["10.0.0.0/8"], "::ffff:10.1.2.3", True),  # an IPv4 peer of a dual-stack socket
    (["::1"], "::1", True),
    (["::1"], "127.0.0.1", False),
    (["fe80::/10"], "fe80::1%eth0", True),
    (["10.0.0.0/8"], "not-an-address", False),
    (["10.0.0.0/8"], None, False),
])
def test_the_peer_address(networks: list[str], peer: str | None, allowed: bool) -> None:
    spec = hook({"allow_ips": networks} if networks else {"bearer": True})
    if allowed:
        check_peer(spec.auth.allow_ips, peer)
    else:
        assert reason(check_peer, spec.auth.allow_ips, peer) == "ip"


def test_delivery_ids() -> None:
    auto = hook({"bearer": True})
    assert delivery_of(auto, inbound(b"")) is None
    assert delivery_of(auto, inbound(b"", ("X-Gitlab-Event-UUID", "u-1"))) == "u-1"
    assert delivery_of(auto, inbound(b"", ("X-GitHub-Delivery", " g-1 "))) == "g-1"
    for bad in ("has space", "x" * 129, "naïve"):
        assert reason(delivery_of, auto, inbound(b"", ("X-GitHub-Delivery", bad))) == "request"
    explicit = hook({"bearer": True}, delivery_header="X-Delivery")
    assert reason(delivery_of, explicit, inbound(b"", ("X-GitHub-Delivery", "g"))) == "request"
    assert delivery_of(explicit, inbound(b"", ("x-delivery", "d"))) == "d"


def test_arguments_from_the_body_query_headers_and_constants() -> None:
    spec = parse_hook({"name": "h", "job": "j", "auth": {"bearer": True}, "args": {
        "ref": {"body": "/ref"}, "who": {"body": "pusher.name"},
        "first": {"body": "/commits/0/id"}, "slash": {"body": "/a~1b/~0c"},
        "event": {"header": "X-GitHub-Event"}, "env": {"query": "env"},
        "loud": {"value": True}, "absent": {"body": "/nope/deeper"},
        "nothere": {"query": "missing"}, "index": {"body": "/commits/01"}}}, base=BASE)
    body = json.dumps({"ref": "refs/heads/main", "pusher": {"name": "Avery"},
                       "commits": [{"id": "c1"}], "a/b": {"~c": 5}}).encode()
    args = map_args(spec, inbound(body, ("X-GitHub-Event", "push"), query={"env": "prod"}))
    assert args == {"ref": "refs/heads/main", "who": "Avery", "first": "c1", "slash": 5,
                    "event": "push", "env": "prod", "loud": True}


@pytest.mark.parametrize(("body", "content_type", "words"), [
    (b"", "application/json", "empty"),
    (b"\xff\xfe{}", "application/json", "not UTF-8"),
    (b'{"a": ', "application/json", "not valid JSON"),
    (b"[" * 100_000, "application/json", "not valid JSON"),
    (b'{"n": ' + b"1" * 5000 + b"}", "application/json", "not valid JSON"),
    (b"payload=%7B%22a%22", "application/x-www-form-urlencoded", "form with a 'payload'"),
])
def test_a_body_that_cannot_be_read_is_a_clear_refusal(body: bytes, content_type: str,
                                                      words: str) -> None:
    spec = parse_hook({"name": "h", "job": "j", "auth": {"bearer": True},
                       "args": {"a": {"body": "/a"}}}, base=BASE)
    with pytest.raises(Rejected) as info:
        map_args(spec, inbound(body, ("Content-Type", content_type)))
    assert info.value.reason == "request" and words in info.value.detail
    assert body[:20].decode("latin-1") not in info.value.detail or not body


def test_a_github_form_delivery_and_json_sent_as_a_form() -> None:
    spec = parse_hook({"name": "h", "job": "j", "auth": {"bearer": True},
                       "args": {"a": {"body": "/a"}}}, base=BASE)
    form = ("Content-Type", "application/x-www-form-urlencoded")
    assert map_args(spec, inbound(b"payload=%7B%22a%22%3A1%7D", form)) == {"a": 1}
    assert map_args(spec, inbound(b'{"a": 2}', form)) == {"a": 2}  # curl --data


def test_a_body_is_not_parsed_when_no_argument_needs_it() -> None:
    spec = parse_hook({"name": "h", "job": "j", "auth": {"bearer": True},
                       "args": {"a": {"value": 1}}}, base=BASE)
    assert map_args(spec, inbound(b"\xff not json")) == {"a": 1}


def test_every_refusal_is_a_known_metric_outcome_and_hides_auth_failures() -> None:
    assert {"accepted", "unknown", *REFUSALS} == set(HOOK_OUTCOMES)
    publics = {REFUSALS[name].public for name in ("signature", "timestamp", "token")}
    assert len(publics) == 1 and all(REFUSALS[name].status == 401
                                     for name in ("signature", "timestamp", "token"))
    forged = Rejected("signature", "the X-Hub-Signature-256 signature does not match")
    assert "X-Hub" not in forged.public_detail
    with pytest.raises(ValueError):
        Rejected("nonsense", "x")


def test_the_journal_budget_counts_what_it_leaves_out() -> None:
    budget = RejectionBudget(per_minute=3)
    assert [budget.take("h", 0.0) for _ in range(5)] == [0, 0, 0, None, None]
    assert budget.take("other", 1.0) == 0  # per hook
    assert budget.take("h", 59.9) is None
    # The next window journals again, saying how many were left out.
    assert budget.take("h", 60.0) == 3
    assert budget.take("h", 60.5) == 0
    # A clock that goes back starts a new window rather than never journaling again.
    assert budget.take("h", 10.0) == 0


def test_read_secret_from_a_file_or_the_environment(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"s3cr3t\r\n")
    spec = hook({"hmac": {"secret_file": str(path)}}).auth.hmac
    assert spec is not None and read_secret(spec.secret) == b"s3cr3t"
    monkeypatch.setenv("FLWD_TEST_SECRET", "from-env")
    env = hook({"hmac": {"secret_env": "FLWD_TEST_SECRET"}}).auth.hmac
    assert env is not None and read_secret(env.secret) == b"from-env"
    for bad in (tmp_path / "missing", tmp_path):
        ref = hook({"hmac": {"secret_file": str(bad)}}).auth.hmac
        assert ref is not None and reason(read_secret, ref.secret) == "unavailable"
    path.write_bytes(b"\n")
    assert reason(read_secret, spec.secret) == "unavailable"


def test_a_standard_webhooks_secret_is_base64_after_its_prefix(tmp_path: Path) -> None:
    key = bytes(range(250, 256)) + b"\n\r"  # a key may end in any byte
    path = tmp_path / "whsec"
    path.write_text("whsec_" + base64.b64encode(key).decode() + "\n")
    spec = hook({"hmac": {"secret_file": str(path), "secret_encoding": "base64",
                          "header": "webhook-signature", "format": "v1,{base64}"}}).auth.hmac
    assert spec is not None and read_secret(spec.secret) == key
    signature = base64.b64encode(hmac.new(key, b"{}", hashlib.sha256).digest()).decode()
    verify_hmac(spec, read_secret(spec.secret),
                inbound(b"{}", ("webhook-signature", f"v1,{signature}")), None, NOW)
    path.write_text("whsec_not base64!")
    assert reason(read_secret, spec.secret) == "unavailable"
    from flwd.hooks import secret_problem

    problem = secret_problem(spec.secret)
    assert problem is not None and "not base64" in problem
