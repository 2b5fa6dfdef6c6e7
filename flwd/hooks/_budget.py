"""How many refused requests are journaled (sans-IO: the caller gives the clock).

Every refusal is counted in the metrics, but each journaled ``hook.rejected`` is a
row of the Core DB that no retention removes (it belongs to no run): anyone who can
reach the server could otherwise grow the database at the rate they send forged
requests. So each hook journals at most ``per_minute`` refusals a minute; the ones
left out are counted, and the next refusal journaled says how many (``suppressed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

#: Refusals journaled per hook and minute (a sender's misconfiguration shows at once;
#: a flood costs at most this many rows a minute).
PER_MINUTE: Final = 30
#: Hooks tracked at once (they are the configured ones, so this is only a bound).
MAX_TRACKED: Final = 4096


@dataclass(slots=True)
class _Window:
    started: float
    used: int = 0
    suppressed: int = 0


@dataclass(slots=True)
class RejectionBudget:
    """Per-hook allowance of journaled refusals, in fixed one-minute windows."""

    per_minute: int = PER_MINUTE
    _windows: dict[str, _Window] = field(default_factory=dict)

    def take(self, hook: str, now: float) -> int | None:
        """None: do not journal this refusal (it is counted as suppressed). Otherwise
        journal it, saying that this many earlier ones were not."""
        window = self._windows.get(hook)
        if window is None or now - window.started >= 60.0 or now < window.started:
            suppressed = window.suppressed if window is not None else 0
            if window is None and len(self._windows) >= MAX_TRACKED:
                self._windows.clear()
            window = self._windows[hook] = _Window(now, suppressed=suppressed)
        if window.used >= self.per_minute:
            window.suppressed += 1
            return None
        window.used += 1
        suppressed, window.suppressed = window.suppressed, 0
        return suppressed
