"""Flags every job invocation accepts besides its own (sans-IO)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flwd.errors import UsageError


@dataclass(slots=True)
class CommonFlags:
    json: bool = False
    profile: str | None = None
    detach: bool = False
    debug: bool = False
    help: bool = False


_BOOLEAN = {"--json": "json", "--detach": "detach", "--debug": "debug",
            "--help": "help", "-h": "help"}


def split_common_flags(tokens: Sequence[str]) -> tuple[CommonFlags, list[str]]:
    """Take flwd's own flags out of a job's tokens; the rest are the job's flags.

    Job arguments may not use these names (discovery refuses them), so the
    split is unambiguous.
    """
    flags = CommonFlags()
    rest: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        name, eq, value = token.partition("=")
        if name in _BOOLEAN:
            if eq and name != "-h":
                lowered = value.lower()
                if lowered not in ("true", "false", "yes", "no", "1", "0"):
                    raise UsageError(f"{name} takes no value (got '{value}')")
                setattr(flags, _BOOLEAN[name], lowered in ("true", "yes", "1"))
            else:
                setattr(flags, _BOOLEAN[name], True)
        elif name == "--profile":
            if eq:
                if not value:
                    raise UsageError("--profile needs a value",
                                     hint="use --profile secure|permissive|disabled")
                flags.profile = value
            elif index + 1 < len(tokens) and not tokens[index + 1].startswith("-"):
                index += 1
                flags.profile = tokens[index]
            else:
                raise UsageError("--profile needs a value",
                                 hint="use --profile secure|permissive|disabled")
        else:
            rest.append(token)
        index += 1
    return flags, rest
