"""Did-you-mean suggestions shared by config warnings, job lookup and flag parsing.

Every "unknown X" message in this package ends with the same kind of hint, so
the wording lives here once.
"""

from __future__ import annotations

from collections.abc import Iterable


def close_matches(word: str, candidates: Iterable[str], *, n: int = 3) -> list[str]:
    """Candidates that look like ``word``, best first, compared case-insensitively.

    The original spelling of each candidate is returned, so a hint shows what
    the user should actually type.
    """
    import difflib  # start-up: a hint is made for a mistake only

    by_folded: dict[str, str] = {}
    for candidate in candidates:
        by_folded.setdefault(candidate.casefold(), candidate)
    folded = word.casefold()
    scored = []
    for candidate in by_folded:
        matcher = difflib.SequenceMatcher(None, folded, candidate)
        if matcher.real_quick_ratio() >= 0.6 and matcher.quick_ratio() >= 0.6:
            ratio = matcher.ratio()
            if ratio >= 0.6:
                scored.append((ratio, candidate))
    if not scored:
        return []
    scored.sort(key=lambda item: (-item[0], item[1]))
    # Only near-ties of the best match: "min_length" suggests "minLength", not
    # also "maxLength".
    best = scored[0][0]
    return [by_folded[candidate] for ratio, candidate in scored[:n] if ratio >= best - 0.1]


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
