"""Exceptions of the actor runtime; each one names a state, not a mechanism."""

from __future__ import annotations

__all__ = [
    "ActorStopped",
    "ChildNotFound",
    "DuplicateChildName",
    "RestartIntensityExceeded",
    "TooManyChildren",
]


class ActorStopped(Exception):
    """The actor behind a ref no longer accepts messages or will never reply.

    Raised to callers of :meth:`ActorRef.call` and :meth:`ActorRef.cast` when the
    actor's inbox is closed, or when the actor exited (returned, crashed or was
    cancelled) before replying. If the actor crashed, the crash is ``__cause__``.

    Attributes:
      name: the name of the actor (or supervised child) that stopped.
    """

    def __init__(self, name: str, reason: str = "has stopped") -> None:
        super().__init__(f"actor {name!r} {reason}")
        self.name = name


class RestartIntensityExceeded(Exception):
    """A supervisor gave up: its children restarted too often in its window.

    The supervisor stops its remaining children in reverse start order and
    raises this out of its ``run``, so that its own parent decides what happens
    next. The last crash of the child (if any) is ``__cause__``.
    """

    def __init__(self, supervisor_name: str, child_name: str) -> None:
        super().__init__(
            f"supervisor {supervisor_name!r} gave up restarting child {child_name!r}: "
            "restart intensity exceeded"
        )
        self.supervisor_name = supervisor_name
        self.child_name = child_name


class TooManyChildren(Exception):
    """A dynamic supervisor refused a child because it is at ``max_children``."""

    def __init__(self, supervisor_name: str, limit: int) -> None:
        super().__init__(f"supervisor {supervisor_name!r} already runs {limit} children")
        self.supervisor_name = supervisor_name
        self.limit = limit


class ChildNotFound(LookupError):
    """No child of that name is supervised (any more)."""

    def __init__(self, supervisor_name: str, child_name: str) -> None:
        super().__init__(f"supervisor {supervisor_name!r} has no child {child_name!r}")
        self.supervisor_name = supervisor_name
        self.child_name = child_name


class DuplicateChildName(ValueError):
    """A child of that name is already supervised."""

    def __init__(self, supervisor_name: str, child_name: str) -> None:
        super().__init__(f"supervisor {supervisor_name!r} already has a child {child_name!r}")
        self.supervisor_name = supervisor_name
        self.child_name = child_name
