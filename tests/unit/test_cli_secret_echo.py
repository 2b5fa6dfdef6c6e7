"""A secret typed on the command line is never echoed by an error about the flags around it."""

from __future__ import annotations

import pytest

from flwd.errors import ArgsInvalid
from flwd.jobs import Arg, parse_cli_tokens

SECRET = "Echo-Secret-8f2a"
ARGS = [Arg(name="name", type="string"), Arg(name="api_token", type="string", format="secret")]


@pytest.mark.parametrize("tokens", [
    ["--api-tokn", SECRET],           # a mistyped secret flag
    ["--api_tokenn", SECRET, "--name", "x"],
    ["--tok", SECRET],                # close to no flag at all
    ["-api_token", SECRET],           # one dash
    ["--api_token", "-" + SECRET],    # a secret starting with '-'
])
def test_no_error_quotes_a_secret(tokens: list[str]) -> None:
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens(ARGS, tokens, job_id="deploy")
    problem = info.value
    shown = " ".join([problem.one_line(), problem.hint or "", str(problem.errors)])
    assert SECRET not in shown
    assert len(problem.errors) == 1  # the flag is reported, its value is not


def test_the_value_after_any_unknown_flag_is_its_value_and_never_shown() -> None:
    # Jobs take no positional arguments: "--nme alice" is one problem (issue 12 item 5),
    # and the value is not echoed whatever the flag was meant to be.
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens(ARGS, ["--nme", "alice"])
    assert [error["arg"] for error in info.value.errors] == ["nme"]
    assert "alice" not in str(info.value.errors)


def test_without_secret_arguments_the_same_rule_holds() -> None:
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens([Arg(name="name", type="string")], ["--tok", "stray", "--name", "-x"])
    assert [error["message"] for error in info.value.errors] == [
        "unknown flag",
        "needs a value (write --name=-x for a value starting with '-')"]
