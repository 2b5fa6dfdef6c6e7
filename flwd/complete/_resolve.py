"""The completion engine (sans-IO): the words typed after ``flwd`` → candidates.

Reference §14.1, with the refinements a port is asked for:

- a standalone ``--`` in the prefix is dropped (``alpha deploy -- --e`` and
  ``alpha deploy --e`` are the same question);
- only leaf jobs and aliases count as jobs: after a group word the candidates
  are its children (the reference's CODE bug offered flags there);
- ``:verbs`` are offered only when the current word starts with ``:``.

Beyond the reference: words may be dotted like on the command line
(``examples.f`` → ``examples.fail``), ``--flag=pre`` completes the value in
place, a flag already given is not offered again unless it repeats, the global
options in front of the command are understood, and the operands and flags of
flwd's own verbs are completed too.

The last token is the word being completed (``""`` after a space); the others
are the prefix. Matching is case-insensitive by prefix; candidates are sorted.
"""

from __future__ import annotations

import marshal

from ._argv import split_globals
from ._index import empty_node
from ._verbs import (
    BOOLEAN,
    GLOBAL_FLAGS,
    JOB_FLAGS,
    JOB_IDS,
    JOB_OPERAND,
    PATHS,
    PLAIN_VERBS,
    SUBCOMMANDS,
    VERBS,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._index import Index, JobFlags, Node
    from ._protocol import Candidate
    from ._verbs import Flag, Verb

_EMPTY_ROOT = empty_node("root")


def complete(index: Index | None, tokens: Sequence[str]) -> list[Candidate]:
    """The candidates for the last of ``tokens`` (the words after ``flwd``).

    ``index`` is the workspace's job index; None completes flwd's own verbs only.
    """
    current = tokens[-1] if tokens else ""
    prefix = list(tokens[:-1])
    _values, end, pending = split_globals(prefix)
    if pending is not None:
        return []  # a directory or a URL: nothing to offer
    words = [token for token in prefix[end:] if token != "--"]
    tree = index["tree"] if index is not None else _EMPTY_ROOT
    jobs = index["jobs"] if index is not None else {}
    if not words:
        if current.startswith("-"):
            return _flag_candidates((), GLOBAL_FLAGS, current, prefix[:end], jobs)
        return _first_word(tree, current)
    name = words[0].casefold()
    verb = VERBS.get(name)
    if verb is not None and name in SUBCOMMANDS and len(words) > 1:
        verb = SUBCOMMANDS[name].get(words[1].casefold())
        if verb is None:
            return []
        return _verb_line(verb, tree, jobs, words[2:], current)
    if verb is not None:
        return _verb_line(verb, tree, jobs, words[1:], current)
    return _job_line(tree, jobs, words, current, JOB_FLAGS)


def _first_word(tree: Node, current: str) -> list[Candidate]:
    """Top-level segments, aliases and built-in verbs; ``:verbs`` after a ``:``."""
    if current.startswith(":"):
        folded = current.casefold()
        return [(name, verb[0], "segment") for name, verb in sorted(VERBS.items())
                if name.startswith(":") and name.startswith(folded)]
    found = _segments(tree, current)
    if "." not in current:
        folded = current.casefold()
        verbs = [(name, VERBS[name][0], "segment") for name in PLAIN_VERBS
                 if name.startswith(folded)]
        if verbs:
            # The verb wins over a job of the same name, as on the command line.
            found = sorted([c for c in found if c[0].casefold() not in PLAIN_VERBS] + verbs,
                           key=lambda c: (c[0].casefold(), c[0]))
    return found


def _segments(node: Node, current: str) -> list[Candidate]:
    """The children of ``node`` matching ``current``; a dotted word walks first."""
    if "/" in current and node["kind"] == "root":
        return _slashed(node, current)
    head, dot, tail = current.rpartition(".")
    folded = tail.casefold()
    found: list[Candidate] = []
    if dot:
        parent = _descend(node, head)
        if parent is not None and parent["kind"] != "alias":
            found = [(f"{head}.{insert}", display, "segment")
                     for fold, insert, display in parent["listing"]
                     if fold.startswith(folded) and parent["kids"][fold]["kind"] != "alias"]
        # Alias names may contain dots: they are matched whole.
        whole = current.casefold()
        found += [(insert, display, "segment") for fold, insert, display in node["listing"]
                  if node["kids"][fold]["kind"] == "alias" and fold.startswith(whole)]
        return sorted(found, key=lambda c: (c[0].casefold(), c[0]))
    return [(insert, display, "segment") for fold, insert, display in node["listing"]
            if fold.startswith(folded)]


def _slashed(root: Node, current: str) -> list[Candidate]:
    """A word with ``/``, the form the README and ``flwd :jobs`` use for a source's jobs.

    ``tools/`` and ``tools/li`` complete inside the source ``tools`` (inserts
    ``tools/lint``, and ``tools/lint.go`` deeper down, as the command line accepts
    them). Before a local group the slash is a path separator the command line does
    not take (``examples/f`` is "unknown job"), so the word completes to the job id
    it means, with dots: ``examples.fail``.
    """
    head, _slash, tail = current.partition("/")
    tail = tail.replace("/", ".")
    parent = root["kids"].get(head.casefold())
    if parent is None or parent["kind"] == "alias":
        return []
    if parent["kind"] != "source":
        return _segments(root, f"{head}.{tail}")
    name = next(insert for fold, insert, _display in root["listing"]
                if fold == head.casefold())
    return [(f"{name}/{insert}", display, kind)
            for insert, display, kind in _segments(parent, tail)]


def _descend(node: Node, word: str) -> Node | None:
    """The node a (possibly dotted) word names below ``node``, or None."""
    whole = node["kids"].get(word.casefold())
    if whole is not None:
        return whole
    source, slash, local = word.partition("/")  # a source's job: ``tools/lint.go``
    parts = [source, *local.split(".")] if slash else word.split(".")
    for part in parts:
        child = node["kids"].get(part.casefold())
        if child is None:
            return None
        node = child
    return node


def _job_line(tree: Node, jobs: dict[str, bytes], words: list[str], current: str,
              common: tuple[Flag, ...]) -> list[Candidate]:
    """``JOB [FLAGS]``: walk the job words, then offer segments, flags or values."""
    node = tree
    consumed = 0
    for word in words:
        if word.startswith("-"):
            break
        child = _descend(node, word)
        if child is None:
            break  # an unknown word ends the walk; the context is what was found
        node, consumed = child, consumed + 1
    rest = words[consumed:]
    is_job = node["kind"] in ("job", "alias")
    packed = jobs.get(node["job"]) if is_job else None
    own: JobFlags | None = marshal.loads(packed) if packed is not None else None
    own_flags = own["flags"] if own is not None else []
    if not is_job:
        common = ()
    if rest and _is_pending(rest[-1], current):
        return _value_candidates(own, common, rest[-1], current, "", jobs)
    if current.startswith("-"):
        name, equals, partial = current.partition("=")
        if equals and name.startswith("--"):
            return _value_candidates(own, common, name, partial, name + "=", jobs)
        return _flag_candidates(own_flags, common, current, _given(own, rest), jobs)
    if is_job and not (node["kids"] and consumed == len(words)):
        # A leaf job or an alias; a job that is also a group lists its children
        # until a flag has been typed.
        return _flag_candidates(own_flags, common, current, _given(own, rest), jobs)
    return _segments(node, current)


def _verb_line(verb: Verb, tree: Node, jobs: dict[str, bytes], words: list[str],
               current: str) -> list[Candidate]:
    """The operands and flags of one of flwd's own verbs."""
    _description, flags, operands = verb
    if operands and operands[0] is JOB_OPERAND:
        return _job_line(tree, jobs, words, current, flags)
    if words and _is_pending(words[-1], current):
        return _value_candidates(None, flags, words[-1], current, "", jobs)
    if current.startswith("-"):
        name, equals, partial = current.partition("=")
        if equals and name.startswith("--"):
            return _value_candidates(None, flags, name, partial, name + "=", jobs)
        return _flag_candidates((), flags, current, words, jobs)
    given = _operand_count(words, flags)
    if given < len(operands):
        folded = current.casefold()
        return [(choice, choice, "value") for choice in operands[given]
                if choice.casefold().startswith(folded)]
    return _flag_candidates((), flags, current, words, jobs)


def _is_pending(token: str, current: str) -> bool:
    """Whether ``token``, the last of the prefix, is a flag still waiting for its value.

    A current word starting with ``-`` is a flag, not a value (the job flag parser
    reads it so too): ``--fix --j`` completes ``--json``.
    """
    return (token.startswith("-") and token != "-" and "=" not in token
            and not current.startswith("-"))


def _operand_count(words: list[str], flags: tuple[Flag, ...]) -> int:
    """How many operands ``words`` holds (a valued flag's value is not one)."""
    count = 0
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word.startswith("-"):
            flag = _lookup((), flags, word)
            skip = "=" not in word and flag is not None and flag[2] != BOOLEAN
        else:
            count += 1
    return count


def _lookup(own: Sequence[Flag] | JobFlags | None, common: tuple[Flag, ...],
            token: str) -> Flag | None:
    """The flag a token names (``--env``, ``--env=x``, ``--secret-token``, ``-h``)."""
    name = token.lstrip("-").partition("=")[0].casefold()
    if token == "-h":
        name = "help"
    if isinstance(own, dict):
        index = own["spellings"].get(name)
        if index is not None:
            return own["flags"][index]
    for flag in common:
        if flag[0] == name:
            return flag
    return None


def _value_candidates(own: JobFlags | None, common: tuple[Flag, ...], token: str,
                      partial: str, inline: str, jobs: dict[str, bytes]) -> list[Candidate]:
    """The values of the flag ``token`` matching ``partial``; ``inline`` prefixes inserts."""
    flag = _lookup(own, common, token)
    if flag is None:
        return []
    values = flag[2]
    if values == PATHS:  # the shell's own file completion (see ._protocol)
        return [(inline + partial, "a file path", "file")]
    if values is JOB_IDS:
        values = tuple(sorted(jobs, key=str.casefold))
    folded = partial.casefold()
    return [(inline + value, value, "value") for value in values
            if value.casefold().startswith(folded)]


def _given(own: JobFlags | None, words: list[str]) -> list[str]:
    """``words``, plus the other form of each secret given (``--api_key`` and
    ``--api_key-file`` give one value: once one is there, neither is offered)."""
    if own is None or not own["pairs"]:
        return words
    more = []
    for word in words:
        if word.startswith("--"):
            index = own["spellings"].get(word[2:].partition("=")[0].casefold())
            if index is not None and index in own["pairs"]:
                more.append("--" + own["flags"][own["pairs"][index]][0])
    return words + more


def _flag_candidates(own: Sequence[Flag], common: tuple[Flag, ...], current: str,
                     given: list[str], jobs: dict[str, bytes]) -> list[Candidate]:
    """``--flags`` matching ``current``, but those already given that do not repeat."""
    used = {token.lstrip("-").partition("=")[0].casefold().replace("_", "-")
            for token in given if token.startswith("--")}
    folded = current.casefold()
    found: dict[str, Candidate] = {}
    for name, description, _values, repeatable in (*own, *common):
        insert = f"--{name}"
        if insert in found or not insert.casefold().startswith(folded):
            continue
        if not repeatable and name.casefold().replace("_", "-") in used:
            continue
        found[insert] = (insert, description or insert, "flag")
    return sorted(found.values(), key=lambda c: (c[0].casefold(), c[0]))
