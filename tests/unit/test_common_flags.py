"""flwd's own flags taken out of a job invocation; the rest belongs to the job."""

from __future__ import annotations

import pytest

from flwd.cli._common import CommonFlags, split_common_flags
from flwd.errors import UsageError


def test_no_common_flags_leaves_tokens_alone():
    tokens = ["--name", "alice", "--tags", "a", "--tags=b", "-x", "positional"]
    flags, rest = split_common_flags(tokens)
    assert flags == CommonFlags()
    assert rest == tokens


def test_empty():
    assert split_common_flags([]) == (CommonFlags(), [])


def test_booleans_anywhere_and_order_of_the_rest_is_kept():
    flags, rest = split_common_flags(["--json", "--name", "x", "--detach", "--loud", "--debug"])
    assert flags == CommonFlags(json=True, detach=True, debug=True)
    assert rest == ["--name", "x", "--loud"]


@pytest.mark.parametrize("token", ["--help", "-h"])
def test_help(token):
    flags, rest = split_common_flags(["--name", "x", token])
    assert flags.help is True
    assert rest == ["--name", "x"]


@pytest.mark.parametrize(("value", "expected"),
                         [("true", True), ("TRUE", True), ("yes", True), ("1", True),
                          ("false", False), ("No", False), ("0", False)])
def test_boolean_with_explicit_value(value, expected):
    flags, rest = split_common_flags([f"--json={value}"])
    assert flags.json is expected
    assert rest == []


def test_last_boolean_wins():
    flags, _ = split_common_flags(["--json", "--json=false"])
    assert flags.json is False


@pytest.mark.parametrize("token", ["--json=maybe", "--detach=", "--debug=2", "--help=please"])
def test_boolean_with_a_bad_value(token):
    with pytest.raises(UsageError, match="takes no value") as info:
        split_common_flags([token])
    assert info.value.problem.exit_status == 2


@pytest.mark.parametrize(
    ("tokens", "profile", "rest"),
    [
        (["--profile", "permissive"], "permissive", []),
        (["--profile=disabled", "--x"], "disabled", ["--x"]),
        (["--a", "--profile", "secure", "--b", "1"], "secure", ["--a", "--b", "1"]),
        (["--profile", "bogus"], "bogus", []),  # validated later, with its origin
        (["--profile=a", "--profile", "b"], "b", []),
    ],
)
def test_profile(tokens, profile, rest):
    flags, remaining = split_common_flags(tokens)
    assert flags.profile == profile
    assert remaining == rest


@pytest.mark.parametrize("tokens", [["--profile"], ["--profile", "--json"], ["--profile", "-h"]])
def test_profile_needs_a_value(tokens):
    with pytest.raises(UsageError, match="--profile needs a value") as info:
        split_common_flags(tokens)
    assert "secure|permissive|disabled" in (info.value.hint or "")


def test_similar_names_are_job_flags():
    tokens = ["--json-out", "f", "--profiles", "x", "--jsonx", "-j", "--Help"]
    flags, rest = split_common_flags(tokens)
    assert flags == CommonFlags()
    assert rest == tokens


def test_values_of_job_flags_given_with_equals_are_never_taken():
    flags, rest = split_common_flags(["--title=--json", "--mode=--profile"])
    assert flags == CommonFlags()
    assert rest == ["--title=--json", "--mode=--profile"]


def test_input_is_not_modified():
    tokens = ["--json", "--name", "x"]
    split_common_flags(tokens)
    assert tokens == ["--json", "--name", "x"]


def test_accepts_any_sequence():
    flags, rest = split_common_flags(("--debug", "--x"))
    assert flags.debug is True
    assert rest == ["--x"]
