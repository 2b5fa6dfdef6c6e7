"""Did-you-mean suggestions shared by config warnings, job lookup and flag parsing.

Every "unknown X" message in this package ends with the same kind of hint, so
the wording lives here once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, candidates: Iterable[str], *, n: int = 3) -> list[str]:
    """Candidates that look like ``word``, best first, compared case-insensitively.

    The original spelling of each candidate is returned, so a hint shows what
    the user should actually type.
    """
    by_folded: dict[str, str] = {}
    for candidate in candidates:
        by_folded.setdefault(candidate.casefold(), candidate)
    matches = difflib.get_close_matches(word.casefold(), list(by_folded), n=n, cutoff=0.6)
    return [by_folded[match] for match in matches]


def quoted_choice(items: list[str]) -> str:
    """``'a'``, ``'a' or 'b'``, ``'a', 'b' or 'c'``."""
    quoted = [f"'{item}'" for item in items]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` when something is close to ``word``, else ``None``."""
    matches = close_matches(word, candidates)
    if not matches:
        return None
    return f"did you mean {quoted_choice(matches)}?"
