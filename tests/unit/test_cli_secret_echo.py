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


def test_a_value_after_a_flag_close_to_a_plain_one_is_still_shown() -> None:
    # "--nme alice": alice is surely the name, no secret; saying so helps.
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens(ARGS, ["--nme", "alice"])
    assert [error["arg"] for error in info.value.errors] == ["nme", "alice"]


def test_without_secret_arguments_nothing_is_hidden() -> None:
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens([Arg(name="name", type="string")], ["--tok", "stray", "--name", "-x"])
    assert [error["message"] for error in info.value.errors] == [
        "unknown flag", "unexpected argument 'stray'",
        "needs a value (write --name=-x for a value starting with '-')"]
