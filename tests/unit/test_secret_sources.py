"""Where a secret's value comes from, sans-IO (issue 12, item 1): ``--NAME-file PATH`` and
``--NAME -`` are parsed into sources, the CLI reads them, the binder checks what was read."""

from __future__ import annotations

import pytest

from flwd.errors import ArgsInvalid
from flwd.jobs import (
    Arg,
    JobFlags,
    SecretSource,
    bind_cli_tokens,
    bind_job_flags,
    flag_help,
    parse_job_flags,
)

ARGS = [
    Arg(name="api_key", type="string", format="secret", required=True, min_length=4),
    Arg(name="other_key", type="string", secret=True),
    Arg(name="name", type="string"),
]


def parsed(*tokens: str) -> JobFlags:
    return parse_job_flags(ARGS, list(tokens), job_id="job")


def problems(*tokens: str) -> list[str]:
    with pytest.raises(ArgsInvalid) as info:
        parse_job_flags(ARGS, list(tokens), job_id="job")
    return [f"{error['arg']}: {error['message']}" for error in info.value.errors]


@pytest.mark.parametrize("tokens", [
    ("--api_key-file", "k.txt"), ("--api-key-file", "k.txt"), ("--api_key-file=k.txt",),
    ("--api-key-file=k.txt",),
])
def test_the_file_form_in_every_spelling(tokens: tuple[str, ...]) -> None:
    flags = parsed(*tokens)
    assert flags.sources == {"api_key": SecretSource("api_key", "k.txt")}
    assert flags.raw == {} and flags.in_argv == ()


@pytest.mark.parametrize("tokens", [
    ("--api_key", "-"), ("--api_key=-",), ("--api-key", "-"), ("--api_key-file", "-"),
    ("--api_key-file=-",),
])
def test_the_stdin_form(tokens: tuple[str, ...]) -> None:
    assert parsed(*tokens).sources == {"api_key": SecretSource("api_key", None)}


def test_a_typed_secret_is_a_value_and_is_reported_as_in_argv() -> None:
    flags = parsed("--api_key", "abcd", "--other_key=", "--name", "-")
    assert flags.raw == {"api_key": ["abcd"], "other_key": [""], "name": ["-"]}
    assert flags.in_argv == ("api_key",)  # an empty value shows nothing
    assert flags.sources == {}  # '-' is stdin only for a secret


def test_problems_of_the_forms() -> None:
    assert problems("--api_key-file") == ["api_key-file: needs a file path"]
    assert problems("--api_key-file=") == ["api_key-file: needs a file path"]
    assert problems("--api_key-file", "a", "--api_key", "b") == [
        "api_key: given more than once"]
    assert problems("--api_key", "b", "--api-key-file", "a") == [
        "api_key: given more than once"]
    assert problems("--api_key", "-", "--other_key", "-") == [
        "other_key (stdin): standard input is read by --api_key - already; pass "
        "--other_key-file PATH"]
    assert problems("--api_key-fil", "x") == [
        "api_key-fil: unknown flag (did you mean '--api_key-file'?)",
        "api_key: required; pass --api_key-file PATH or --api_key - (stdin)"]
    with pytest.raises(ArgsInvalid) as info:
        parse_job_flags(ARGS, ["--api_key", "-", "--other_key", "-"], job_id="job")
    assert info.value.detail == (
        "invalid arguments for job job: --other_key -: standard input is read by "
        "--api_key - already; pass --other_key-file PATH")


def test_a_flag_problem_does_not_count_a_secret_from_a_file_as_missing() -> None:
    assert problems("--api_key-file", "k", "--bogus", "1") == [
        "bogus: unknown flag"]
    assert problems("--bogus", "1") == [
        "bogus: unknown flag",
        "api_key: required; pass --api_key-file PATH or --api_key - (stdin)"]


def test_a_real_argument_named_like_the_file_form_wins() -> None:
    args = [Arg(name="token_x", type="string", secret=True),
            Arg(name="token_x-file", type="string")]
    for spelling in ("--token_x-file", "--token-x-file"):
        flags = parse_job_flags(args, [spelling, "a"], job_id="j")
        assert flags.raw == {"token_x-file": ["a"]} and flags.sources == {}


def test_unanswered_are_the_required_secrets_given_nothing() -> None:
    assert [arg.name for arg in parsed().unanswered(ARGS)] == ["api_key"]
    assert parsed("--api_key-file", "k").unanswered(ARGS) == []
    assert parsed("--api_key", "abcd").unanswered(ARGS) == []


def test_what_was_read_is_bound_like_a_typed_value() -> None:
    flags = parsed("--api_key-file", "k", "--other_key", "-", "--name", "x")
    binding = bind_job_flags(ARGS, flags, {"api_key": "abcdef", "other_key": ""}, job_id="j")
    assert binding.secrets == {"api_key": "abcdef"}
    assert binding.redacted() == {"api_key": "[secret]", "other_key": "[secret]", "name": "x"}


def test_problems_with_what_was_read_name_the_source_never_the_value() -> None:
    flags = parsed("--api_key-file", "k", "--other_key", "-")
    with pytest.raises(ArgsInvalid) as info:
        bind_job_flags(ARGS, flags, {"api_key": "ab", "other_key": "caf\udce9"}, job_id="j")
    assert info.value.errors == [
        {"arg": "api_key-file", "message": "must be at least 4 characters long"},
        {"arg": "other_key (stdin)", "message": "is not valid UTF-8; pass the text in UTF-8"}]
    assert "ab" not in info.value.detail.replace("api_key", "")
    with pytest.raises(ArgsInvalid) as info:
        bind_job_flags(ARGS, flags, {"other_key": "x"}, job_id="j",
                       unreadable={"api_key": "no such file 'k'"})
    assert info.value.errors == [{"arg": "api_key-file", "message": "no such file 'k'"}]


def test_leave_out_binds_the_rest_first() -> None:
    flags = parsed("--name", "x")
    binding = bind_job_flags(ARGS, flags, {}, job_id="j", leave_out={"api_key"})
    assert binding.values == {"name": "x"}
    with pytest.raises(ArgsInvalid):
        bind_job_flags(ARGS, flags, {}, job_id="j")


def test_bind_cli_tokens_does_no_io() -> None:
    with pytest.raises(ArgsInvalid) as info:
        bind_cli_tokens(ARGS, ["--api_key-file", "k"], job_id="j")
    assert info.value.errors == [
        {"arg": "api_key-file",
         "message": "was not read (only the flwd command line reads secret sources)"}]


def test_help_shows_the_forms_after_the_secret() -> None:
    assert flag_help(ARGS) == [
        ("--api_key VALUE", "string, required, secret, length 4.."),
        ("--api_key-file PATH", "--api_key read from the file PATH"),
        ("--api_key -", "--api_key read from standard input"),
        ("--other_key VALUE", "string, secret"),
        ("--other_key-file PATH", "--other_key read from the file PATH"),
        ("--other_key -", "--other_key read from standard input"),
        ("--name NAME", "string"),
    ]
