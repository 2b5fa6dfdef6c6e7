"""Raw argument values → a validated :class:`Binding`, from the CLI or from JSON.

Both entry points coerce, apply defaults and check every constraint of every
argument, then report all problems in one :class:`ArgsInvalid`.

The bound model (what ``Binding.values`` holds for each argument, in spec order):

- a given value, coerced to the argument's type;
- else the default (a copy, so a run can never mutate the spec);
- else, for an optional argument: ``[]`` for arrays, ``{}`` for objects,
  ``False`` for booleans, and *nothing* for strings and numbers — the key is
  absent, so a script can tell "not given" from ``""`` or ``0``;
- a required argument with neither a value nor a default is an error. An empty
  string, list or mapping does not satisfy ``required``;
- text that cannot reach a process or the journal (a NUL, a lone surrogate,
  bytes of argv that are not UTF-8) is refused before coercion.

Secrets (string arguments marked ``format: secret`` / ``secret: true``) are held
raw only in ``Binding.secrets``; every view meant to leave the process
(:meth:`Binding.redacted`, :meth:`Binding.args_json`, :meth:`Binding.env`)
replaces or omits them.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from ._argspec import (
    SECRET_MARK,
    Arg,
    constraint_problems,
    is_kind,
    kind_of,
    plain,
    show,
)
from ._problems import ArgProblem, args_invalid
from ._suggest import did_you_mean
from ._text import printable, text_problem, value_problem

__all__ = ["Binding", "bind_cli", "bind_json", "flag_help"]

_INTEGER_RE: Final = re.compile(r"[+-]?[0-9]+")
_NUMBER_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE: Final = frozenset({"true", "yes", "1", "on"})
_FALSE: Final = frozenset({"false", "no", "0", "off"})
_ARTICLE: Final = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
}


class _Invalid(Exception):
    """A value that cannot be coerced; the message is user-facing."""


@dataclass(frozen=True)
class Binding:
    """Validated argument values of one run.

    Attributes:
        values: every bound argument in spec order (see the module docstring for
            which optional arguments are absent). Secret values are raw here:
            never log or serialise this directly — use :meth:`redacted`.
        secrets: name → raw value of every *non-empty* secret argument.
        secret_names: the names of all secret arguments of the spec.
    """

    values: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    secret_names: frozenset[str] = frozenset()

    def redacted(self) -> dict[str, Any]:
        """``values`` with each present secret replaced by ``"[secret]"``."""
        return {
            name: (SECRET_MARK if name in self.secret_names else value)
            for name, value in self.values.items()
        }

    def env(self) -> dict[str, str]:
        """``ARG_<NAME>`` for every non-secret scalar that has a value.

        Booleans are ``true``/``false``; numbers are plain decimal text (no
        exponent); arrays and objects are only in :meth:`args_json`.
        """
        env: dict[str, str] = {}
        for name, value in self.values.items():
            if name in self.secret_names or value is None:
                continue
            text = _env_text(value)
            if text is not None:
                env["ARG_" + name.upper().replace("-", "_")] = text
        return env

    def args_json(self) -> str:
        """Compact JSON (sorted keys) of :meth:`redacted` — for ``FLWD_ARGS_JSON``."""
        return json.dumps(
            self.redacted(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )

    def secret_values(self) -> list[str]:
        """Distinct non-empty secret values, longest first.

        Longest first so that a masker replacing them in order never leaves the
        tail of a longer secret that contains a shorter one.
        """
        return sorted(set(self.secrets.values()), key=lambda value: (-len(value), value))


def _env_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, str):
        return value
    return None


# -- coercion --------------------------------------------------------------------------------


def _from_text(kind: str, text: str) -> Any:
    """A CLI string as ``kind`` (string, integer, number, boolean)."""
    if kind == "string":
        return text
    if kind == "integer":
        if not _INTEGER_RE.fullmatch(text):
            raise _Invalid(f"{show(text)} is not an integer")
        try:
            return int(text)
        except ValueError:  # longer than Python's int-from-string digit limit
            raise _Invalid(f"{show(text[:20] + '…')} is too long for an integer")
    if kind == "number":
        if not _NUMBER_RE.fullmatch(text):
            raise _Invalid(f"{show(text)} is not a number")
        if _INTEGER_RE.fullmatch(text):
            try:
                return int(text)
            except ValueError:
                raise _Invalid(f"{show(text[:20] + '…')} is too long for a number")
        number = float(text)
        if not math.isfinite(number):
            raise _Invalid(f"{show(text)} is not a finite number")
        return number
    folded = text.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise _Invalid(f"{show(text)} is not a boolean (true/false, yes/no, 1/0, on/off)")


def _from_json(kind: str, value: Any) -> Any:
    """A JSON value as ``kind``; JSON types must match (``"5"`` is not an integer)."""
    if (
        kind == "integer"
        and isinstance(value, float)
        and math.isfinite(value)
        and value.is_integer()
    ):
        return int(value)  # 5.0 is how some JSON encoders write 5
    if not is_kind(kind, value):
        raise _Invalid(f"{show(value)} is not {_ARTICLE[kind]}")
    return value


def _coerce_cli(arg: Arg, given: list[str]) -> Any:
    if arg.type == "array":
        items: list[Any] = []
        problems: list[str] = []
        for text in given:
            try:
                items.append(_from_text(arg.items_type, text))
            except _Invalid as exc:
                problems.append(f"item {exc}")
        if problems:
            raise _Invalid("; ".join(problems))
        return items
    if arg.type == "object":
        mapping: dict[str, Any] = {}
        problems = []
        for pair in given:
            key, equals, text = pair.partition("=")
            if not equals:
                problems.append(f"{show(pair)} is not KEY=VALUE")
            elif not key.strip():
                problems.append(f"{show(pair)} has an empty key")
            elif key in mapping:
                problems.append(f"key '{key}' given more than once")
            else:
                try:
                    mapping[key] = _from_text(arg.value_type, text)
                except _Invalid as exc:
                    problems.append(f"value of '{key}': {exc}")
        if problems:
            raise _Invalid("; ".join(problems))
        return mapping
    if len(given) > 1:
        raise _Invalid("given more than once")
    try:
        return _from_text(arg.type, given[0])
    except _Invalid:
        if arg.is_secret:  # the message would echo the value
            raise _Invalid(f"is not {_ARTICLE[arg.type]}") from None
        raise


def _coerce_json(arg: Arg, value: Any) -> Any:
    if arg.type == "array":
        if not isinstance(value, list | tuple):
            raise _Invalid(f"must be a list (got {show(value)})")
        items: list[Any] = []
        problems: list[str] = []
        for item in value:
            try:
                items.append(_from_json(arg.items_type, item))
            except _Invalid as exc:
                problems.append(f"item {exc}")
        if problems:
            raise _Invalid("; ".join(problems))
        return items
    if arg.type == "object":
        if not isinstance(value, Mapping):
            raise _Invalid(f"must be an object (got {show(value)})")
        mapping: dict[str, Any] = {}
        problems = []
        for key, item in value.items():
            if not isinstance(key, str) or not key.strip():
                problems.append(f"key {show(key)} must be a non-empty string")
                continue
            try:
                mapping[key] = _from_json(arg.value_type, item)
            except _Invalid as exc:
                problems.append(f"value of '{key}': {exc}")
        if problems:
            raise _Invalid("; ".join(problems))
        return mapping
    try:
        return _from_json(arg.type, value)
    except _Invalid:
        got = kind_of(value) if arg.is_secret else show(value)
        raise _Invalid(f"must be {_ARTICLE[arg.type]} (got {got})") from None


# -- binding ---------------------------------------------------------------------------------

_ABSENT: Final = object()


def _bind(
    args: Sequence[Arg],
    given: Mapping[str, Any],
    unknown: list[str],
    *,
    cli: bool,
    job_id: str,
) -> Binding:
    problems: list[ArgProblem] = []

    def report(arg_name: str, message: str) -> None:
        shown = f"--{arg_name}" if cli else arg_name
        problems.append(ArgProblem(arg_name, message, f"{shown}: {message}"))

    names = [arg.name for arg in args]
    for name in unknown:
        refused = text_problem(name, argv=cli)
        if refused is not None:
            # Never echo the name itself: it would carry the bad text into the problem.
            report(printable(name, argv=cli), f"argument name {refused}")
            continue
        hint = did_you_mean(name, names)
        report(name, "unknown argument" + (f"; {hint}" if hint else ""))

    values: dict[str, Any] = {}
    for arg in args:
        raw = given.get(arg.name, _ABSENT)
        if raw is _ABSENT or raw is None or (cli and not raw):
            if arg.has_default:
                values[arg.name] = copy.deepcopy(arg.default)
            elif arg.required:
                report(arg.name, _required(arg) if cli else "required")
            elif arg.type == "array":
                values[arg.name] = []
            elif arg.type == "object":
                values[arg.name] = {}
            elif arg.type == "boolean":
                values[arg.name] = False
            continue
        refused = (_cli_text_problem(arg, raw) if cli
                   else value_problem(raw, secret=arg.is_secret))
        if refused is not None:
            report(arg.name, refused)
            continue
        try:
            value = _coerce_cli(arg, raw) if cli else _coerce_json(arg, raw)
        except _Invalid as exc:
            report(arg.name, str(exc))
            continue
        if arg.required and isinstance(value, str | list | dict) and not value:
            report(arg.name, "required; must not be empty")
            continue
        found = constraint_problems(arg, value)
        for message in found:
            report(arg.name, message)
        if not found:
            values[arg.name] = value

    if problems:
        hint = None if cli else f"see the arguments of job {job_id} (GET /jobs/{job_id})"
        raise args_invalid(problems, job_id=job_id, hint=hint)
    secret_names = frozenset(arg.name for arg in args if arg.is_secret)
    secrets = {
        name: value
        for name, value in values.items()
        if name in secret_names and isinstance(value, str) and value
    }
    return Binding(values=values, secrets=secrets, secret_names=secret_names)


def _cli_text_problem(arg: Arg, given: list[str]) -> str | None:
    """:func:`text_problem` for the raw strings of one flag (see :mod:`flwd.jobs._text`)."""
    for index, text in enumerate(given):
        if arg.type == "object":
            key, equals, value = text.partition("=")
            if problem := text_problem(key, argv=True, secret=arg.is_secret):
                return f"a key {problem}"
            if equals and (problem := text_problem(value, argv=True, secret=arg.is_secret)):
                return f"value of '{key}': {problem}"
        elif problem := text_problem(text, argv=True, secret=arg.is_secret):
            return f"item {index + 1}: {problem}" if arg.type == "array" else problem
    return None


def _required(arg: Arg) -> str:
    if arg.is_secret:  # never suggest the form that shows it in ps and the shell's history
        return f"required; pass --{arg.name}-file PATH or --{arg.name} - (stdin)"
    if arg.type == "boolean":
        return f"required; pass --{arg.name} or --no-{arg.name}"
    if arg.type == "object":
        return f"required; pass --{arg.name} KEY=VALUE"
    if arg.type == "array":
        return f"required; pass --{arg.name} VALUE (repeatable)"
    return f"required; pass --{arg.name} VALUE"


def bind_cli(args: Sequence[Arg], raw: Mapping[str, list[str]], *, job_id: str) -> Binding:
    """Coerce and validate the output of :func:`parse_cli_tokens`.

    Coercion: integers (``+``/``-`` allowed, ``1.5`` refused), numbers (finite
    only), booleans (``true/false/yes/no/1/0/on/off``, any case), array items to
    ``items_type``, object ``KEY=VALUE`` pairs with values to ``value_type``.
    A value holding a NUL or bytes that are not UTF-8 (Python decodes argv with
    ``surrogateescape``) is refused, naming the flag (see :mod:`flwd.jobs._text`).

    Raises:
        ArgsInvalid: every failing argument, in spec order.
    """
    known = {arg.name for arg in args}
    unknown = [name for name in raw if name not in known]
    return _bind(args, raw, unknown, cli=True, job_id=job_id)


def bind_json(args: Sequence[Arg], values: Mapping[str, Any], *, job_id: str) -> Binding:
    """Validate JSON arguments (``POST /plans`` / ``POST /runs``).

    JSON types must match the argument types: ``"5"`` is not an integer, and a
    JSON number for an integer must be integral. ``null`` counts as not given.
    Unknown keys are errors. Any string in a value (array items, object keys
    and values included) holding a NUL or a lone UTF-16 surrogate is refused,
    naming the argument (see :mod:`flwd.jobs._text`).

    Raises:
        ArgsInvalid: every failing argument; for a job without arguments, any
            non-empty ``values`` (``job does not accept arguments``).
    """
    given: object = values  # callers may hand over any decoded JSON
    if not isinstance(given, Mapping):
        problem = ArgProblem("", f"arguments must be a JSON object (got {kind_of(given)})")
        raise args_invalid([problem], job_id=job_id, hint="send args as an object of name: value")
    if not args and values:
        keys = ", ".join(sorted(str(key) for key in values))
        raise args_invalid(
            [ArgProblem(str(key), "job does not accept arguments") for key in values],
            job_id=job_id,
            hint=f"job {job_id} has no arguments; remove {keys}",
        )
    known = {arg.name for arg in args}
    unknown = [str(key) for key in values if key not in known]
    return _bind(args, values, unknown, cli=False, job_id=job_id)


# -- help ------------------------------------------------------------------------------------


def _metavar(arg: Arg) -> str:
    if arg.is_secret:
        return "VALUE"
    if arg.enum:
        return "{" + ",".join(plain(choice) for choice in arg.enum) + "}"
    if arg.type == "object":
        return "KEY=VALUE"
    if arg.type == "array" and arg.items_enum:
        return "{" + ",".join(plain(choice) for choice in arg.items_enum) + "}"
    word = arg.name.upper().replace("-", "_")
    if arg.type == "array" and word.endswith("S") and not word.endswith(("SS", "US", "IS")):
        word = word[:-1]  # --tags TAG
    return word


def _shown_default(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(plain(item) for item in value) or "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{key}={plain(item)}" for key, item in value.items()) or "(none)"
    if value == "":
        return '""'
    return plain(value)


def flag_help(args: Sequence[Arg]) -> list[tuple[str, str]]:
    """``(flag form, description)`` per argument, for a job's ``--help``.

    E.g. ``("--name NAME", "string, required — Name of the person to greet")``,
    ``("--tags TAG", "array, repeatable")``, ``("--loud, --no-loud", "boolean,
    default: false")``. A secret has two more rows after its own, for the forms that
    keep it out of ``ps`` and the shell's history: ``("--api_key-file PATH", "… read
    from the file PATH")`` and ``("--api_key -", "… read from standard input")``.
    """
    rows: list[tuple[str, str]] = []
    for arg in args:
        if arg.type == "boolean":
            form = f"--{arg.name}, --no-{arg.name}"
        else:
            form = f"--{arg.name} {_metavar(arg)}"
        if arg.type == "array":
            kind = (
                "array, repeatable"
                if arg.items_type == "string"
                else f"array of {arg.items_type}, repeatable"
            )
        elif arg.type == "object":
            kind = (
                "object, repeatable"
                if arg.value_type == "string"
                else f"object of {arg.value_type}, repeatable"
            )
        else:
            kind = arg.type
        parts = [kind]
        if arg.required:
            parts.append("required")
        if arg.is_secret:
            parts.append("secret")
        if arg.has_default:
            parts.append(f"default: {_shown_default(arg.default)}")
        if arg.minimum is not None and arg.maximum is not None:
            parts.append(f"{plain(arg.minimum)}..{plain(arg.maximum)}")
        elif arg.minimum is not None:
            parts.append(f"≥ {plain(arg.minimum)}")
        elif arg.maximum is not None:
            parts.append(f"≤ {plain(arg.maximum)}")
        if arg.min_length is not None or arg.max_length is not None:
            low = arg.min_length if arg.min_length is not None else 0
            high = arg.max_length if arg.max_length is not None else ""
            parts.append(f"length {low}..{high}")
        if arg.pattern is not None:
            parts.append(f"pattern {arg.pattern}")
        text = ", ".join(parts)
        if arg.description:
            text += f" — {arg.description}"
        rows.append((form, text))
        if arg.is_secret:
            rows.append((f"--{arg.name}-file PATH", f"--{arg.name} read from the file PATH"))
            rows.append((f"--{arg.name} -", f"--{arg.name} read from standard input"))
    return rows
