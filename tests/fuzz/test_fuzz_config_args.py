"""Property tests: the config parser and argument binding never fail with anything but
their typed errors (``ConfigInvalid``, ``ArgsInvalid``), whatever the input."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from flwd.errors import ArgsInvalid, ConfigInvalid
from flwd.http._problems import domain_problem
from flwd.jobs import Binding, ParsedConfig, bind_cli, bind_json, parse_cli_tokens, parse_config

from .strategies import KEYWORDS, nested, scalars

pytestmark = pytest.mark.fuzz

PATH = "scripts/fuzz/config.d/config.yaml"


def check_problem(exc: ConfigInvalid | ArgsInvalid) -> None:
    """A typed error always renders: one line, a problem document that is JSON."""
    assert "\n" not in exc.one_line()
    status, document = domain_problem(exc, "/fuzz")
    assert status == 422 and document["detail"]
    json.dumps(document)
    for error in exc.errors or []:
        assert isinstance(error["arg"], str) and isinstance(error["message"], str)


def parse(text: str) -> ParsedConfig | None:
    try:
        return parse_config(text, path=PATH)
    except ConfigInvalid as exc:
        check_problem(exc)
        return None


@given(st.text(max_size=400))
def test_any_text_is_a_config_or_config_invalid(text: str) -> None:
    parse(text)


YAML_SNIPPETS = st.sampled_from([
    "job: {id: x}\n", "argspec:\n  args:\n", "  - {name: a, type: integer}\n", "- ", ": ",
    "&a [*a]\n", "!!python/object:os.system\n", "? [a, b]\n: c\n", "x: 2024-13-45\n",
    "timeout: 1e999\n", "'\\ud800'\n", "\t", "{", "}", "[", "]", "#", "\n", "---\n", "...\n",
    "<<: *x\n", "x: &x {a: 1}\ny: {<<: *x}\n", "steps: [{id: a, needs: [a]}]\n",
    "composition: steps\n", "env: {A: !!binary aGk=}\n", "timeout: .inf\n",
])


@given(st.lists(st.one_of(YAML_SNIPPETS, st.text(max_size=10)), max_size=12))
def test_yaml_fragments_are_a_config_or_config_invalid(parts: list[str]) -> None:
    parse("".join(parts))


@given(nested())
def test_any_structure_is_a_config_or_config_invalid(data: Any) -> None:
    parse(yaml.safe_dump(data, allow_unicode=True))


# -- argument specs and what a caller passes -------------------------------------------------

arg_names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
arg_specs = st.fixed_dictionaries(
    {"name": arg_names,
     "type": st.sampled_from(["string", "integer", "number", "boolean", "array", "object"])},
    optional={
        "required": st.booleans(),
        "default": scalars,
        "enum": st.lists(scalars, max_size=3),
        "minimum": st.one_of(st.integers(-5, 5), st.floats(-5, 5)),
        "maximum": st.one_of(st.integers(-5, 50), st.floats(-5, 50)),
        "minLength": st.integers(0, 3), "maxLength": st.integers(0, 10),
        "pattern": st.sampled_from(["^[a-z]+$", "[", "a|b", ".*"]),
        "format": st.sampled_from(["secret", "path", "file", "directory", "date"]),
        "items_type": st.sampled_from(["string", "integer", "number", "boolean", "float"]),
        "items_enum": st.lists(st.text(max_size=3), max_size=3),
        "value_type": st.sampled_from(["string", "integer", "boolean"]),
        "description": st.text(max_size=10),
    })


@st.composite
def argspecs(draw: st.DrawFn) -> ParsedConfig | None:
    specs = draw(st.lists(arg_specs, max_size=5, unique_by=lambda spec: spec["name"]))
    return parse(yaml.safe_dump({"job": {"id": "fuzz"}, "argspec": {"args": specs}}))


def tokens_for(config: ParsedConfig) -> st.SearchStrategy[list[str]]:
    names = [arg.name for arg in config.config.args] or ["x"]
    flag = st.sampled_from(names).map(lambda name: f"--{name}")
    values = st.one_of(st.text(max_size=8), st.sampled_from(
        ["true", "false", "1", "-1", "1.5", "1e400", "nan", "k=v", "=", "--", "-", "",
         "k=1", "a=b=c", "0x10", "+3", " 2 "]))
    token = st.one_of(
        flag, values,
        st.tuples(flag, values).map(lambda pair: f"{pair[0]}={pair[1]}"),
        st.sampled_from(names).map(lambda name: f"--no-{name}"),
        st.sampled_from(names).map(lambda name: f"--{name.replace('_', '-')}"),
    )
    return st.lists(token, max_size=8)


def check_binding(binding: Binding) -> None:
    binding.env()
    json.loads(binding.args_json())
    json.dumps(binding.redacted(), default=str)
    for secret in binding.secrets:
        assert secret in binding.values


@given(st.data())
def test_any_cli_tokens_bind_or_are_args_invalid(data: st.DataObject) -> None:
    config = data.draw(argspecs())
    if config is None:
        event("argspec refused")
        return
    args = config.config.args
    tokens = data.draw(tokens_for(config))
    try:
        raw = parse_cli_tokens(args, tokens, job_id="fuzz")
        binding = bind_cli(args, raw, job_id="fuzz")
    except ArgsInvalid as exc:
        check_problem(exc)
        event("args invalid")
        return
    event("bound")
    check_binding(binding)


@given(st.data())
def test_any_json_arguments_bind_or_are_args_invalid(data: st.DataObject) -> None:
    config = data.draw(argspecs())
    if config is None:
        return
    args = config.config.args
    names = [arg.name for arg in args] or ["x"]
    values = data.draw(st.one_of(
        st.dictionaries(st.one_of(st.sampled_from(names), st.sampled_from(KEYWORDS)),
                        nested(), max_size=5),
        nested()))
    try:
        binding = bind_json(args, values, job_id="fuzz")
    except ArgsInvalid as exc:
        check_problem(exc)
        return
    check_binding(binding)
