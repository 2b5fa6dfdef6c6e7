"""Argument text that cannot reach a process or the journal is refused at the edge (issue 11
item 1): a NUL, a lone UTF-16 surrogate (JSON), bytes that are not UTF-8 (argv, decoded by
Python with ``surrogateescape``). Sans-IO: the binding itself."""

from __future__ import annotations

import json

import pytest

from flwd.errors import ArgsInvalid
from flwd.jobs import Arg, bind_cli_tokens, bind_json
from flwd.jobs._text import printable, text_problem, value_problem

ARGS = [
    Arg(name="name", required=True),
    Arg(name="tags", type="array"),
    Arg(name="meta", type="object"),
    Arg(name="count", type="integer"),
    Arg(name="api_key", secret=True),
]


def refused(call) -> ArgsInvalid:
    with pytest.raises(ArgsInvalid) as info:
        call()
    assert info.value.problem.status == 422 and info.value.problem.exit_status == 2
    return info.value


@pytest.mark.parametrize(("args", "arg", "message"), [
    ({"name": "x\udc80y"}, "name", "contains a lone UTF-16 surrogate (U+DC80)"),
    ({"name": "x\x00y"}, "name", "contains a NUL character (U+0000)"),
    ({"name": "x", "tags": ["a", "b\ud800"]}, "tags", "item 2: contains a lone UTF-16 surrogate"),
    ({"name": "x", "meta": {"k\udfff": "v"}}, "meta", "a key contains a lone UTF-16 surrogate"),
    ({"name": "x", "meta": {"k": "v\x00"}}, "meta", "value of 'k': contains a NUL"),
    # Whatever the type: the text is refused before it is looked at as a number.
    ({"name": "x", "count": "1\udc80"}, "count", "contains a lone UTF-16 surrogate"),
    ({"name": "x", "tags": [[{"deep": "\udc80"}]]}, "tags",
     "item 1: item 1: value of 'deep': contains a lone"),
])
def test_json_text_that_is_not_text_is_refused_naming_the_argument(
        args: dict, arg: str, message: str) -> None:
    error = refused(lambda: bind_json(ARGS, args, job_id="demo"))
    assert error.errors[0]["arg"] == arg
    assert error.errors[0]["message"].startswith(message)
    # The problem itself is valid text: it encodes as UTF-8 JSON.
    json.dumps({"detail": error.detail, "errors": error.errors}, ensure_ascii=False).encode()


def test_a_secret_is_refused_without_showing_any_of_it() -> None:
    error = refused(lambda: bind_json(ARGS, {"name": "x", "api_key": "hunter\udc802"}, job_id="j"))
    assert error.errors == [{"arg": "api_key",
                             "message": "contains a lone UTF-16 surrogate, which is not text"}]
    cli = refused(lambda: bind_cli_tokens(ARGS, ["--name", "x", "--api_key", "s\udce9cret"],
                                          job_id="j"))
    assert cli.errors == [{"arg": "api_key",
                           "message": "is not valid UTF-8; pass the text in UTF-8"}]


def test_an_argument_name_that_is_not_text_is_named_with_escapes() -> None:
    error = refused(lambda: bind_json(ARGS, {"name": "x", "n\udc80": 1}, job_id="demo"))
    assert error.errors[0] == {
        "arg": "n\\udc80",
        "message": "argument name contains a lone UTF-16 surrogate (U+DC80), which is not text"}


@pytest.mark.parametrize(("tokens", "line"), [
    # flwd demo --name $'caf\xe9' (Python decodes argv with surrogateescape)
    (["--name", "caf\udce9"], "--name: is not valid UTF-8 (byte 0xE9); pass the text in UTF-8"),
    (["--name=caf\udce9"], "--name: is not valid UTF-8 (byte 0xE9)"),
    (["--name", "x", "--tags", "a", "--tags", "\udcff"], "--tags: item 2: is not valid UTF-8"),
    (["--name", "x", "--meta", "k=v\udc80"], "--meta: value of 'k': is not valid UTF-8"),
    (["--name", "x", "--meta", "k\udc80=v"], "--meta: a key is not valid UTF-8"),
    (["--nam\udce9", "x"], "--nam\\xe9: flag is not valid UTF-8 (byte 0xE9)"),
    (["--name", "x", "st\udce9y"], "unexpected argument 'st\\xe9y'"),
])
def test_argv_that_is_not_utf8_is_one_line_naming_the_flag(tokens: list[str], line: str) -> None:
    error = refused(lambda: bind_cli_tokens(ARGS, tokens, job_id="demo"))
    assert error.detail.split(": ", 1)[1].startswith(line), error.detail
    assert "\n" not in error.one_line()
    error.one_line().encode()  # printable on any UTF-8 terminal, strict


def test_good_text_passes_untouched() -> None:
    text = "naïve — 東京 🙂 tab\there"
    assert text_problem(text) is None and value_problem({"k": [text]}) is None
    assert printable(text) == text
    binding = bind_json(ARGS, {"name": text, "tags": [text], "meta": {text: text}}, job_id="j")
    assert binding.values["name"] == text
    assert bind_cli_tokens(ARGS, ["--name", text], job_id="j").values["name"] == text


def test_printable_shows_bytes_for_argv_and_code_points_for_json() -> None:
    assert printable("caf\udce9", argv=True) == "caf\\xe9"
    assert printable("caf\udce9") == "caf\\udce9"
    assert printable("a\x00b") == "a\\x00b"
    assert printable("\ud800", argv=True) == "\\ud800"  # no byte stands behind it
