"""Which command lines the thin client takes, read from argv (sans-IO).

Only a plain ``flwd [--scripts DIR] [--data-dir DIR] JOB [WORDS…]`` goes to a local
server, and the verbs it answers in their plain forms (``:jobs``, ``:plan``, ``:runs``,
``:logs``, ``:cancel``: :mod:`flwd.thin._verbs`): anything else — another verb, remote mode (``--server``, ``FLWD_SERVER``), ``--local``
or ``FLWD_LOCAL``, ``--debug`` (tracebacks are this process's), a global option the CLI
would refuse — is left to the CLI in this process, which says what it says of it. The
global options are read as ``flwd.cli`` reads them (the same names, ``--opt VALUE`` and
``--opt=VALUE``, the last one winning).
"""

from __future__ import annotations

from ._verbs import VerbLine, parse_verb

TYPE_CHECKING = False  # not typing's: the thin client does not import typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Words in first place that are the CLI's own, never a job's.
_VERBS = frozenset({"init", "help", "completion", "__complete"})
#: The true values of FLWD_LOCAL.
_TRUE = frozenset({"1", "true", "yes", "on"})


class Invocation:
    """A job's (or a verb's) command line: its words after the global options, and where
    to look. (A plain class: see :class:`VerbLine`.)"""

    __slots__ = ("data_dir", "scripts", "verb", "words")

    def __init__(self, words: list[str], scripts: str | None = None,
                 data_dir: str | None = None, verb: VerbLine | None = None) -> None:
        self.words = words
        self.scripts = scripts
        self.data_dir = data_dir
        #: A verb's command line, parsed; None: a job's.
        self.verb = verb

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Invocation):
            return NotImplemented
        return (self.words, self.scripts, self.data_dir, self.verb) == (
            other.words, other.scripts, other.data_dir, other.verb)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Invocation(words={self.words!r}, scripts={self.scripts!r}, "
                f"data_dir={self.data_dir!r}, verb={self.verb!r})")


def job_invocation(args: Sequence[str], env: Mapping[str, str]) -> Invocation | None:
    """The job command line ``args`` (argv without the program) is, or None when it is
    not one for a server (see the module docstring)."""
    if env.get("FLWD_LOCAL", "").strip().lower() in _TRUE:
        return None
    if env.get("FLWD_SERVER", "").strip():
        return None
    values: dict[str, str] = {}
    index = 0
    while index < len(args):
        name, equals, value = args[index].partition("=")
        if name not in ("--scripts", "--data-dir"):
            break
        if not equals:
            if index + 1 >= len(args):
                return None  # the CLI says what is missing
            index += 1
            value = args[index]
        values[name] = value
        index += 1
    words = list(args[index:])
    verb = parse_verb(words)
    if verb is None and (not words or words[0].startswith((":", "-")) or words[0] in _VERBS):
        return None
    return Invocation(words, values.get("--scripts"), values.get("--data-dir"), verb)
