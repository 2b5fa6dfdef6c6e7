"""Security profiles (precedence, names) and the override decision table (reference §11.3)."""

from __future__ import annotations

import pytest

from flwd.errors import PolicyDenied, ProfileInvalid
from flwd.policy import (
    DEFAULT_PROFILE,
    PROFILES,
    Decision,
    Evaluation,
    IsolationRequest,
    OverrideAllowances,
    Profile,
    evaluate_overrides,
    parse_profile,
    resolve_profile,
)

# -- profiles -------------------------------------------------------------------------


def test_default_profile_is_secure():
    assert DEFAULT_PROFILE == "secure"
    assert PROFILES == ("secure", "permissive", "disabled")
    assert resolve_profile() == "secure"
    assert resolve_profile(requested="", environment="", configured="") == "secure"


@pytest.mark.parametrize(
    ("requested", "environment", "configured", "expected"),
    [
        ("disabled", "permissive", "secure", "disabled"),
        (None, "permissive", "disabled", "permissive"),
        (None, None, "disabled", "disabled"),
        ("", "disabled", None, "disabled"),
        (None, "", "permissive", "permissive"),
    ],
)
def test_resolve_profile_precedence(requested, environment, configured, expected):
    assert resolve_profile(requested=requested, environment=environment,
                           configured=configured) == expected


@pytest.mark.parametrize("raw", ["SECURE", " Permissive ", "disabled\n"])
def test_profile_names_are_trimmed_and_case_insensitive(raw):
    assert parse_profile(raw, origin="test") == raw.strip().lower()


@pytest.mark.parametrize(
    ("kwargs", "origin"),
    [
        ({"requested": "strict"}, "the request"),
        ({"environment": "paranoid", "configured": "secure"}, "FLWD_PROFILE"),
        ({"configured": "none"}, "--profile"),
        ({"requested": "  "}, "the request"),
    ],
)
def test_invalid_profile_names_the_origin(kwargs, origin):
    with pytest.raises(ProfileInvalid) as info:
        resolve_profile(**kwargs)
    error = info.value
    assert origin in error.detail
    assert "secure, permissive, disabled" in (error.hint or "")
    assert error.errors and error.errors[0]["arg"] == "profile"
    assert error.problem.code == "E_POLICY"


def test_an_invalid_higher_source_is_not_masked_by_a_valid_lower_one():
    with pytest.raises(ProfileInvalid):
        resolve_profile(requested="bogus", environment="secure", configured="secure")


# -- the override table -------------------------------------------------------------

NONE = OverrideAllowances()
ALL = OverrideAllowances(network=("bridge", "HOST"), rootfs_writable=True,
                         caps=("net_admin", "SYS_TIME"), env_inheritance=True)

NET = IsolationRequest(network="Bridge")
ROOTFS = IsolationRequest(rootfs_writable=True)
CAPS = IsolationRequest(capabilities=("net_admin", " sys_time "))
ENV = IsolationRequest(env_inheritance=True)

ALLOWED = "policy.override.allowed"
DENIED = "policy.denied"

# (profile, request, allowances) → (subject, decision, code, reason, level)
TABLE = [
    # network
    ("secure", NET, ALL, "container.network", "denied", DENIED,
     'network override "bridge" not permitted in secure profile', "info"),
    ("permissive", NET, ALL, "container.network", "allowed", ALLOWED,
     'network override "bridge" allowed by policy', "info"),
    ("permissive", NET, NONE, "container.network", "denied", DENIED,
     'network override "bridge" not allowed by policy', "info"),
    ("disabled", NET, NONE, "container.network", "allowed", ALLOWED,
     'network override "bridge" allowed (profile disabled)', "warning"),
    # rootfs
    ("secure", ROOTFS, ALL, "container.rootfs", "denied", DENIED,
     "writable rootfs not permitted in secure profile", "info"),
    ("permissive", ROOTFS, ALL, "container.rootfs", "allowed", ALLOWED,
     "writable rootfs allowed by policy", "info"),
    ("permissive", ROOTFS, NONE, "container.rootfs", "denied", DENIED,
     "writable rootfs not allowed by policy", "info"),
    ("disabled", ROOTFS, NONE, "container.rootfs", "allowed", ALLOWED,
     "writable rootfs allowed (profile disabled)", "warning"),
    # capabilities
    ("secure", CAPS, ALL, "container.capabilities", "denied", DENIED,
     "adding capabilities not permitted in secure profile", "info"),
    ("permissive", CAPS, ALL, "container.capabilities", "allowed", ALLOWED,
     "capabilities [NET_ADMIN SYS_TIME] allowed by policy", "info"),
    ("permissive", CAPS, NONE, "container.capabilities", "denied", DENIED,
     "policy does not allow adding capabilities", "info"),
    ("permissive", CAPS, OverrideAllowances(caps=("NET_ADMIN",)), "container.capabilities",
     "denied", DENIED, 'capability "SYS_TIME" not allowed by policy', "info"),
    ("disabled", CAPS, NONE, "container.capabilities", "allowed", ALLOWED,
     "capabilities [NET_ADMIN SYS_TIME] allowed (profile disabled)", "warning"),
    # environment inheritance
    ("secure", ENV, ALL, "env.inheritance", "denied", DENIED,
     "environment inheritance not permitted in secure profile", "info"),
    ("permissive", ENV, ALL, "env.inheritance", "allowed", ALLOWED,
     "environment inheritance allowed by policy", "info"),
    ("permissive", ENV, NONE, "env.inheritance", "denied", DENIED,
     "environment inheritance not allowed by policy", "info"),
    ("disabled", ENV, NONE, "env.inheritance", "allowed", ALLOWED,
     "environment inheritance allowed (profile disabled)", "warning"),
]


@pytest.mark.parametrize(
    ("profile", "request_", "allow", "subject", "decision", "code", "reason", "level"), TABLE,
    ids=[f"{row[0]}-{row[3]}-{row[4]}-{'allow' if row[2] is not NONE else 'none'}"
         for row in TABLE],
)
def test_override_table(profile, request_, allow, subject, decision, code, reason, level):
    evaluation = evaluate_overrides(profile, allow, request_)
    assert evaluation.decisions == [Decision(subject, decision, code, reason, level)]
    assert evaluation.decisions[0].to_json() == {
        "subject": subject, "decision": decision, "code": code, "reason": reason}
    if decision == "denied":
        assert evaluation.denied == evaluation.decisions[0]
        with pytest.raises(PolicyDenied) as info:
            evaluation.raise_if_denied()
        assert info.value.detail == reason
        assert info.value.extensions["subject"] == subject
        assert info.value.hint
        assert info.value.problem.code == "policy.denied"
    else:
        assert evaluation.denied is None
        evaluation.raise_if_denied()


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("network", [None, "", "none", " NONE "])
def test_nothing_requested_means_no_decisions(profile, network):
    request = IsolationRequest(network=network, capabilities=("", "  "))
    evaluation = evaluate_overrides(profile, ALL, request)
    assert evaluation.decisions == []
    assert evaluation.denied is None
    evaluation.raise_if_denied()


EVERYTHING = IsolationRequest(network="host", rootfs_writable=True, capabilities=("NET_ADMIN",),
                              env_inheritance=True)


def test_secure_stops_at_the_first_denial():
    evaluation = evaluate_overrides("secure", ALL, EVERYTHING)
    assert [d.subject for d in evaluation.decisions] == ["container.network"]


def test_decisions_come_in_table_order_until_a_denial():
    allow = OverrideAllowances(network=("host",), rootfs_writable=True, caps=())
    evaluation = evaluate_overrides("permissive", allow, EVERYTHING)
    assert [(d.subject, d.decision) for d in evaluation.decisions] == [
        ("container.network", "allowed"),
        ("container.rootfs", "allowed"),
        ("container.capabilities", "denied"),
    ]
    with pytest.raises(PolicyDenied, match="policy does not allow adding capabilities"):
        evaluation.raise_if_denied()


def test_permissive_with_everything_allowed_and_disabled_allow_all_four():
    cases: tuple[tuple[Profile, str], ...] = (("permissive", "info"), ("disabled", "warning"))
    for profile, level in cases:
        evaluation = evaluate_overrides(profile, ALL if profile == "permissive" else NONE,
                                        EVERYTHING)
        assert [d.subject for d in evaluation.decisions] == [
            "container.network", "container.rootfs", "container.capabilities",
            "env.inheritance"]
        assert {d.decision for d in evaluation.decisions} == {"allowed"}
        assert {d.level for d in evaluation.decisions} == {level}


def test_network_allowance_is_case_insensitive():
    evaluation = evaluate_overrides("permissive", OverrideAllowances(network=("HOST",)),
                                    IsolationRequest(network="host"))
    assert evaluation.decisions[0].decision == "allowed"


def test_evaluation_denied_finds_the_denial_among_allowed():
    allowed = Decision("a", "allowed", ALLOWED, "ok")
    denied = Decision("b", "denied", DENIED, "no")
    assert Evaluation([allowed, denied]).denied is denied
    assert Evaluation([allowed]).denied is None
