"""The CLI's exit statuses, and the one a run's end gives (stdlib only: the thin client
exits with them before anything else of flwd is imported)."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


def exit_status(status: str, canceled_by_sigterm: bool = False) -> int:
    """The CLI's exit status for a run that ended ``status`` (a live run and ``:logs --follow``)."""
    if status == "completed":
        return EXIT_OK
    if status == "canceled":
        return EXIT_SIGTERM if canceled_by_sigterm else EXIT_SIGINT
    return EXIT_FAILED
