"""config.d/config.yaml: schema, warnings, errors (flwd.jobs._config / _argspec)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from flwd.errors import ConfigInvalid, MixedExecutors
from flwd.jobs import (
    RESERVED_NAMES,
    Arg,
    ContainerConfig,
    JobConfig,
    ParsedConfig,
    parse_config,
    parse_duration,
)

PATH = "scripts/x/config.d/config.yaml"


def parse(text: str) -> ParsedConfig:
    return parse_config(textwrap.dedent(text), path=PATH)


def load(text: str) -> JobConfig:
    return parse(text).config


def problems(text: str) -> dict[str, str]:
    """field path → message of every error of an invalid config."""
    with pytest.raises(ConfigInvalid) as info:
        parse(text)
    return {error["arg"]: error["message"] for error in info.value.errors}


# -- documents -------------------------------------------------------------------------------


def test_minimal_config_has_defaults() -> None:
    config = load("interpreter: bash\n")
    assert config.interpreter == "bash"
    assert config.executor == "proc"
    assert config.env == {}
    assert config.env_inheritance is False
    assert config.timeout is None
    assert config.error_handling.policy == "abort"
    assert config.error_handling.retries == 0
    assert config.error_handling.retry_backoff == 0
    assert config.composition is None and not config.is_dag
    assert config.steps == [] and config.args == []
    assert config.job is None and config.container is None


def test_full_config() -> None:
    config = load(
        """
        version: v1
        job: {id: demo.build, name: Demo build, summary: Builds it}
        interpreter: /usr/bin/env bash
        env: {GREETING: hi}
        executor: container
        container:
          image: alpine:3.20
          network: none
          rootfs_writable: true
          capabilities: [NET_ADMIN]
          resources: {cpu: "500m", memory: 512Mi}
          extra_args: [--pids-limit=10]
        env_inheritance: true
        timeout: 30m
        error_handling: {policy: Retry, retries: 2, retry_backoff: 5s}
        aliases: [{from: x, to: y}]
        """
    )
    assert config.job is not None
    assert (config.job.id, config.job.name, config.job.summary) == (
        "demo.build",
        "Demo build",
        "Builds it",
    )
    assert config.env == {"GREETING": "hi"}
    assert config.executor == "container"
    assert config.container == ContainerConfig(
        image="alpine:3.20",
        network="none",
        rootfs_writable=True,
        capabilities=["NET_ADMIN"],
        resources={"cpu": "500m", "memory": "512Mi"},  # type: ignore[arg-type]
        extra_args=["--pids-limit=10"],
    )
    assert config.env_inheritance is True
    assert config.timeout == 1800
    assert config.error_handling.policy == "retry"
    assert config.error_handling.retries == 2
    assert config.error_handling.retry_backoff == 5



@pytest.mark.parametrize("block", ["", "error_handling: {policy: Retry, retries: 2, "
                                       "retry_backoff: 5s}\n",
                                   "error_handling: {policy: continue}\n"])
def test_error_handling_json_is_its_model_dump(block: str) -> None:
    # A plan's error_handling, written without pydantic's serializer: every member, as
    # model_dump says them (a member added to the model must be added to it too).
    handling = load("interpreter: bash\n" + block).error_handling
    assert handling.to_json() == handling.model_dump()
    assert list(handling.to_json()) == list(type(handling).model_fields)

@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty config"),
        ("# only a comment\n", "empty config"),
        ("- a\n- b\n", "expected a mapping"),
        ("just text\n", "expected a mapping"),
        ("job: [\n", "invalid YAML"),
        ("a: b\n\tc: d\n", "invalid YAML"),
        ("when: 2024-13-45\n", "invalid YAML"),
    ],
)
def test_unusable_documents(text: str, message: str) -> None:
    with pytest.raises(ConfigInvalid) as info:
        parse_config(text, path=PATH)
    assert info.value.detail.startswith(f"{PATH}: ")
    assert message in info.value.detail
    assert len(info.value.errors) == 1


def test_yaml_error_names_the_line() -> None:
    with pytest.raises(ConfigInvalid) as info:
        parse_config("interpreter: bash\njob: [\n", path=PATH)
    assert "line " in info.value.detail


def test_error_detail_names_file_and_field() -> None:
    with pytest.raises(ConfigInvalid) as info:
        parse("argspec:\n  args:\n    - {name: x, type: strin}\n")
    assert info.value.detail == (
        f"{PATH}: argspec.args[0].type: 'strin' is not a valid type "
        "(string, integer, number, boolean, array, object)"
    )
    assert info.value.errors == [
        {
            "arg": "argspec.args[0].type",
            "message": "'strin' is not a valid type (string, integer, number, boolean, array, object)",
        }
    ]
    assert info.value.extensions["path"] == PATH


def test_every_failing_field_is_listed() -> None:
    found = problems(
        """
        timeout: 0
        executor: podman
        env_inheritance: maybe
        error_handling: {policy: explode, retries: -1}
        job: {id: [1]}
        argspec:
          args:
            - {name: a, type: strin}
            - {name: b, type: integer, default: x}
        """
    )
    assert set(found) == {
        "timeout",
        "executor",
        "env_inheritance",
        "error_handling.policy",
        "error_handling.retries",
        "job.id",
        "argspec.args[0].type",
        "argspec.args[1].default",
    }
    assert found["executor"] == "'podman' is not one of: 'proc' or 'container'"
    assert found["argspec.args[1].default"] == "must be an integer (got 'x')"
    with pytest.raises(ConfigInvalid) as info:
        parse("timeout: 0\nexecutor: podman\n")
    assert info.value.detail.endswith("(and 1 more)")


# -- unknown keys ----------------------------------------------------------------------------


def test_unknown_keys_are_warnings_with_did_you_mean() -> None:
    parsed = parse(
        """
        interpreter: bash
        foo: 1
        interpeter: sh
        job: {id: x, summry: s}
        container: {image: a, netwrok: none, resources: {cpus: 1}}
        error_handling: {retry: 1}
        argspec:
          args:
            - {name: a}
            - {name: b, typ: integer, min_length: 2}
        """
    )
    assert parsed.warnings == [
        "unknown key 'foo' (ignored)",
        "unknown key 'interpeter' (ignored; did you mean 'interpreter'?)",
        "job: unknown key 'summry' (ignored; did you mean 'summary'?)",
        "container: unknown key 'netwrok' (ignored; did you mean 'network'?)",
        "container.resources: unknown key 'cpus' (ignored; did you mean 'cpu'?)",
        "error_handling: unknown key 'retry' (ignored; did you mean 'retries'?)",
        "argspec.args[1]: unknown key 'typ' (ignored; did you mean 'type'?)",
        "argspec.args[1]: unknown key 'min_length' (ignored; did you mean 'minLength'?)",
        "container: ignored because executor is proc",
    ]
    # The unknown spelling never takes effect.
    assert parsed.config.interpreter == "bash"
    assert parsed.config.args[1].type == "string"


def test_unknown_keys_in_steps_and_legacy_arguments() -> None:
    parsed = parse(
        """
        composition: steps
        steps:
          - {id: a, script: a.sh, need: [b]}
        arguments:
          name: {type: str, descripton: d}
        """
    )
    assert parsed.warnings == [
        "steps[0]: unknown key 'need' (ignored; did you mean 'needs'?)",
        "arguments.name: unknown key 'descripton' (ignored; did you mean 'description'?)",
    ]


def test_version_and_aliases_are_silent_and_jobs_warns() -> None:
    parsed = parse("version: v1\naliases: []\njobs: [{id: a}]\n")
    assert parsed.warnings == [
        "'jobs' is not supported: one job per config.d/config.yaml (ignored)"
    ]


def test_non_string_keys_are_reported() -> None:
    parsed = parse("1: x\nnull: y\n")
    assert parsed.warnings == ["unknown key '1' (ignored)", "unknown key 'None' (ignored)"]


# -- top-level fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("proc", "proc"),
        ("shell", "proc"),
        ("SHELL", "proc"),
        ("Container", "container"),
        ("", "proc"),
    ],
)
def test_executor_aliases(value: str, expected: str) -> None:
    extra = "\ncontainer: {image: alpine}" if expected == "container" else ""
    assert load(f"executor: '{value}'{extra}\n").executor == expected


def test_container_executor_needs_an_image() -> None:
    assert problems("executor: container\n") == {
        "container.image": "required when executor is container"
    }
    # The interpreter form names the image itself.
    assert load("executor: container\ninterpreter: 'container:alpine'\n").executor == "container"


def test_container_block_with_proc_executor_is_a_warning() -> None:
    parsed = parse("container: {image: alpine}\n")
    assert parsed.warnings == ["container: ignored because executor is proc"]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30.0),
        ("2.5", 2.5),
        ("'45'", 45.0),
        ("30s", 30.0),
        ("30m", 1800.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1d", 86400.0),
    ],
)
def test_timeout_forms(value: str, seconds: float) -> None:
    assert load(f"timeout: {value}\n").timeout == seconds


@pytest.mark.parametrize("value", ["0", "-1", "abc", "true", "1x", "'30 m'", "[1]", ".inf"])
def test_bad_timeouts(value: str) -> None:
    assert set(problems(f"timeout: {value}\n")) == {"timeout"}


def test_parse_duration_directly() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration(0, allow_zero=True) == 0
    with pytest.raises(ValueError, match="greater than 0"):
        parse_duration(0)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(True)


def test_env_values_are_coerced_to_strings() -> None:
    config = load("env: {PORT: 8080, DEBUG: true, RATIO: 0.5, NAME: x}\n")
    assert config.env == {"PORT": "8080", "DEBUG": "true", "RATIO": "0.5", "NAME": "x"}


def test_env_problems() -> None:
    assert problems("env: {'1BAD': x, OK: [1], EMPTY: null, 2: x}\n") == {
        "env.1BAD": "not a valid environment variable name",
        "env.OK": "must be a string (got [1])",
        "env.EMPTY": "must be a string (got null)",
        "env.2": "not a valid environment variable name",
    }
    assert problems("env: [a]\n") == {"env": 'must be a mapping (got ["a"])'}


def test_strict_types() -> None:
    found = problems("error_handling: {retries: '3'}\nenv_inheritance: 'yes'\ninterpreter: 5\n")
    assert found == {
        "error_handling.retries": "must be an integer (got '3')",
        "env_inheritance": "must be true or false (got 'yes')",
        "interpreter": "must be a string (got 5)",
    }


def test_job_meta_numbers_become_strings_and_empty_is_none() -> None:
    config = load("job: {id: 2024, name: ''}\n")
    assert config.job is not None
    assert config.job.id == "2024"
    assert config.job.name is None


def test_error_handling_backoff_accepts_durations() -> None:
    assert load("error_handling: {retry_backoff: 1m}\n").error_handling.retry_backoff == 60
    assert set(problems("error_handling: {retry_backoff: -1}\n")) == {
        "error_handling.retry_backoff"
    }


def test_composition_must_be_steps() -> None:
    assert problems("composition: single\n") == {
        "composition": "'single' is not supported (only 'steps')"
    }
    assert load("composition: ''\n").composition is None


# -- arguments -------------------------------------------------------------------------------


def args_of(text: str) -> list[Arg]:
    return load(text).args


def test_argspec_args_and_to_json() -> None:
    args = args_of(
        """
        argspec:
          args:
            - name: name
              type: string
              required: true
              description: Name of the person to greet
            - {name: loud, type: boolean, default: false, description: Print in uppercase}
            - {name: tags, type: array, items_type: string, description: Additional tags to echo}
            - {name: secret_token, type: string, format: secret}
            - {name: level, enum: [debug, info], default: info, minLength: 1, maxLength: 9, pattern: '[a-z]+'}
            - {name: count, type: integer, minimum: 1, maximum: 10}
            - {name: ratio, type: number, minimum: 0.5}
            - {name: meta, type: object, value_type: integer}
            - {name: ports, type: array, items_type: integer, items_enum: [80, 443]}
            - {name: api_key, secret: true}
        """
    )
    assert [arg.to_json() for arg in args] == [
        {
            "name": "name",
            "type": "string",
            "required": True,
            "description": "Name of the person to greet",
        },
        {"name": "loud", "type": "boolean", "default": False, "description": "Print in uppercase"},
        {
            "name": "tags",
            "type": "array",
            "description": "Additional tags to echo",
            "items_type": "string",
        },
        {"name": "secret_token", "type": "string", "format": "secret", "secret": True},
        {
            "name": "level",
            "type": "string",
            "default": "info",
            "enum": ["debug", "info"],
            "minLength": 1,
            "maxLength": 9,
            "pattern": "[a-z]+",
        },
        {"name": "count", "type": "integer", "minimum": 1, "maximum": 10},
        {"name": "ratio", "type": "number", "minimum": 0.5},
        {"name": "meta", "type": "object", "value_type": "integer"},
        {"name": "ports", "type": "array", "items_type": "integer", "items_enum": [80, 443]},
        {"name": "api_key", "type": "string", "secret": True},
    ]
    assert [arg.is_secret for arg in args] == [False] * 3 + [True] + [False] * 5 + [True]
    assert load("argspec: {args: [{name: a}]}").argspec_json() == {
        "args": [{"name": "a", "type": "string"}]
    }


def test_type_defaults_to_string() -> None:
    assert args_of("argspec: {args: [{name: a}]}")[0].type == "string"


@pytest.mark.parametrize(
    ("default", "has_default"),
    [("false", True), ("0", True), ("''", True), ("null", False), (None, False)],
)
def test_has_default_distinguishes_absent_from_falsy(
    default: str | None, has_default: bool
) -> None:
    kind = {"false": "boolean", "0": "integer"}.get(default or "", "string")
    member = f", default: {default}" if default is not None else ""
    arg = args_of(f"argspec: {{args: [{{name: a, type: {kind}{member}}}]}}")[0]
    assert arg.has_default is has_default
    assert ("default" in arg.to_json()) is has_default


@pytest.mark.parametrize("name", [*sorted(RESERVED_NAMES), "JSON", "Help"])
def test_reserved_names(name: str) -> None:
    found = problems(f"argspec: {{args: [{{name: {name}}}]}}")
    assert "is reserved" in found["argspec.args[0].name"]


@pytest.mark.parametrize("name", ["1abc", "_x", "a b", "a.b", "-x", "''", "ä"])
def test_invalid_names(name: str) -> None:
    found = problems(f"argspec: {{args: [{{name: {name}}}]}}")
    assert "is not a valid argument name" in found["argspec.args[0].name"]


@pytest.mark.parametrize("name", ["a", "A1", "secret_token", "dry-run", "x_y-z"])
def test_valid_names(name: str) -> None:
    assert args_of(f"argspec: {{args: [{{name: {name}}}]}}")[0].name == name


@pytest.mark.parametrize(
    ("member", "field", "message"),
    [
        (
            "type: string, format: secret, default: x",
            "default",
            "a secret argument cannot have a default",
        ),
        (
            "type: string, secret: true, default: x",
            "default",
            "a secret argument cannot have a default",
        ),
        ("type: integer, secret: true", "secret", "secret arguments must be of type string"),
        ("type: boolean, format: secret", "format", "secret arguments must be of type string"),
        ("type: integer, default: 'x'", "default", "must be an integer (got 'x')"),
        ("type: integer, default: 1.5", "default", "must be an integer (got 1.5)"),
        ("type: integer, default: true", "default", "must be an integer (got true)"),
        ("type: number, default: 'x'", "default", "must be a finite number (got 'x')"),
        ("type: boolean, default: 'yes'", "default", "must be a boolean (got 'yes')"),
        ("type: string, default: 5", "default", "must be a string (got 5)"),
        ("type: array, default: 'a,b'", "default", "must be a list (got 'a,b')"),
        (
            "type: array, items_type: integer, default: [1, x]",
            "default",
            "item 'x' is not an integer",
        ),
        ("type: object, default: [1]", "default", "must be a mapping (got [1])"),
        (
            "type: object, value_type: boolean, default: {a: 1}",
            "default",
            "value of 'a' must be a boolean (got 1)",
        ),
        ("type: string, enum: [a, b], default: c", "default", "'c' is not one of: a, b"),
        ("type: integer, minimum: 5, default: 1", "default", "must be at least 5 (got 1)"),
        ("type: integer, maximum: 5, default: 9", "default", "must be at most 5 (got 9)"),
        (
            "type: string, minLength: 3, default: ab",
            "default",
            "must be at least 3 characters long (got 2)",
        ),
        (
            "type: string, maxLength: 1, default: ab",
            "default",
            "must be at most 1 characters long (got 2)",
        ),
        ("type: string, pattern: 'a+', default: ab", "default", "'ab' does not match pattern 'a+'"),
        ("type: array, items_enum: [a], default: [b]", "default", "item 'b' is not one of: a"),
        ("type: string, enum: []", "enum", "must not be empty"),
        (
            "type: array, enum: [a]",
            "enum",
            "enum applies to string, integer and number arguments (use items_enum for arrays)",
        ),
        (
            "type: boolean, enum: [true]",
            "enum",
            "enum applies to string, integer and number arguments",
        ),
        ("type: integer, enum: [1, two]", "enum[1]", "must be an integer (got 'two')"),
        ("type: integer, enum: [1, 7], maximum: 5", "enum[1]", "must be at most 5 (got 7)"),
        (
            "type: string, enum: [ab, x], pattern: 'a.'",
            "enum[1]",
            "'x' does not match pattern 'a.'",
        ),
        (
            "type: array, items_type: integer, items_enum: [1, x]",
            "items_enum[1]",
            "must be an integer (got 'x')",
        ),
        ("type: array, items_enum: []", "items_enum", "must not be empty"),
        (
            "type: string, pattern: '('",
            "pattern",
            "invalid regular expression: missing ), unterminated subpattern at position 0",
        ),
        (
            "type: integer, minimum: 5, maximum: 1",
            "minimum",
            "must not be greater than maximum (1)",
        ),
        (
            "type: string, minLength: 5, maxLength: 1",
            "minLength",
            "must not be greater than maxLength (1)",
        ),
        ("type: string, minLength: -1", "minLength", "must be at least 0 (got -1)"),
        ("type: string, minimum: 1", "minimum", "only applies to integer and number arguments"),
        ("type: integer, pattern: x", "pattern", "only applies to string arguments"),
        ("type: array, maxLength: 2", "maxLength", "only applies to string arguments"),
        ("type: string, items_type: integer", "items_type", "only applies to array arguments"),
        ("type: string, items_enum: [a]", "items_enum", "only applies to array arguments"),
        ("type: array, value_type: integer", "value_type", "only applies to object arguments"),
        (
            "type: array, items_type: array",
            "items_type",
            "'array' is not a valid item type (string, integer, number, boolean)",
        ),
        ("type: integer, minimum: x", "minimum", "must be a number (got 'x')"),
        ("type: integer, minimum: true", "minimum", "must be a number (got true)"),
        ("required: 'yes'", "required", "must be true or false (got 'yes')"),
    ],
)
def test_arg_spec_errors(member: str, field: str, message: str) -> None:
    found = problems(f"argspec: {{args: [{{name: a, {member}}}]}}")
    assert found == {f"argspec.args[0].{field}": message}


def test_defaults_and_enums_that_fit() -> None:
    args = args_of(
        """
        argspec:
          args:
            - {name: n, type: number, default: 2, enum: [1, 2, 2.5]}
            - {name: i, type: integer, default: 3, minimum: 1, maximum: 3}
            - {name: t, type: array, items_type: number, default: [1, 1.5]}
            - {name: o, type: object, default: {a: x}}
            - {name: s, default: '', required: true}
        """
    )
    assert [arg.default for arg in args] == [2, 3, [1, 1.5], {"a": "x"}, ""]


def test_enum_does_not_confuse_booleans_with_numbers() -> None:
    found = problems("argspec: {args: [{name: a, type: integer, enum: [1, 2], default: true}]}")
    assert found == {"argspec.args[0].default": "must be an integer (got true)"}


def test_duplicate_and_colliding_argument_names() -> None:
    found = problems(
        """
        argspec:
          args:
            - {name: a}
            - {name: a}
            - {name: foo_bar}
            - {name: foo-bar}
            - {name: Foo_Bar}
            - {name: loud, type: boolean}
            - {name: no-loud}
        """
    )
    assert found == {
        "argspec.args[1].name": "'a': duplicate argument",
        "argspec.args[3].name": "'foo-bar': collides with 'foo_bar' (same flag/ARG_ name)",
        "argspec.args[4].name": "'Foo_Bar': collides with 'foo_bar' (same flag/ARG_ name)",
        "argspec.args[6].name": "'no-loud' clashes with --no-loud (the negation of a boolean)",
    }


def test_argspec_shape_errors() -> None:
    assert problems("argspec: [a]\n") == {
        "argspec": "must be a mapping with an 'args' list (got [\"a\"])"
    }
    assert problems("argspec: {args: {a: 1}}\n") == {
        "argspec.args": 'must be a list (got {"a": 1})'
    }
    assert problems("argspec: {args: [5]}\n") == {"argspec.args[0]": "must be a mapping (got 5)"}
    assert problems("argspec: {args: [{type: string}]}\n") == {"argspec.args[0].name": "required"}


def test_arg_model_validates_when_built_directly() -> None:
    with pytest.raises(ValidationError, match="a secret argument cannot have a default"):
        Arg(name="s", format="secret", default="x")
    with pytest.raises(ValidationError, match="reserved"):
        Arg(name="help")
    arg = Arg(name="n", min_length=2)
    assert arg.min_length == 2 and arg.to_json()["minLength"] == 2
    assert Arg(name="secret_token").flag_names == ("secret_token", "secret-token")
    assert Arg(name="dry-run").env_name == "ARG_DRY_RUN"


# -- legacy arguments ------------------------------------------------------------------------


def test_legacy_arguments_keep_file_order_and_map_types() -> None:
    args = args_of(
        """
        arguments:
          zeta: {type: str, required: true, description: last letter}
          alpha: {type: bool, default: true}
          mid: {type: int, default: 3}
          ratio: {type: float}
          level: {type: str, choices: [debug, info], default: info}
          plain:
          tags: {type: list}
          meta: {type: dict}
        """
    )
    assert [(arg.name, arg.type) for arg in args] == [
        ("zeta", "string"),
        ("alpha", "boolean"),
        ("mid", "integer"),
        ("ratio", "number"),
        ("level", "string"),
        ("plain", "string"),
        ("tags", "array"),
        ("meta", "object"),
    ]
    assert args[0].required and args[0].description == "last letter"
    assert args[1].default is True
    assert args[4].enum == ["debug", "info"]


def test_legacy_errors_use_file_paths() -> None:
    found = problems(
        """
        arguments:
          ok: {type: str}
          level: {type: str, choices: [a, 1]}
          bad: {type: strin}
          both: {choices: [a], enum: [a]}
          scalar: 5
        """
    )
    assert found == {
        "arguments.level.choices[1]": "must be a string (got 1)",
        "arguments.bad.type": "'strin' is not a valid type (string, integer, number, boolean, array, object)",
        "arguments.both.choices": "give either choices or enum",
        "arguments.scalar": "must be a mapping (got 5)",
    }


def test_both_argument_forms_is_an_error() -> None:
    found = problems("argspec: {args: [{name: a}]}\narguments: {b: {type: str}}\n")
    assert found == {
        "arguments": "argspec.args and arguments are both given; keep only argspec.args"
    }


def test_empty_argspec_falls_back_to_legacy() -> None:
    assert [arg.name for arg in args_of("argspec: {args: []}\narguments: {b: {type: str}}\n")] == [
        "b"
    ]
    assert [arg.name for arg in args_of("argspec:\narguments: {b: {type: str}}\n")] == ["b"]
    assert args_of("arguments:\n") == []


# -- steps (DAG) -----------------------------------------------------------------------------


def test_dag_with_needs_and_order() -> None:
    config = load(
        """
        composition: Steps
        steps:
          - {id: deploy, script: deploy.sh, needs: [test, build]}
          - {id: test, script: test.sh, needs: build}
          - {id: build, script: build.sh, name: Build it}
          - {id: lint, script: lint.sh}
        """
    )
    assert config.is_dag
    assert [step.id for step in config.steps] == ["deploy", "test", "build", "lint"]
    assert config.steps[1].needs == ["build"]
    assert [step.id for step in config.step_order()] == ["build", "test", "deploy", "lint"]


def test_step_id_defaults_to_the_script_stem() -> None:
    config = load(
        "composition: steps\nsteps:\n  - {script: scripts/100_build.sh}\n  - {script: test}\n"
    )
    assert [step.id for step in config.steps] == ["100_build", "test"]
    assert config.steps[0].id_derived and not config.steps[0].name
    found = problems("composition: steps\nsteps:\n  - {script: a/run.sh}\n  - {script: b/run.sh}\n")
    assert found == {
        "steps[1].id": "duplicate step id 'run' (also steps[0]) (derived from the script name; set id)"
    }
    found = problems("composition: steps\nsteps:\n  - {script: 'my script.sh'}\n")
    assert found == {
        "steps[0].id": "required: no valid id can be made from the script name 'my script.sh'"
    }


def test_dag_cycles_are_reported() -> None:
    with pytest.raises(ConfigInvalid) as info:
        parse(
            """
            composition: steps
            steps:
              - {id: a, script: a.sh, needs: [b]}
              - {id: b, script: b.sh, needs: [a]}
              - {id: c, script: c.sh, needs: [c]}
              - {id: d, script: d.sh, needs: [a]}
            """
        )
    assert info.value.errors == [
        {"arg": "steps", "message": "cycle a -> b -> a"},
        {"arg": "steps", "message": "cycle c -> c"},
    ]
    assert info.value.detail == f"{PATH}: steps: cycle a -> b -> a (and 1 more)"


def test_dag_structure_errors() -> None:
    found = problems(
        """
        composition: steps
        steps:
          - {id: build, script: build.sh}
          - {id: build, script: other.sh, needs: [biuld, nothing]}
          - {id: 'bad id', script: x.sh}
          - {id: c, script: ''}
          - {id: d}
        """
    )
    assert found == {
        "steps[2].id": "'bad id' is not a valid step id (letters, digits, '_', '.', '-')",
        "steps[3].script": "must not be empty",
        "steps[4].script": "required",
    }
    found = problems(
        """
        composition: steps
        steps:
          - {id: build, script: build.sh}
          - {id: build, script: other.sh, needs: [biuld, nothing]}
        """
    )
    assert found == {
        "steps[1].id": "duplicate step id 'build' (also steps[0])",
        "steps[1].needs[0]": "unknown step 'biuld'; did you mean 'build'?",
        "steps[1].needs[1]": "unknown step 'nothing'",
    }


@pytest.mark.parametrize("text", ["composition: steps\n", "composition: steps\nsteps: []\n"])
def test_composition_without_steps_is_not_a_dag_and_warns(text: str) -> None:
    """As in the reference (§2.6: a DAG needs composition: steps AND steps), the job runs
    its NNN_ files instead; a warning says so (not a config error)."""
    parsed = parse(text)
    assert parsed.warnings == [
        "composition: steps lists no steps, so the job runs its NNN_ scripts instead"]
    assert not parsed.config.is_dag


def test_step_container_needs_container_executor() -> None:
    found = problems(
        "composition: steps\nsteps:\n  - {id: a, script: a.sh, container: {image: alpine}}\n"
    )
    assert found == {"steps[0].container": "only allowed when executor is container"}


def test_container_dag_needs_an_image_per_step() -> None:
    found = problems(
        """
        executor: container
        composition: steps
        steps:
          - {id: a, script: a.sh, container: {image: alpine}}
          - {id: b, script: b.sh}
        """
    )
    assert found == {
        "steps[1]": "no container image: set container.image on the job or on the step"
    }
    config = load(
        """
        executor: container
        container: {image: alpine, rootfs_writable: true, resources: {cpu: 1, memory: 1Gi}}
        composition: steps
        steps:
          - {id: a, script: a.sh, container: {network: bridge, resources: {cpu: "2"}}}
          - {id: b, script: b.sh}
        """
    )
    merged = config.container_for(config.steps[0])
    assert merged is not None
    assert merged.image == "alpine" and merged.network == "bridge"
    assert merged.rootfs_writable is True  # not written on the step: the job's value stays
    assert merged.resources is not None
    assert (merged.resources.cpu, merged.resources.memory) == ("2", "1Gi")
    assert config.container_for(config.steps[1]) == config.container


def test_dag_refuses_interpreter_container_form() -> None:
    assert problems(
        "interpreter: 'container:alpine'\ncomposition: steps\nsteps: [{id: a, script: a.sh}]\n"
    ) == {
        "interpreter": "the 'container:' form is not allowed with composition: steps; use executor: container"
    }


def test_a_step_executor_keeps_the_job_but_refuses_planning_it() -> None:
    # The reference lists such a DAG and refuses to plan it (422 E_POLICY, §8.4).
    parsed = parse("composition: steps\nsteps: [{id: a, script: a.sh},\n"
                   "  {id: b, script: b.sh, executor: container}, {id: c, script: c.sh,"
                   " executor: ''}]\n")
    assert parsed.warnings == [
        "steps[1].executor: a step cannot choose its executor; set executor on the job "
        "(the job cannot be planned or run: E_POLICY)"]
    with pytest.raises(MixedExecutors) as refused:
        parsed.config.require_one_executor("scripts/d/config.d/config.yaml")
    assert refused.value.problem.status == 422 and refused.value.problem.code == "E_POLICY"
    assert refused.value.detail.startswith("scripts/d/config.d/config.yaml: steps[1]: ")
    assert refused.value.errors == [{"arg": "steps[1].executor", "message": "a step cannot "
                                     "choose its executor; set executor on the job"}]
    # Without composition: steps, steps are ignored (with their warning) and so is this.
    plain = parse("steps: [{id: a, script: a.sh, executor: proc}]\n")
    plain.config.require_one_executor("x")


def test_steps_without_composition_warn() -> None:
    parsed = parse("steps: [{id: a, script: a.sh, needs: [zz]}]\n")
    assert parsed.warnings == ["steps: ignored without 'composition: steps'"]
    assert not parsed.config.is_dag


def test_container_resources_keep_values_as_given() -> None:
    config = load(
        "executor: container\ncontainer: {image: a, resources: {cpu: 0.5, memory: 512}}\n"
    )
    assert config.container is not None and config.container.resources is not None
    assert config.container.resources.cpu == 0.5
    assert config.container.resources.memory == 512
    assert problems("container: {resources: {cpu: true}}\n") == {
        "container.resources.cpu": "must be a string or a number (got true)"
    }


# -- robustness ------------------------------------------------------------------------------

_KEYS = [
    "job", "id", "name", "summary", "interpreter", "env", "executor", "container", "image",
    "timeout", "error_handling", "policy", "retries", "composition", "steps", "script", "needs",
    "argspec", "args", "arguments", "type", "default", "enum", "items_type", "minimum",
    "maxLength", "pattern", "secret", "format", "choices", "required", "resources", "cpu",
]  # fmt: skip

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        ["string", "integer", "array", "object", "boolean", "steps", "secret", "30m", "(", "a"]
    ),
    st.text(max_size=5),
)
_trees = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), _trees, max_size=6))
def test_structured_garbage_only_raises_config_invalid(document: dict[str, Any]) -> None:
    text = yaml.safe_dump(document)
    try:
        parse_config(text, path=PATH)
    except ConfigInvalid as exc:
        assert exc.errors
        assert all(isinstance(error["message"], str) for error in exc.errors)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_config_invalid(text: str) -> None:
    try:
        parse_config(text, path=PATH)
    except ConfigInvalid as exc:
        assert exc.detail.startswith(PATH)


def test_recursive_yaml_anchors_are_refused_at_load() -> None:
    # An infinitely deep value would make every later walk of it (pruning,
    # validation, a message quoting it) loop: it is refused before anything else.
    found = problems("argspec: {args: [{name: a, type: array, default: &x [*x]}]}\n")
    assert found == {"": "a recursive alias (an anchor used inside itself, line 1)"}
    parse("env: &e {A: x}\nversion: *e\n")  # aliases of known shapes are fine


def test_long_values_are_clipped_in_messages() -> None:
    found = problems(f"interpreter: [{', '.join(['x' * 10] * 20)}]\n")
    assert len(found["interpreter"]) < 120
    assert found["interpreter"].endswith("…)")


def test_container_overlay_without_override() -> None:
    base = ContainerConfig(image="a")
    assert base.overlay(None) is base
    assert base.overlay(ContainerConfig(network="host")) == ContainerConfig(
        image="a", network="host"
    )
