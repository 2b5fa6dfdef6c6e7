"""Which verb command lines a local server may answer, read from their words (sans-IO).

``flwd :jobs``, ``:plan``, ``:runs``, ``:logs`` and ``:cancel`` go to a local server too,
which answers them with the CLI's own code (``flwd/cli/_served.py``). Their words are
parsed in the CLI by cyclopts, which is not imported on the thin path: :func:`parse_verb`
takes only the plain forms whose meaning is certain — each option once (``--arg``
repeatable), its value in the next word or after ``=``, never a word that starts with
``-`` as a value, ``:runs --status`` one of its choices, ``--limit`` digits — and answers
None for everything else (``--help``, an unknown option, a missing value, a malformed
number…): the CLI then parses the command line in its own process and says what it says
of it. The server parses the words it gets again with this same function, and declines
what it does not take.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the thin client does not import typing
if TYPE_CHECKING:
    from collections.abc import Sequence

#: The verbs a server answers.
VERBS = frozenset({":jobs", ":plan", ":runs", ":logs", ":cancel"})
#: ``:runs --status`` choices (the CLI's ``Status``).
STATUSES = frozenset({"queued", "running", "completed", "failed", "canceled", "interrupted"})
#: Words cyclopts reads itself wherever they stand (``:plan`` passes every other word on).
_CYCLOPTS_OWN = frozenset({"--help", "-h", "--version", "--"})

#: Each verb's options: name → takes a value.
_OPTIONS: dict[str, dict[str, bool]] = {
    ":jobs": {"--json": False},
    ":runs": {"--job": True, "--status": True, "--arg": True, "--since": True,
              "--until": True, "--limit": True, "--all": False, "--json": False},
    ":logs": {"--follow": False, "--json": False},
    ":cancel": {},
}
#: How many positional words each verb takes.
_POSITIONALS = {":jobs": 0, ":runs": 0, ":logs": 1, ":cancel": 1}


class VerbLine:
    """A verb's command line as the CLI would read it.

    A plain class, not a dataclass: ``dataclasses`` imports ``inspect``, ~20 ms of the
    thin client's start-up (which is what it exists to save).
    """

    __slots__ = ("options", "positional", "verb")

    def __init__(self, verb: str, positional: list[str] | None = None,
                 options: dict[str, list[str]] | None = None) -> None:
        self.verb = verb
        #: The positional words (``:logs``/``:cancel``: the run; ``:plan``: the job's words).
        self.positional: list[str] = [] if positional is None else positional
        #: Each option given, by name (``--json``): its values (a flag's: ``[""]``).
        self.options: dict[str, list[str]] = {} if options is None else options

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerbLine):
            return NotImplemented
        return (self.verb, self.positional, self.options) == (
            other.verb, other.positional, other.options)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    def __repr__(self) -> str:
        return (f"VerbLine(verb={self.verb!r}, positional={self.positional!r}, "
                f"options={self.options!r})")

    def flag(self, name: str) -> bool:
        return name in self.options

    def value(self, name: str) -> str | None:
        values = self.options.get(name)
        return values[-1] if values else None


def is_text(word: str) -> bool:
    """``word`` is text the CLI takes as it is (no NUL, no byte that was not UTF-8)."""
    if "\x00" in word:
        return False
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_verb(words: Sequence[str]) -> VerbLine | None:
    """The verb command line ``words`` (after flwd's global options) is, or None when it
    is not one a server answers (see the module docstring)."""
    if not words or words[0] not in VERBS or not all(is_text(word) for word in words):
        return None
    verb, rest = words[0], list(words[1:])
    if any(word.partition("=")[0] in _CYCLOPTS_OWN for word in rest):
        return None
    if verb == ":plan":
        # Every word is the job's (cyclopts passes them on as they are).
        if not rest or rest[0].startswith("-"):
            return None
        return VerbLine(verb, rest)
    options: dict[str, list[str]] = {}
    positional: list[str] = []
    known = _OPTIONS[verb]
    index = 0
    while index < len(rest):
        word = rest[index]
        index += 1
        if not word.startswith("-"):
            positional.append(word)
            continue
        name, equals, value = word.partition("=")
        if name not in known or (name in options and name != "--arg"):
            return None
        if not known[name]:
            if equals:
                return None  # --json=false: cyclopts' to read
            options[name] = [""]
            continue
        if not equals:
            if index >= len(rest):
                return None
            value = rest[index]
            index += 1
        if not value or value.startswith("-"):
            return None
        options.setdefault(name, []).append(value)
    if len(positional) != _POSITIONALS[verb]:
        return None
    status = options.get("--status")
    if status is not None and status[0] not in STATUSES:
        return None
    limit = options.get("--limit")
    if limit is not None and not (limit[0].isascii() and limit[0].isdigit()):
        return None
    return VerbLine(verb, positional, options)
