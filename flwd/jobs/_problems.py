"""One :class:`ArgsInvalid` out of every argument problem found.

Flag parsing and binding both collect problems instead of stopping at the first,
so a user fixes a command line in one go; this module turns the list into the
error (and its one-line ``detail``) the CLI and the HTTP layer report.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArgsInvalid


@dataclass(frozen=True)
class ArgProblem:
    """One problem: ``arg`` is the argument name (or the offending token)."""

    arg: str
    message: str
    #: How the problem reads in a sentence (``--name: required``); defaults to
    #: ``<arg>: <message>``.
    line: str = ""

    def text(self) -> str:
        return self.line or f"{self.arg}: {self.message}"


def args_invalid(
    problems: list[ArgProblem], *, job_id: str | None, hint: str | None = None
) -> ArgsInvalid:
    """The error for ``problems`` (at least one), naming the first in ``detail``.

    The default hint points at the CLI help; HTTP callers pass their own.
    """
    subject = f"for job {job_id}" if job_id else ""
    count = len(problems)
    head = "invalid arguments" if count == 1 else f"{count} invalid arguments"
    detail = " ".join(part for part in (head, subject) if part) + f": {problems[0].text()}"
    if count > 1:
        detail += f" (and {count - 1} more)"
    hint = hint or (
        f"run 'flwd {job_id} --help' for its flags"
        if job_id
        else "run the job with --help for its flags"
    )
    return ArgsInvalid(
        detail,
        hint=hint,
        errors=[{"arg": problem.arg, "message": problem.message} for problem in problems],
    )
