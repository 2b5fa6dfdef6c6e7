"""Restart policy, restart intensity and backoff: pure arithmetic, no trio.

Times are plain floats (the supervisor feeds it ``trio.current_time()``), and
randomness is passed in, so everything here is unit-tested without an event loop.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

__all__ = ["Backoff", "BackoffSchedule", "RestartPolicy", "RestartWindow"]


class RestartPolicy(enum.Enum):
    """When a supervised child is started again after it exits."""

    #: Always restarted, whether it crashed or returned.
    PERMANENT = "permanent"
    #: Restarted only if it crashed (raised an exception).
    TRANSIENT = "transient"
    #: Never restarted; its exit is a result, not a failure of the tree.
    TEMPORARY = "temporary"

    def should_restart(self, *, crashed: bool) -> bool:
        """Whether a child that exited (``crashed`` or returned) is started again."""
        if self is RestartPolicy.PERMANENT:
            return True
        if self is RestartPolicy.TRANSIENT:
            return crashed
        return False


class RestartWindow:
    """At most ``max_restarts`` restarts within any ``max_seconds``; then give up.

    Like OTP's restart intensity: the restart that would be number
    ``max_restarts + 1`` inside the sliding window is refused.
    """

    __slots__ = ("_times", "max_restarts", "max_seconds")

    def __init__(self, max_restarts: int, max_seconds: float) -> None:
        if max_restarts < 0 or max_seconds <= 0:
            raise ValueError("max_restarts must be >= 0 and max_seconds > 0")
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self._times: deque[float] = deque()

    def restarts_in_window(self, now: float) -> int:
        """How many restarts happened in the ``max_seconds`` before ``now``."""
        self._forget_before(now)
        return len(self._times)

    def try_record(self, now: float) -> bool:
        """Record a restart at ``now`` if the intensity allows it.

        Returns:
          ``True`` if the restart may go ahead, ``False`` if it would exceed the
          intensity (then nothing is recorded).
        """
        self._forget_before(now)
        if len(self._times) >= self.max_restarts:
            return False
        self._times.append(now)
        return True

    def _forget_before(self, now: float) -> None:
        horizon = now - self.max_seconds
        while self._times and self._times[0] <= horizon:
            self._times.popleft()


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff: ``min(cap, base * 2**attempt) * jitter``."""

    base: float = 0.1
    cap: float = 5.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("backoff base and cap must be >= 0")

    def delay(self, attempt: int, jitter: float) -> float:
        """The delay before restart number ``attempt`` (0 for the first).

        ``jitter`` is a factor in ``[0.5, 1.0]``, usually ``random.uniform(0.5, 1.0)``,
        so that children crashing together do not restart in lockstep.
        """
        if not 0.5 <= jitter <= 1.0:
            raise ValueError(f"jitter must be within [0.5, 1.0], not {jitter!r}")
        # Past 2**64 the cap has long been reached; this also avoids OverflowError.
        exponent = min(max(attempt, 0), 64)
        return min(self.cap, self.base * 2.0**exponent) * jitter


class BackoffSchedule:
    """The backoff attempts of one child, reset once an incarnation was stable."""

    __slots__ = ("attempt", "backoff", "stable_after")

    def __init__(self, backoff: Backoff, stable_after: float) -> None:
        self.backoff = backoff
        self.stable_after = stable_after
        self.attempt = 0

    def next_delay(self, uptime: float, jitter: float) -> float:
        """The delay before the next restart of a child that ran for ``uptime`` seconds."""
        if uptime >= self.stable_after:
            self.attempt = 0
        delay = self.backoff.delay(self.attempt, jitter)
        self.attempt += 1
        return delay
