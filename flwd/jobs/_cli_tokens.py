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
- objects: the flag repeated with ``KEY=VALUE`` (``--meta a=1 --meta b=2``);
- secrets (``format: secret``) may say *where* their value is instead of holding it, so
  that it never shows in ``ps`` or in a shell's history: ``--api_key-file PATH`` (also
  ``--api-key-file``; ``-`` as the path is standard input) and ``--api_key -`` (standard
  input; also ``--api_key=-``). A real argument of the same name (``api_key-file``) wins.

A separate value that starts with ``-`` is taken as a flag, not a value (so a
forgotten value does not swallow the next flag) — except a negative number for
an integer/number argument, and ``-`` alone. ``--name=-x`` always works.

Sans-IO: :func:`parse_job_flags` says where each secret is to be read from
(:class:`SecretSource`); the command line reads it (``flwd.cli``) and hands the text to
:func:`bind_job_flags`, which checks it like any value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ..errors import ArgsInvalid
from ._argspec import Arg
from ._bind import Binding, bind_cli
from ._problems import ArgProblem, args_invalid
from ._suggest import close_matches, quoted_choice
from ._text import printable, text_problem

__all__ = ["JobFlags", "SecretSource", "bind_cli_tokens", "bind_job_flags", "parse_cli_tokens",
           "parse_job_flags"]

_NEGATIVE_NUMBER_RE: Final = re.compile(r"-(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_BOOLEAN_WORDS: Final = frozenset({"true", "false", "yes", "no", "1", "0", "on", "off"})
#: The value (or file path) that means "read it from standard input".
STDIN: Final = "-"


@dataclass(frozen=True)
class SecretSource:
    """Where the value of one secret argument is to be read from (by the command line).

    Attributes:
        arg: the argument's name.
        path: the file named by ``--NAME-file PATH`` (as typed); None for standard input.
    """

    arg: str
    path: str | None = None

    @property
    def label(self) -> str:
        """How problems with it are named: ``api_key-file`` or ``api_key (stdin)``
        (after ``--``, like any flag)."""
        return f"{self.arg}-file" if self.path is not None else f"{self.arg} (stdin)"


@dataclass(frozen=True)
class JobFlags:
    """A job's command line, parsed (see :func:`parse_job_flags`).

    Attributes:
        raw: ``{arg name: [raw value, ...]}`` of the values given on the command line.
        sources: the secrets to read from a file or standard input, by argument name.
        in_argv: secret arguments given a non-empty value on the command line itself,
            where ``ps`` and the shell's history show it.
    """

    raw: dict[str, list[str]] = field(default_factory=dict)
    sources: dict[str, SecretSource] = field(default_factory=dict)
    in_argv: tuple[str, ...] = ()

    def unanswered(self, args: Sequence[Arg]) -> list[Arg]:
        """The required secrets given neither a value nor a source: what a terminal may
        be asked for. (A secret never has a default.)"""
        return [arg for arg in args
                if arg.is_secret and arg.required and not arg.has_default
                and arg.name not in self.raw and arg.name not in self.sources]


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


@dataclass(frozen=True)
class _Flags:
    """Every spelling a job's argspec accepts, and what each one means."""

    flags: dict[str, Arg]
    #: ``--no-loud`` → the boolean ``loud``.
    negations: dict[str, Arg]
    #: ``--api_key-file``, ``--api-key-file`` → the secret ``api_key``.
    files: dict[str, Arg]
    #: Every accepted spelling → its canonical flag (for did-you-mean hints).
    spellings: dict[str, str]


def _flag_table(args: Sequence[Arg]) -> _Flags:
    table = _Flags({}, {}, {}, {})
    for spec in args:
        for spelling in spec.flag_names:
            table.flags[spelling] = spec
            table.spellings[spelling] = spec.flag
            if spec.type == "boolean":
                table.negations[f"no-{spelling}"] = spec
                table.spellings[f"no-{spelling}"] = f"--no-{spec.name}"
    for spec in args:
        if spec.is_secret:
            for spelling in spec.flag_names:
                if f"{spelling}-file" not in table.flags:  # a real argument of that name wins
                    table.files[f"{spelling}-file"] = spec
                    table.spellings.setdefault(f"{spelling}-file", f"{spec.flag}-file")
    return table


class _Parser:
    """The grammar of the module docstring, one token (and maybe its value) at a time."""

    def __init__(self, args: Sequence[Arg], tokens: Sequence[str]) -> None:
        self.table = _flag_table(args)
        self.tokens = tokens
        self.index = 0
        self.raw: dict[str, list[str]] = {}
        self.sources: dict[str, SecretSource] = {}
        self.in_argv: list[str] = []
        self.problems: list[ArgProblem] = []
        #: Arguments whose flag was given but has a problem (not to be called missing too).
        self.tried: set[str] = set()

    def parse(self) -> tuple[JobFlags, list[ArgProblem], set[str]]:
        while self.index < len(self.tokens):
            token = self.tokens[self.index]
            self.index += 1
            if token == "-" or not token.startswith("-") or token == "--":
                shown = printable(token, argv=True)
                message = f"unexpected argument '{shown}'"
                self.problems.append(ArgProblem(shown, message, message))
            elif not self._refused(token):
                if token.startswith("--"):
                    self._long_flag(token)
                else:
                    self._short_flag(token)
        readers = [source for source in self.sources.values() if source.path is None]
        for source in readers[1:]:
            # Standard input holds one value: which secret it is would be a guess.
            message = (f"standard input is read by {_stdin_form(readers[0])} already; "
                       f"pass --{source.arg}-file PATH")
            self.problems.append(ArgProblem(source.label, message,
                                            f"{_stdin_form(source)}: {message}"))
        return JobFlags(self.raw, self.sources, tuple(self.in_argv)), self.problems, self.tried

    def _next_value(self, arg: Arg) -> str | None:
        """The token after the flag, taken as its value when it is one (see ``_takes``)."""
        if self.index < len(self.tokens) and _takes(arg, self.tokens[self.index]):
            self.index += 1
            return self.tokens[self.index - 1]
        return None

    def _refused(self, token: str) -> bool:
        flag_text, _, _ = token.partition("=")
        refused = text_problem(flag_text, argv=True)
        if refused is None:
            return False
        # No flag name has such text, so no suggestion: and never echo it raw.
        shown = printable(flag_text, argv=True)
        message = f"flag {refused}"
        self.problems.append(ArgProblem(shown.lstrip("-") or shown, message,
                                        f"{shown}: {message}"))
        return True

    def _short_flag(self, token: str) -> None:
        name = token.lstrip("-")
        message = _unknown(name, self.table.spellings) if name else "unknown flag"
        self.problems.append(ArgProblem(name or token, message, f"{token}: {message}"))
        if "=" not in token and _is_value(self.tokens, self.index):
            self.index += 1  # its value: reported with the flag, never echoed (see below)

    def _long_flag(self, token: str) -> None:
        name, equals, value = token[2:].partition("=")
        table = self.table
        negated = table.flags.get(name) is None and name in table.negations
        arg = table.negations[name] if negated else table.flags.get(name)
        if arg is None and name in table.files:
            self._file_flag(name, table.files[name], equals, value)
            return
        if arg is None:
            message = _unknown(name, table.spellings)
            self.problems.append(ArgProblem(name, message, f"--{name}: {message}"))
            if not equals and _is_value(self.tokens, self.index):
                # Jobs take no positional arguments, so the word after an unknown flag is
                # its value: one problem (with a did-you-mean), not a second one for the
                # value — which is never echoed either, since it may be a mistyped secret.
                self.index += 1
            return
        given = self._flag_value(name, arg, negated, value if equals else None)
        if given is not None:
            self._record(arg, given)

    def _file_flag(self, name: str, arg: Arg, equals: str, value: str) -> None:
        """``--NAME-file PATH`` of a secret."""
        if not equals:
            taken = self._next_value(arg)
            if taken is None:
                self.problems.append(ArgProblem(name, "needs a file path",
                                                f"--{name}: needs a file path"))
                self.tried.add(arg.name)
                return
            value = taken
        if not value:
            self.problems.append(ArgProblem(name, "needs a file path",
                                            f"--{name}: needs a file path"))
            self.tried.add(arg.name)
        elif arg.name in self.raw or arg.name in self.sources:
            self.problems.append(ArgProblem(arg.name, "given more than once",
                                            f"--{arg.name}: given more than once"))
        else:
            self.sources[arg.name] = SecretSource(arg.name, None if value == STDIN else value)

    def _flag_value(self, name: str, arg: Arg, negated: bool, value: str | None) -> str | None:
        """The value ``--name`` gives (``value``: after ``=``); None after a problem."""
        if negated:
            if value is not None:
                self.problems.append(ArgProblem(name, "takes no value",
                                                f"--{name}: takes no value"))
                return None
            return "false"
        if value is not None:
            return value
        if arg.type == "boolean":
            if self.index < len(self.tokens) and self.tokens[self.index].lower() in _BOOLEAN_WORDS:
                self.index += 1
                return self.tokens[self.index - 1]
            return "true"
        taken = self._next_value(arg)
        if taken is not None:
            return taken
        message = "needs a value"
        following = self.tokens[self.index] if self.index < len(self.tokens) else ""
        if following.startswith("-") and not following.startswith("--"):
            # Surely meant as the value: explain once instead of also
            # reporting it as an unknown flag (a secret is never echoed).
            example = "VALUE" if arg.is_secret else following
            message += f" (write --{name}={example} for a value starting with '-')"
            self.index += 1
        self.problems.append(ArgProblem(arg.name, message, f"--{name}: {message}"))
        return None

    def _record(self, arg: Arg, value: str) -> None:
        if (arg.name in self.raw and arg.type not in ("array", "object")) \
                or arg.name in self.sources:
            self.problems.append(ArgProblem(arg.name, "given more than once",
                                            f"--{arg.name}: given more than once"))
            return
        if arg.is_secret and value == STDIN:
            self.sources[arg.name] = SecretSource(arg.name)
            return
        if arg.is_secret and value:
            self.in_argv.append(arg.name)
        self.raw.setdefault(arg.name, []).append(value)


def _parse(args: Sequence[Arg],
           tokens: Sequence[str]) -> tuple[JobFlags, list[ArgProblem], set[str]]:
    """The grammar of the module docstring: what was given, every problem found, and the
    arguments whose flag was given but has a problem (not to be called missing too)."""
    return _Parser(args, tokens).parse()


def _stdin_form(source: SecretSource) -> str:
    return f"--{source.arg} -"


def parse_job_flags(args: Sequence[Arg], tokens: Sequence[str], *,
                    job_id: str | None = None) -> JobFlags:
    """Split job flags into the values given and the secrets to read (in the order given).

    Booleans yield ``"true"``/``"false"`` (or the text after ``=``); values are
    not coerced here — :func:`bind_job_flags` does that with every problem reported.

    Raises:
        ArgsInvalid: unknown flags, missing values, stray positional tokens, a
            non-repeatable flag given twice, two secrets reading standard input —
            all of them in ``errors``, and with them every problem of the values that
            could be parsed (an unknown flag does not hide a bad value of another flag).
    """
    parsed, problems, tried = _parse(args, tokens)
    if not problems:
        return parsed
    # What the binder says of the rest; secrets to be read are not "missing".
    rest = [arg for arg in args if arg.name not in parsed.sources]
    try:
        bind_cli(rest, parsed.raw, job_id=job_id or "")
    except ArgsInvalid as invalid:
        flagged = {problem.arg for problem in problems} | tried
        problems += [ArgProblem(e["arg"], e["message"], f"--{e['arg']}: {e['message']}")
                     for e in invalid.errors if e["arg"] not in flagged]
    raise args_invalid(problems, job_id=job_id)


def parse_cli_tokens(
    args: Sequence[Arg], tokens: Sequence[str], *, job_id: str | None = None
) -> dict[str, list[str]]:
    """The values given on the command line (:attr:`JobFlags.raw` of
    :func:`parse_job_flags`) — without the secrets to be read from a file or stdin.

    Raises:
        ArgsInvalid: the problems of the flags themselves (not of their values).
    """
    parsed, problems, _tried = _parse(args, tokens)
    if problems:
        raise args_invalid(problems, job_id=job_id)
    return parsed.raw


def bind_job_flags(args: Sequence[Arg], flags: JobFlags, read: Mapping[str, str], *,
                   job_id: str, unreadable: Mapping[str, str] | None = None,
                   leave_out: Collection[str] = ()) -> Binding:
    """:func:`bind_cli` of the values given and of the secrets read from their sources.

    ``read``: the text read for each source (by argument name), checked like a value
    typed on the command line (text that is not UTF-8 arrives as ``surrogateescape``
    and is refused; an empty text is an empty value). ``unreadable``: why a source could
    not be read. ``leave_out``: arguments to bind later (a prompt is only worth it when
    nothing else is wrong). A problem with a secret read from a source names the source
    (``--api_key-file``), never the value.

    Raises:
        ArgsInvalid: every problem, the sources' first.
    """
    unreadable = unreadable or {}
    unread = {name for name in flags.sources if name not in read}
    raw = dict(flags.raw)
    problems: list[ArgProblem] = []
    for name, source in flags.sources.items():
        if name in leave_out:
            continue
        if name in unreadable:
            problems.append(ArgProblem(source.label, unreadable[name],
                                       f"--{source.label}: {unreadable[name]}"))
        elif name in read:
            raw[name] = [read[name]]
        else:
            message = "was not read (only the flwd command line reads secret sources)"
            problems.append(ArgProblem(source.label, message, f"--{source.label}: {message}"))
    spec = [arg for arg in args if arg.name not in leave_out]
    try:
        binding = bind_cli(spec, raw, job_id=job_id)
    except ArgsInvalid as invalid:
        for error in invalid.errors:
            if error["arg"] in unread:
                continue  # said above; its "required" would only repeat it
            given = flags.sources.get(error["arg"])
            label = given.label if given is not None else error["arg"]
            problems.append(ArgProblem(label, error["message"], f"--{label}: {error['message']}"))
    if problems:
        raise args_invalid(problems, job_id=job_id)
    return binding


def bind_cli_tokens(args: Sequence[Arg], tokens: Sequence[str], *, job_id: str) -> Binding:
    """:func:`parse_job_flags` then :func:`bind_job_flags`, every problem of both reported
    at once, for a command line whose values are all in it (a secret source given there
    is a problem: reading it is the command line's IO, see ``flwd.cli``).

    Raises:
        ArgsInvalid: all problems, flags first, then values in spec order.
    """
    return bind_job_flags(args, parse_job_flags(args, tokens, job_id=job_id), {}, job_id=job_id)
