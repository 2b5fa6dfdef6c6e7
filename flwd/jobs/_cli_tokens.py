"""Job flags on the command line → raw string values per argument.

This is deliberately not a general option parser: the grammar is small and
fixed by the job's argspec, and every problem must be reported at once with the
argument it is about, which general parsers do not do.

Grammar (after the job words):

- ``--name value`` and ``--name=value``; the flag is the argument name exactly
  (``--secret_token``) or with ``_`` → ``-`` (``--secret-token``);
- booleans: ``--loud`` (true), ``--loud=false``, ``--loud false`` (a following
  ``true``/``false``/``yes``/``no``/``on``/``off``/``1``/``0``: jobs take no
  positional arguments, so it cannot be anything else — and shell completion
  offers exactly that form), ``--no-loud`` (false);
- arrays: the flag repeated (``--tags a --tags b``), never comma-split;
- objects: the flag repeated with ``KEY=VALUE`` (``--meta a=1 --meta b=2``).

A separate value that starts with ``-`` is taken as a flag, not a value (so a
forgotten value does not swallow the next flag) — except a negative number for
an integer/number argument, and ``-`` alone. ``--name=-x`` always works.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from ..errors import ArgsInvalid
from ._argspec import Arg
from ._bind import Binding, bind_cli
from ._problems import ArgProblem, args_invalid
from ._suggest import close_matches, quoted_choice
from ._text import printable, text_problem

__all__ = ["bind_cli_tokens", "parse_cli_tokens"]

_NEGATIVE_NUMBER_RE: Final = re.compile(r"-(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_BOOLEAN_WORDS: Final = frozenset({"true", "false", "yes", "no", "1", "0", "on", "off"})


def _takes(arg: Arg, token: str) -> bool:
    """Whether ``token``, following ``--flag``, is that flag's value."""
    if not token.startswith("-") or token == "-":
        return True
    return arg.type in ("integer", "number") and bool(_NEGATIVE_NUMBER_RE.fullmatch(token))


def _unknown(name: str, spellings: dict[str, str]) -> str:
    """``unknown flag``, with the canonical spelling of close flags as a hint."""
    shown: list[str] = []
    for match in close_matches(name, spellings):
        if spellings[match] not in shown:  # --secret-token and --secret_token are one flag
            shown.append(spellings[match])
    if not shown:
        return "unknown flag"
    return f"unknown flag (did you mean {quoted_choice(shown)}?)"


def _is_value(tokens: Sequence[str], index: int) -> bool:
    return index < len(tokens) and not tokens[index].startswith("-")


def parse_cli_tokens(
    args: Sequence[Arg], tokens: Sequence[str], *, job_id: str | None = None
) -> dict[str, list[str]]:
    """Split job flags into ``{arg name: [raw value, ...]}`` (in the order given).

    Booleans yield ``"true"``/``"false"`` (or the text after ``=``); values are
    not coerced here — :func:`bind_cli` does that with every problem reported.

    Raises:
        ArgsInvalid: unknown flags, missing values, stray positional tokens, a
            non-repeatable flag given twice — all of them in ``errors``.
    """
    flags: dict[str, Arg] = {}
    negations: dict[str, Arg] = {}
    spellings: dict[str, str] = {}  # every accepted spelling → its canonical flag
    for spec in args:
        for spelling in spec.flag_names:
            flags[spelling] = spec
            spellings[spelling] = spec.flag
            if spec.type == "boolean":
                negations[f"no-{spelling}"] = spec
                spellings[f"no-{spelling}"] = f"--no-{spec.name}"

    raw: dict[str, list[str]] = {}
    problems: list[ArgProblem] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1

        if token == "-" or not token.startswith("-") or token == "--":
            shown = printable(token, argv=True)
            message = f"unexpected argument '{shown}'"
            problems.append(ArgProblem(shown, message, message))
            continue
        flag_text, _, _ = token.partition("=")
        refused = text_problem(flag_text, argv=True)
        if refused is not None:
            # No flag name has such text, so no suggestion: and never echo it raw.
            shown = printable(flag_text, argv=True)
            message = f"flag {refused}"
            problems.append(ArgProblem(shown.lstrip("-") or shown, message,
                                       f"{shown}: {message}"))
            continue
        if not token.startswith("--"):
            name = token.lstrip("-")
            message = _unknown(name, spellings) if name else "unknown flag"
            problems.append(ArgProblem(name or token, message, f"{token}: {message}"))
            if "=" not in token and _is_value(tokens, index):
                index += 1  # its value: reported with the flag, never echoed (see below)
            continue

        name, equals, value = token[2:].partition("=")
        negated = flags.get(name) is None and name in negations
        arg = negations[name] if negated else flags.get(name)
        if arg is None:
            message = _unknown(name, spellings)
            problems.append(ArgProblem(name, message, f"--{name}: {message}"))
            if not equals and _is_value(tokens, index):
                # Jobs take no positional arguments, so the word after an unknown flag is
                # its value: one problem (with a did-you-mean), not a second one for the
                # value — which is never echoed either, since it may be a mistyped secret.
                index += 1
            continue
        if negated:
            if equals:
                problems.append(ArgProblem(name, "takes no value", f"--{name}: takes no value"))
                continue
            value = "false"
        elif arg.type == "boolean":
            if not equals:
                if index < len(tokens) and tokens[index].lower() in _BOOLEAN_WORDS:
                    value = tokens[index]
                    index += 1
                else:
                    value = "true"
        elif not equals:
            if index < len(tokens) and _takes(arg, tokens[index]):
                value = tokens[index]
                index += 1
            else:
                message = "needs a value"
                following = tokens[index] if index < len(tokens) else ""
                if following.startswith("-") and not following.startswith("--"):
                    # Surely meant as the value: explain once instead of also
                    # reporting it as an unknown flag (a secret is never echoed).
                    example = "VALUE" if arg.is_secret else following
                    message += f" (write --{name}={example} for a value starting with '-')"
                    index += 1
                problems.append(ArgProblem(arg.name, message, f"--{name}: {message}"))
                continue

        if arg.name in raw and arg.type not in ("array", "object"):
            problems.append(
                ArgProblem(arg.name, "given more than once", f"--{arg.name}: given more than once")
            )
            continue
        raw.setdefault(arg.name, []).append(value)

    if problems:
        raise _ParseProblems(args_invalid(problems, job_id=job_id), raw, problems)
    return raw


class _ParseProblems(ArgsInvalid):
    """The parse failed; also carries what could be parsed (see :func:`bind_cli_tokens`)."""

    def __init__(self, error: ArgsInvalid, raw: dict[str, list[str]],
                 problems: list[ArgProblem]) -> None:
        super().__init__(error.detail, hint=error.hint, errors=error.errors)
        self.raw = raw
        self.problems = problems


def bind_cli_tokens(args: Sequence[Arg], tokens: Sequence[str], *, job_id: str) -> Binding:
    """:func:`parse_cli_tokens` then :func:`bind_cli`, every problem of both reported at once
    (an unknown flag does not hide a bad value of another flag).

    Raises:
        ArgsInvalid: all problems, flags first, then values in spec order.
    """
    try:
        raw = parse_cli_tokens(args, tokens, job_id=job_id)
    except _ParseProblems as failed:
        problems = list(failed.problems)
        try:
            bind_cli(args, failed.raw, job_id=job_id)
        except ArgsInvalid as invalid:
            flagged = {problem.arg for problem in problems}
            problems += [ArgProblem(e["arg"], e["message"], f"--{e['arg']}: {e['message']}")
                         for e in invalid.errors if e["arg"] not in flagged]
        raise args_invalid(problems, job_id=job_id) from None
    return bind_cli(args, raw, job_id=job_id)
