"""Job arguments: CLI tokens, coercion, validation, binding, redaction, help."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flwd.errors import ArgsInvalid
from flwd.jobs import Arg, Binding, bind_cli, bind_json, flag_help, parse_cli_tokens

DEMO = [
    Arg(name="name", type="string", required=True, description="Name of the person to greet"),
    Arg(name="loud", type="boolean", default=False, description="Print in uppercase"),
    Arg(name="tags", type="array", description="Additional tags to echo"),
    Arg(name="secret_token", type="string", format="secret", description="Secret token"),
    Arg(name="meta", type="object"),
    Arg(name="count", type="integer"),
    Arg(name="ratio", type="number"),
    Arg(name="dry_run", type="boolean"),
]


def cli(tokens: list[str], args: list[Arg] = DEMO) -> Binding:
    return bind_cli(args, parse_cli_tokens(args, tokens, job_id="demo"), job_id="demo")


def cli_errors(tokens: list[str], args: list[Arg] = DEMO) -> list[dict[str, str]]:
    with pytest.raises(ArgsInvalid) as info:
        cli(tokens, args)
    return info.value.errors


def one(arg: Arg, tokens: list[str]) -> Any:
    return cli(tokens, [arg]).values.get(arg.name)


def one_error(arg: Arg, tokens: list[str]) -> str:
    [error] = cli_errors(tokens, [arg])
    assert error["arg"] == arg.name
    return error["message"]


# -- parse_cli_tokens ------------------------------------------------------------------------


def test_flag_forms() -> None:
    raw = parse_cli_tokens(
        DEMO,
        [
            "--name", "alice", "--loud", "--tags", "a", "--tags=b", "--secret-token", "xyz",
            "--meta", "k=v", "--meta=x=y=z", "--count=-3", "--ratio", "-1.5e3", "--no-dry-run",
        ],
    )  # fmt: skip
    assert raw == {
        "name": ["alice"],
        "loud": ["true"],
        "tags": ["a", "b"],
        "secret_token": ["xyz"],
        "meta": ["k=v", "x=y=z"],
        "count": ["-3"],
        "ratio": ["-1.5e3"],
        "dry_run": ["false"],
    }


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["--loud"], ["true"]),
        (["--loud=false"], ["false"]),
        (["--loud=yes"], ["yes"]),
        (["--no-loud"], ["false"]),
        (["--dry_run"], ["true"]),
        (["--dry-run"], ["true"]),
        (["--no-dry_run"], ["false"]),
        (["--no-dry-run"], ["false"]),
    ],
)
def test_boolean_forms(tokens: list[str], expected: list[str]) -> None:
    raw = parse_cli_tokens(DEMO, tokens)
    assert list(raw.values()) == [expected]


def test_values_that_look_like_flags() -> None:
    assert parse_cli_tokens(DEMO, ["--name=-x"]) == {"name": ["-x"]}
    assert parse_cli_tokens(DEMO, ["--name=--weird"]) == {"name": ["--weird"]}
    assert parse_cli_tokens(DEMO, ["--name", "-"]) == {"name": ["-"]}
    assert parse_cli_tokens(DEMO, ["--name="]) == {"name": [""]}
    assert parse_cli_tokens(DEMO, ["--count", "-5", "--ratio", "-.5"]) == {
        "count": ["-5"],
        "ratio": ["-.5"],
    }
    assert parse_cli_tokens(DEMO, ["--tags", "a b", "--tags", "c,d"]) == {"tags": ["a b", "c,d"]}


def test_missing_values() -> None:
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens(DEMO, ["--name"], job_id="demo")
    assert info.value.errors == [{"arg": "name", "message": "needs a value"}]
    assert info.value.detail == "invalid arguments for job demo: --name: needs a value"
    assert info.value.hint == "run 'flwd demo --help' for its flags"
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens(DEMO, ["--name", "--loud"])
    assert info.value.errors == [{"arg": "name", "message": "needs a value"}]
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens(DEMO, ["--name", "-x", "--count", "-x"])
    assert info.value.errors == [
        {"arg": "name", "message": "needs a value (write --name=-x for a value starting with '-')"},
        {
            "arg": "count",
            "message": "needs a value (write --count=-x for a value starting with '-')",
        },
    ]
    assert info.value.hint == "run the job with --help for its flags"


def test_unknown_flags_and_positionals() -> None:
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens(DEMO, ["--nme", "x", "stray", "-v", "--secret", "--", "-", "--zzzzz"])
    # The word after an unknown flag is its value (jobs take no positionals): "x" goes
    # with --nme, and "stray" is the only word that stands alone.
    assert info.value.errors == [
        {"arg": "nme", "message": "unknown flag (did you mean '--name'?)"},
        {"arg": "stray", "message": "unexpected argument 'stray'"},
        {"arg": "v", "message": "unknown flag"},
        {"arg": "secret", "message": "unknown flag (did you mean '--secret_token'?)"},
        {"arg": "--", "message": "unexpected argument '--'"},
        {"arg": "-", "message": "unexpected argument '-'"},
        {"arg": "zzzzz", "message": "unknown flag"},
    ]
    assert info.value.detail == (
        "7 invalid arguments: --nme: unknown flag (did you mean '--name'?) (and 6 more)"
    )


def test_boolean_takes_a_following_boolean_word_only() -> None:
    assert parse_cli_tokens(DEMO, ["--loud", "false"]) == {"loud": ["false"]}
    assert parse_cli_tokens(DEMO, ["--loud", "TRUE", "--name", "x"]) == {
        "loud": ["TRUE"], "name": ["x"]}
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens(DEMO, ["--loud", "maybe"])
    assert info.value.errors == [{"arg": "maybe", "message": "unexpected argument 'maybe'"}]
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens(DEMO, ["--no-loud=true"])
    assert info.value.errors == [{"arg": "no-loud", "message": "takes no value"}]


def test_scalar_flag_twice() -> None:
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens(
            DEMO, ["--name", "a", "--name=b", "--loud", "--no-loud", "--tags", "a", "--tags", "a"]
        )
    assert info.value.errors == [
        {"arg": "name", "message": "given more than once"},
        {"arg": "loud", "message": "given more than once"},
    ]


def test_flags_are_case_sensitive_and_exact() -> None:
    with pytest.raises(ArgsInvalid) as info:
        parse_cli_tokens(DEMO, ["--Name", "x", "--secret-token_x", "y"])
    # Each value goes with its (unknown) flag and is never shown.
    assert [error["arg"] for error in info.value.errors] == ["Name", "secret-token_x"]


def test_no_args_no_tokens() -> None:
    assert parse_cli_tokens([], []) == {}
    with pytest.raises(ArgsInvalid):
        parse_cli_tokens([], ["--x"])


# -- coercion (CLI) --------------------------------------------------------------------------

INTEGER = Arg(name="n", type="integer")
NUMBER = Arg(name="x", type="number")
BOOLEAN = Arg(name="b", type="boolean")


@pytest.mark.parametrize(("text", "value"), [("5", 5), ("+5", 5), ("-5", -5), ("007", 7), ("0", 0)])
def test_integer_coercion(text: str, value: int) -> None:
    assert one(INTEGER, [f"--n={text}"]) == value


@pytest.mark.parametrize("text", ["1.5", "abc", "", "1e3", "0x10", "1_000", " 5", "٣"])
def test_integer_rejects(text: str) -> None:
    assert one_error(INTEGER, [f"--n={text}"]) == f"'{text}' is not an integer"


def test_integer_too_long() -> None:
    assert "too long" in one_error(INTEGER, ["--n=" + "9" * 5000])


@pytest.mark.parametrize(
    ("text", "value"),
    [("1.5", 1.5), ("2", 2), ("-0.25", -0.25), ("1e3", 1000.0), (".5", 0.5), ("+3.", 3.0)],
)
def test_number_coercion(text: str, value: float) -> None:
    result = one(NUMBER, [f"--x={text}"])
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "Infinity", "abc", "1.2.3", ""])
def test_number_rejects(text: str) -> None:
    assert one_error(NUMBER, [f"--x={text}"]) == f"'{text}' is not a number"


def test_number_overflow_is_not_finite() -> None:
    assert one_error(NUMBER, ["--x=1e999"]) == "'1e999' is not a finite number"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True), ("TRUE", True), ("yes", True), ("1", True), ("on", True), ("On", True),
        ("false", False), ("False", False), ("no", False), ("0", False), ("off", False),
    ],
)  # fmt: skip
def test_boolean_coercion(text: str, value: bool) -> None:
    assert one(BOOLEAN, [f"--b={text}"]) is value


def test_boolean_rejects() -> None:
    assert one_error(BOOLEAN, ["--b=maybe"]) == (
        "'maybe' is not a boolean (true/false, yes/no, 1/0, on/off)"
    )


def test_array_items_are_coerced() -> None:
    ports = Arg(name="ports", type="array", items_type="integer")
    assert one(ports, ["--ports", "80", "--ports", "443"]) == [80, 443]
    assert one_error(ports, ["--ports", "80", "--ports", "x", "--ports=1.5"]) == (
        "item 'x' is not an integer; item '1.5' is not an integer"
    )
    flags = Arg(name="flags", type="array", items_type="boolean")
    assert one(flags, ["--flags=yes", "--flags=off"]) == [True, False]


def test_object_pairs() -> None:
    meta = Arg(name="meta", type="object")
    assert one(meta, ["--meta", "a=1", "--meta", "b=x=y", "--meta", "c="]) == {
        "a": "1",
        "b": "x=y",
        "c": "",
    }
    assert one_error(meta, ["--meta", "novalue", "--meta", "=v", "--meta", " =v"]) == (
        "'novalue' is not KEY=VALUE; '=v' has an empty key; ' =v' has an empty key"
    )
    assert one_error(meta, ["--meta", "a=1", "--meta", "a=2"]) == "key 'a' given more than once"
    numbers = Arg(name="limits", type="object", value_type="integer")
    assert one(numbers, ["--limits", "cpu=2"]) == {"cpu": 2}
    assert one_error(numbers, ["--limits", "cpu=two"]) == "value of 'cpu': 'two' is not an integer"


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        (Arg(name="s", required=True), "required; pass --s VALUE"),
        (Arg(name="b", type="boolean", required=True), "required; pass --b or --no-b"),
        (
            Arg(name="dry_run", type="boolean", required=True),
            "required; pass --dry_run or --no-dry_run",
        ),
        (Arg(name="t", type="array", required=True), "required; pass --t VALUE (repeatable)"),
        (Arg(name="m", type="object", required=True), "required; pass --m KEY=VALUE"),
    ],
)
def test_required_messages(arg: Arg, message: str) -> None:
    assert one_error(arg, []) == message


def test_required_empty_string() -> None:
    assert one_error(Arg(name="s", required=True), ["--s="]) == "required; must not be empty"


def test_required_satisfied_by_default() -> None:
    assert one(Arg(name="s", required=True, default="x"), []) == "x"


@pytest.mark.parametrize(
    ("arg", "tokens", "message"),
    [
        (Arg(name="l", enum=["debug", "info"]), ["--l=warn"], "'warn' is not one of: debug, info"),
        (Arg(name="l", type="integer", enum=[1, 2]), ["--l=3"], "3 is not one of: 1, 2"),
        (
            Arg(name="t", type="array", items_enum=["a", "b"]),
            ["--t=a", "--t=c"],
            "item 'c' is not one of: a, b",
        ),
        (Arg(name="n", type="integer", minimum=1), ["--n=0"], "must be at least 1 (got 0)"),
        (Arg(name="n", type="number", maximum=1.5), ["--n=2"], "must be at most 1.5 (got 2)"),
        (Arg(name="s", min_length=3), ["--s=ab"], "must be at least 3 characters long (got 2)"),
        (Arg(name="s", max_length=2), ["--s=abc"], "must be at most 2 characters long (got 3)"),
        (Arg(name="s", pattern="[a-z]+"), ["--s=abc1"], "'abc1' does not match pattern '[a-z]+'"),
        (Arg(name="s", pattern="b"), ["--s=abc"], "'abc' does not match pattern 'b'"),
    ],
)
def test_constraints(arg: Arg, tokens: list[str], message: str) -> None:
    assert one_error(arg, tokens) == message


def test_constraints_that_pass() -> None:
    assert one(Arg(name="s", pattern="[a-z]+", min_length=1, max_length=3), ["--s=abc"]) == "abc"
    assert one(Arg(name="n", type="integer", minimum=1, maximum=3, enum=[1, 3]), ["--n=3"]) == 3
    assert one(Arg(name="l", enum=["debug", "info"]), ["--l", "info"]) == "info"


def test_several_problems_on_one_argument() -> None:
    errors = cli_errors(["--s=A"], [Arg(name="s", min_length=2, pattern="[a-z]+")])
    assert errors == [
        {"arg": "s", "message": "must be at least 2 characters long (got 1)"},
        {"arg": "s", "message": "'A' does not match pattern '[a-z]+'"},
    ]


def test_all_failing_arguments_at_once() -> None:
    args = [
        Arg(name="name", required=True),
        Arg(name="count", type="integer", maximum=3),
        Arg(name="level", enum=["a", "b"]),
        Arg(name="ok"),
    ]
    with pytest.raises(ArgsInvalid) as info:
        cli(["--count=9", "--level=c", "--ok=fine"], args)
    assert info.value.errors == [
        {"arg": "name", "message": "required; pass --name VALUE"},
        {"arg": "count", "message": "must be at most 3 (got 9)"},
        {"arg": "level", "message": "'c' is not one of: a, b"},
    ]
    assert info.value.detail == (
        "3 invalid arguments for job demo: --name: required; pass --name VALUE (and 2 more)"
    )
    with pytest.raises(ArgsInvalid) as info:
        cli(["--count=1"], args)
    assert (
        info.value.detail == "invalid arguments for job demo: --name: required; pass --name VALUE"
    )


def test_bind_cli_refuses_unknown_raw_names() -> None:
    with pytest.raises(ArgsInvalid) as info:
        bind_cli(DEMO, {"nmae": ["x"], "name": ["a"]}, job_id="demo")
    assert info.value.errors == [
        {"arg": "nmae", "message": "unknown argument; did you mean 'name'?"}
    ]


def test_scalar_given_twice_in_raw() -> None:
    with pytest.raises(ArgsInvalid) as info:
        bind_cli([Arg(name="a")], {"a": ["x", "y"]}, job_id="j")
    assert info.value.errors == [{"arg": "a", "message": "given more than once"}]


# -- defaults and the bound model --------------------------------------------------------------


def test_defaults_and_absent_values() -> None:
    args = [
        Arg(name="s"),
        Arg(name="s_default", default="x"),
        Arg(name="n", type="integer"),
        Arg(name="n_default", type="integer", default=0),
        Arg(name="b", type="boolean"),
        Arg(name="b_default", type="boolean", default=True),
        Arg(name="t", type="array"),
        Arg(name="t_default", type="array", default=["a"]),
        Arg(name="m", type="object"),
        Arg(name="m_default", type="object", default={"k": "v"}),
        Arg(name="secret", format="secret"),
    ]
    binding = cli([], args)
    assert binding.values == {
        "s_default": "x",
        "n_default": 0,
        "b": False,
        "b_default": True,
        "t": [],
        "t_default": ["a"],
        "m": {},
        "m_default": {"k": "v"},
    }
    assert list(binding.values) == [arg.name for arg in args if arg.name in binding.values]
    # The spec's default is never shared with a run.
    binding.values["t_default"].append("mutated")
    assert args[7].default == ["a"]
    assert binding.redacted() == binding.values
    assert "secret" not in binding.redacted()
    assert binding.secrets == {}
    assert binding.secret_values() == []


def test_values_in_spec_order() -> None:
    binding = cli(["--count=2", "--name", "a", "--loud"])
    assert list(binding.values) == ["name", "loud", "tags", "meta", "count", "dry_run"]


# -- secrets -----------------------------------------------------------------------------------


def test_secrets_never_leave_raw() -> None:
    binding = cli(
        [
            "--name",
            "alice",
            "--loud",
            "--tags",
            "a",
            "--tags",
            "b",
            "--secret_token",
            "s3cr3t!",
            "--count",
            "2",
            "--ratio",
            "1e-7",
        ]
    )
    assert binding.values["secret_token"] == "s3cr3t!"
    assert binding.secrets == {"secret_token": "s3cr3t!"}
    assert binding.secret_names == frozenset({"secret_token"})
    assert binding.secret_values() == ["s3cr3t!"]
    assert binding.redacted() == {
        "name": "alice",
        "loud": True,
        "tags": ["a", "b"],
        "secret_token": "[secret]",
        "meta": {},
        "count": 2,
        "ratio": 1e-7,
        "dry_run": False,
    }
    assert binding.args_json() == (
        '{"count":2,"dry_run":false,"loud":true,"meta":{},"name":"alice","ratio":1e-07,'
        '"secret_token":"[secret]","tags":["a","b"]}'
    )
    assert binding.env() == {
        "ARG_NAME": "alice",
        "ARG_LOUD": "true",
        "ARG_COUNT": "2",
        "ARG_RATIO": "0.0000001",
        "ARG_DRY_RUN": "false",
    }
    assert "s3cr3t!" not in binding.args_json()
    assert "s3cr3t!" not in json.dumps(binding.env())
    assert "s3cr3t!" not in json.dumps(binding.redacted())


def test_empty_secret_is_redacted_but_not_a_secret_value() -> None:
    binding = cli(["--name=a", "--secret_token="])
    assert binding.redacted()["secret_token"] == "[secret]"
    assert binding.secrets == {}
    assert binding.secret_values() == []


def test_secret_values_longest_first() -> None:
    args = [Arg(name="a", secret=True), Arg(name="b", secret=True), Arg(name="c", secret=True)]
    binding = cli(["--a=tok", "--b=token", "--c=tok"], args)
    assert binding.secret_values() == ["token", "tok"]


def test_secret_values_are_not_echoed_in_errors() -> None:
    args = [
        Arg(name="key", secret=True, pattern="[0-9]+", min_length=10),
        Arg(name="pin", format="secret", enum=["1234"]),
    ]
    with pytest.raises(ArgsInvalid) as info:
        cli(["--key=hunter2", "--pin=9999"], args)
    text = json.dumps(info.value.errors) + info.value.detail
    assert "hunter2" not in text and "9999" not in text
    assert info.value.errors == [
        {"arg": "key", "message": "must be at least 10 characters long"},
        {"arg": "key", "message": "value does not match pattern '[0-9]+'"},
        {"arg": "pin", "message": "[secret] is not one of: 1234"},
    ]
    with pytest.raises(ArgsInvalid) as info:
        bind_json(args, {"key": 12345678901}, job_id="j")
    assert info.value.errors == [{"arg": "key", "message": "must be a string (got a number)"}]


def test_env_names_and_number_text() -> None:
    args = [
        Arg(name="dry-run", type="boolean"),
        Arg(name="Big", type="number"),
        Arg(name="half", type="number"),
        Arg(name="whole", type="number"),
        Arg(name="tags", type="array"),
    ]
    binding = bind_json(
        args, {"dry-run": True, "Big": 2.5e20, "half": 0.5, "whole": 2.0, "tags": ["x"]}, job_id="j"
    )
    assert binding.env() == {
        "ARG_DRY_RUN": "true",
        "ARG_BIG": "250000000000000000000",
        "ARG_HALF": "0.5",
        "ARG_WHOLE": "2.0",
    }


# -- bind_json ---------------------------------------------------------------------------------

JSON_ARGS = [
    Arg(name="name", required=True),
    Arg(name="count", type="integer"),
    Arg(name="ratio", type="number"),
    Arg(name="loud", type="boolean"),
    Arg(name="tags", type="array", items_type="integer"),
    Arg(name="meta", type="object"),
]


def json_errors(values: Any, args: list[Arg] = JSON_ARGS) -> list[dict[str, str]]:
    with pytest.raises(ArgsInvalid) as info:
        bind_json(args, values, job_id="demo")
    return info.value.errors


def test_bind_json_valid() -> None:
    binding = bind_json(
        JSON_ARGS,
        {"name": "n", "count": 5.0, "ratio": 1, "loud": True, "tags": [1, 2.0], "meta": {"a": "b"}},
        job_id="demo",
    )
    assert binding.values == {
        "name": "n",
        "count": 5,
        "ratio": 1,
        "loud": True,
        "tags": [1, 2],
        "meta": {"a": "b"},
    }
    assert type(binding.values["count"]) is int


def test_bind_json_types_must_match() -> None:
    assert json_errors(
        {
            "name": 5,
            "count": "5",
            "ratio": "1.5",
            "loud": "true",
            "tags": ["1", 1.5],
            "meta": {"a": 1},
        }
    ) == [
        {"arg": "name", "message": "must be a string (got 5)"},
        {"arg": "count", "message": "must be an integer (got '5')"},
        {"arg": "ratio", "message": "must be a number (got '1.5')"},
        {"arg": "loud", "message": "must be a boolean (got 'true')"},
        {"arg": "tags", "message": "item '1' is not an integer; item 1.5 is not an integer"},
        {"arg": "meta", "message": "value of 'a': 1 is not a string"},
    ]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"count": 1.5}, "must be an integer (got 1.5)"),
        ({"count": True}, "must be an integer (got true)"),
        ({"count": float("inf")}, "must be an integer (got Infinity)"),
        ({"ratio": float("nan")}, "must be a number (got NaN)"),
        ({"ratio": False}, "must be a number (got false)"),
        ({"loud": 1}, "must be a boolean (got 1)"),
        ({"tags": "1,2"}, "must be a list (got '1,2')"),
        ({"meta": ["a=b"]}, 'must be an object (got ["a=b"])'),
        ({"meta": {"": "x"}}, "key '' must be a non-empty string"),
    ],
)
def test_bind_json_type_errors(values: dict[str, Any], message: str) -> None:
    [error] = json_errors({"name": "n", **values})
    assert error["message"] == message


def test_bind_json_unknown_keys_and_required() -> None:
    with pytest.raises(ArgsInvalid) as info:
        bind_json(JSON_ARGS, {"nmae": "x", "other": 1}, job_id="demo")
    assert info.value.errors == [
        {"arg": "nmae", "message": "unknown argument; did you mean 'name'?"},
        {"arg": "other", "message": "unknown argument"},
        {"arg": "name", "message": "required"},
    ]
    assert info.value.detail == (
        "3 invalid arguments for job demo: nmae: unknown argument; did you mean 'name'? (and 2 more)"
    )
    assert info.value.hint == "see the arguments of job demo (GET /jobs/demo)"


def test_bind_json_null_is_absent() -> None:
    args = [Arg(name="a", default="x"), Arg(name="b", type="boolean")]
    assert bind_json(args, {"a": None, "b": None}, job_id="j").values == {"a": "x", "b": False}
    assert json_errors({"name": None}) == [{"arg": "name", "message": "required"}]


def test_bind_json_required_empty_collections() -> None:
    args = [Arg(name="t", type="array", required=True), Arg(name="m", type="object", required=True)]
    assert json_errors({"t": [], "m": {}}, args) == [
        {"arg": "t", "message": "required; must not be empty"},
        {"arg": "m", "message": "required; must not be empty"},
    ]


def test_bind_json_job_without_arguments() -> None:
    assert bind_json([], {}, job_id="j").values == {}
    with pytest.raises(ArgsInvalid) as info:
        bind_json([], {"x": 1}, job_id="plain")
    assert info.value.errors == [{"arg": "x", "message": "job does not accept arguments"}]
    assert info.value.detail == "invalid arguments for job plain: x: job does not accept arguments"
    assert info.value.hint == "job plain has no arguments; remove x"


def test_bind_json_not_an_object() -> None:
    with pytest.raises(ArgsInvalid) as info:
        bind_json(JSON_ARGS, ["a"], job_id="demo")  # type: ignore[arg-type]
    assert info.value.errors == [
        {"arg": "", "message": "arguments must be a JSON object (got a list)"}
    ]


def test_bind_json_constraints() -> None:
    args = [Arg(name="level", enum=["a"]), Arg(name="n", type="integer", minimum=0)]
    assert json_errors({"level": "b", "n": -1}, args) == [
        {"arg": "level", "message": "'b' is not one of: a"},
        {"arg": "n", "message": "must be at least 0 (got -1)"},
    ]


# -- help --------------------------------------------------------------------------------------


def test_flag_help() -> None:
    args = [
        *DEMO[:4],
        Arg(name="level", enum=["debug", "info"], default="info"),
        Arg(name="ports", type="array", items_type="integer", default=[80, 443]),
        Arg(name="address", type="array"),
        Arg(name="kinds", type="array", items_enum=["a", "b"]),
        Arg(name="meta", type="object", value_type="integer"),
        Arg(name="n", type="integer", minimum=1, maximum=9),
        Arg(name="low", type="number", minimum=0.5),
        Arg(name="high", type="integer", maximum=3),
        Arg(name="code", max_length=4, pattern="[A-Z]*", default=""),
        Arg(name="dry_run", type="boolean", required=True),
    ]
    assert flag_help(args) == [
        ("--name NAME", "string, required — Name of the person to greet"),
        ("--loud, --no-loud", "boolean, default: false — Print in uppercase"),
        ("--tags TAG", "array, repeatable — Additional tags to echo"),
        ("--secret_token VALUE", "string, secret — Secret token"),
        ("--secret_token-file PATH", "--secret_token read from the file PATH"),
        ("--secret_token -", "--secret_token read from standard input"),
        ("--level {debug,info}", "string, default: info"),
        ("--ports PORT", "array of integer, repeatable, default: 80, 443"),
        ("--address ADDRESS", "array, repeatable"),
        ("--kinds {a,b}", "array, repeatable"),
        ("--meta KEY=VALUE", "object of integer, repeatable"),
        ("--n N", "integer, 1..9"),
        ("--low LOW", "number, ≥ 0.5"),
        ("--high HIGH", "integer, ≤ 3"),
        ("--code CODE", 'string, default: "", length 0..4, pattern [A-Z]*'),
        ("--dry_run, --no-dry_run", "boolean, required"),
    ]


# -- properties --------------------------------------------------------------------------------

_flag_like = st.sampled_from(
    [
        "--name", "--loud", "--no-loud", "--tags", "--meta", "--count", "--ratio", "--dry-run",
        "--secret_token", "--secret-token", "--no-dry_run", "--x", "-v", "-", "--", "--=",
        "--loud=", "--count=-1", "k=v", "=", "-5", "1e3", "nan", "true",
    ]
)  # fmt: skip
_tokens = st.lists(st.one_of(_flag_like, st.text(max_size=8)), max_size=12)


@settings(max_examples=400, deadline=None)
@given(_tokens)
def test_cli_parsing_and_binding_only_raise_args_invalid(tokens: list[str]) -> None:
    try:
        raw = parse_cli_tokens(DEMO, tokens, job_id="demo")
    except ArgsInvalid as exc:
        assert exc.errors
        return
    assert set(raw) <= {arg.name for arg in DEMO}
    try:
        binding = bind_cli(DEMO, raw, job_id="demo")
    except ArgsInvalid as exc:
        assert exc.errors
        return
    secret = binding.values.get("secret_token")
    if secret:
        assert binding.redacted()["secret_token"] == "[secret]"
        assert json.loads(binding.args_json())["secret_token"] == "[secret]"
        assert "ARG_SECRET_TOKEN" not in binding.env()


_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=6),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
_CONSTRAINED = [
    *JSON_ARGS,
    Arg(name="level", enum=["a", "b"]),
    Arg(name="n", type="integer", minimum=-3, maximum=3, enum=[1, 2, 3]),
    Arg(name="x", type="number", minimum=0.5),
    Arg(name="code", pattern="[a-z]+", min_length=1, max_length=3),
    Arg(name="kinds", type="array", items_enum=["p", "q"]),
    Arg(name="flags", type="object", value_type="boolean"),
    Arg(name="api_token", secret=True),
]
_names = st.sampled_from([arg.name for arg in _CONSTRAINED] + ["unknown"])


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.one_of(_names, st.text(max_size=4)), _json, max_size=8))
def test_bind_json_only_raises_args_invalid(values: dict[str, Any]) -> None:
    try:
        binding = bind_json(_CONSTRAINED, values, job_id="demo")
    except ArgsInvalid as exc:
        assert exc.errors
        token = values.get("api_token")
        if isinstance(token, str) and len(token) > 2:
            assert token not in json.dumps(exc.errors)
        return
    json.loads(binding.args_json())  # always valid JSON
    token = binding.values.get("api_token")
    if token:
        assert binding.redacted()["api_token"] == "[secret]"
        assert "ARG_API_TOKEN" not in binding.env()


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
               max_size=20))
def test_secret_never_in_args_json_or_env(secret: str) -> None:
    args = [Arg(name="user"), Arg(name="api_token", secret=True)]
    binding = bind_json(args, {"user": "u", "api_token": secret}, job_id="j")
    assert binding.secrets == {"api_token": secret}
    assert json.loads(binding.args_json())["api_token"] == "[secret]"
    assert "ARG_API_TOKEN" not in binding.env()
    assert binding.redacted() == {"user": "u", "api_token": "[secret]"}


def test_an_unknown_flag_does_not_hide_bad_values() -> None:
    from flwd.jobs import bind_cli_tokens

    with pytest.raises(ArgsInvalid) as info:
        bind_cli_tokens(DEMO, ["--bogus", "--loud=maybe"], job_id="demo")
    assert [e["arg"] for e in info.value.errors] == ["bogus", "name", "loud"]
    assert info.value.detail.startswith("3 invalid arguments for job demo: --bogus: unknown flag")
    assert bind_cli_tokens(DEMO, ["--name", "x"], job_id="demo").values["name"] == "x"
