"""When a schedule fires: a cron expression, ``@every N``, one ``at:`` instant, ``@reboot``.

Every fire time is an instant (Unix seconds, whole seconds); a zone only matters to
a cron expression, whose fields are read on the zone's wall clock. Cron arithmetic is
cronsim's (never parsed here); this module only guarantees what the scheduler
relies on: :meth:`When.after` is strictly increasing, so a fire is never handed out
twice, whatever a zone's clock does.

**Daylight saving time** follows Debian cron, which cronsim implements for a
5-field expression whose minute and hour are both fixed (``30 2 * * *``): a wall
time that does not exist on a spring-forward day fires once, right after the gap
(02:30 → 03:00 in Europe/Berlin), and a wall time that happens twice on a
fall-back day fires once (the first time). An expression with a wildcard in its
minute or hour (``0 * * * *``, ``*/15 2 * * *``, ``@hourly``) follows the clock as
it is: it fires at each real instant its fields match (so an hourly job fires 23
times on a spring-forward day and 25 on a fall-back day, once per real hour).

Sans-IO: nothing here reads files or clocks.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Final, Protocol

from cronsim import CronSim, CronSimError

from flwd.events import parse_ts

__all__ = ["At", "Cron", "Every", "Reboot", "When", "parse_at", "parse_when"]

#: Reads a duration (``90s``, ``1h30m``) into seconds, or raises ValueError.
DurationParser = Callable[[str], float]

#: The ``@`` shorthands Debian cron knows, as the expressions they stand for.
MACROS: Final = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS: Final = ("minute", "hour", "day of month", "month", "day of week")
#: An expression longer than this is not a cron expression anyone wrote.
_MAX_TEXT: Final = 200
#: Cron fires counted one by one at most (a minute's cron over ten weeks); a region
#: with more is not counted, and its newest fires are found walking back from its end.
SCAN_LIMIT: Final = 100_000


class When(Protocol):
    """The fire times of a schedule."""

    @property
    def text(self) -> str:
        """As written in the config (``30 2 * * 1-5``, ``@every 90s``…)."""

    def after(self, instant: float, zone: tzinfo) -> float | None:
        """The first fire strictly after ``instant``; None when it never fires again."""

    def newest(self, low: float, high: float, zone: tzinfo, keep: int
               ) -> tuple[list[float], int | None]:
        """The ``keep`` newest fires ``t`` with ``low < t < high`` (oldest first), and how
        many there are in all (None: more than :data:`SCAN_LIMIT`, not counted)."""


@dataclass(frozen=True, slots=True)
class Cron:
    """A 5-field cron expression (or a macro), read on the schedule zone's wall clock."""

    text: str
    #: The expression cronsim evaluates (a macro expanded).
    expression: str

    def after(self, instant: float, zone: tzinfo) -> float | None:
        return next(self.iterate(instant, zone), None)

    def iterate(self, instant: float, zone: tzinfo) -> Iterator[float]:
        """Every fire strictly after ``instant``, in order."""
        start = datetime.fromtimestamp(math.floor(instant), zone)
        last = instant
        # The loop ends when cronsim finds no match within 50 years: no more fires.
        for moment in CronSim(self.expression, start):
            fire = moment.timestamp()
            # cronsim walks a fixed-time expression on the naive wall clock: after an
            # instant in the second half of a repeated hour it can name a time of the
            # first half again. Never hand out a time twice.
            if fire > last:
                last = fire
                yield fire

    def newest(self, low: float, high: float, zone: tzinfo, keep: int
               ) -> tuple[list[float], int | None]:
        kept: deque[float] = deque(maxlen=keep)
        count = 0
        for fire in self.iterate(low, zone):
            if fire >= high:
                return list(kept), count
            count += 1
            kept.append(fire)
            if count >= SCAN_LIMIT:
                return self._newest_back(low, high, zone, keep), None
        return list(kept), count

    def _newest_back(self, low: float, high: float, zone: tzinfo, keep: int) -> list[float]:
        found: list[float] = []
        if keep <= 0:
            return found
        for moment in CronSim(self.expression, datetime.fromtimestamp(math.ceil(high), zone),
                              reverse=True):
            fire = moment.timestamp()
            if fire <= low:
                break
            if fire < high and (not found or fire < found[-1]):
                found.append(fire)
                if len(found) >= keep:
                    break
        return found[::-1]


@dataclass(frozen=True, slots=True)
class Every:
    """``@every 90s``: every ``seconds``, at the multiples of it since the Unix epoch (so
    every server and every restart agrees on the fire times)."""

    text: str
    seconds: int

    def after(self, instant: float, zone: tzinfo) -> float | None:
        return float((math.floor(instant / self.seconds) + 1) * self.seconds)

    def newest(self, low: float, high: float, zone: tzinfo, keep: int
               ) -> tuple[list[float], int | None]:
        first = self.after(low, zone)
        assert first is not None
        if first >= high:
            return [], 0
        count = math.ceil((high - first) / self.seconds)
        last = first + (count - 1) * self.seconds
        shown = min(keep, count)
        return [last - (shown - 1 - index) * self.seconds for index in range(shown)], count


@dataclass(frozen=True, slots=True)
class At:
    """``at: 2027-01-01T09:00:00+01:00``: once."""

    text: str
    instant: float

    def after(self, instant: float, zone: tzinfo) -> float | None:
        return self.instant if self.instant > instant else None

    def newest(self, low: float, high: float, zone: tzinfo, keep: int
               ) -> tuple[list[float], int | None]:
        inside = low < self.instant < high
        return ([self.instant] if inside and keep > 0 else []), int(inside)


@dataclass(frozen=True, slots=True)
class Reboot:
    """``@reboot``: once each time ``flwd :serve`` starts (no fire time of its own)."""

    text: str = "@reboot"

    def after(self, instant: float, zone: tzinfo) -> float | None:
        return None

    def newest(self, low: float, high: float, zone: tzinfo, keep: int
               ) -> tuple[list[float], int | None]:
        return [], 0


def parse_when(text: str, *, parse_seconds: DurationParser) -> Cron | Every | Reboot:
    """The schedule a ``cron:`` value describes.

    ``parse_seconds`` reads the duration of ``@every`` (the jobs config's own
    duration syntax: ``90s``, ``5m``, ``1h30m``).

    Raises:
        ValueError: not 5 cron fields, a bad field (named), an expression that never
            fires, an unknown ``@`` word, or an ``@every`` that is not a whole number
            of seconds of at least 1.
    """
    written = text.strip()
    if not written:
        raise ValueError("is empty: write 5 cron fields like '30 2 * * 1-5', or @daily, "
                         "@every 90s, @reboot")
    if len(written) > _MAX_TEXT:
        raise ValueError(f"is longer than {_MAX_TEXT} characters")
    word = written.split()[0].lower()
    if word == "@reboot" and written.lower() == "@reboot":
        return Reboot(written)
    if word == "@every":
        return Every(written, _every_seconds(written[len("@every"):].strip(), parse_seconds))
    if written.startswith("@"):
        if written.lower() not in MACROS:
            known = ", ".join([*MACROS, "@every <duration>", "@reboot"])
            raise ValueError(f"{written!r} is not a cron shorthand (known: {known})")
        return _cron(written, MACROS[written.lower()])
    return _cron(written, " ".join(written.split()))


def _every_seconds(duration: str, parse_seconds: DurationParser) -> int:
    if not duration:
        raise ValueError("@every needs a duration, like '@every 90s' or '@every 1h'")
    try:
        seconds = parse_seconds(duration)
    except ValueError as exc:
        raise ValueError(f"@every {duration}: {exc}") from None
    if seconds < 1 or seconds != int(seconds):
        raise ValueError(f"@every {duration}: must be a whole number of seconds, at least 1s")
    return int(seconds)


def _cron(text: str, expression: str) -> Cron:
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"{text!r} has {len(fields)} fields; a cron expression has 5 "
                         "(minute hour day-of-month month day-of-week)")
    probe = datetime(2000, 1, 1, tzinfo=UTC)
    try:
        simulated = CronSim(expression, probe)
    except CronSimError as exc:
        raise ValueError(f"{text!r}: {_field_message(str(exc))}") from None
    try:
        next(simulated)
    except StopIteration:
        raise ValueError(f"{text!r} never fires (no date matches it)") from None
    return Cron(text, expression)


def _field_message(message: str) -> str:
    # cronsim says "Bad day-of-month"; name the field as the 5-field form counts it.
    lowered = message.lower()
    for position, name in enumerate(_FIELDS, start=1):
        if name.replace(" ", "-") in lowered:
            return f"bad {name} (field {position})"
    return lowered or "not a cron expression"


def parse_at(text: str) -> At:
    """The instant an ``at:`` value names: RFC 3339 with an offset or ``Z``, whole seconds.

    Raises:
        ValueError: not such a date-time (the message shows one).
    """
    written = text.strip()
    try:
        instant = parse_ts(written)
    except ValueError:
        raise ValueError(f"{written!r} is not an RFC 3339 date-time with an offset: write "
                         "e.g. 2027-01-01T09:00:00+01:00 or 2027-01-01T08:00:00Z") from None
    if instant != math.floor(instant):
        raise ValueError(f"{written!r}: a schedule fires on whole seconds; drop the fraction")
    return At(written, instant)
