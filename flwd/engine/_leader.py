"""The scheduler's leader lease: on a Core DB shared by several servers, one fires.

**A lease row, not an advisory lock.** ``pg_try_advisory_lock`` on a session would be
released by the server as soon as the holder's connection closes, but a holder cut off
by the network (a partition, a frozen VM) keeps it until the server notices the dead
TCP connection — minutes or hours with default keepalives — and the holder itself
cannot tell how long it still holds it. It also needs a session of its own through the
whole lease (no PgBouncer in transaction mode). A lease row with an expiry on the
database's clock (``flwd.store``'s ``lease_take``) bounds both sides: the holder knows
a deadline on its own monotonic clock — the time it *sent* its last successful renewal
plus a part of the lease (:data:`SAFE_PART`), which ends before the row's expiry
whatever the network delayed — and stops firing at that deadline even if its renewal
hangs; any other server takes the row over once it has lapsed, so a dead or cut-off
leader is replaced within ``ttl + ttl / RENEWALS`` seconds. A leader that stops
gracefully lets its lease lapse at once (``lease_release``).

Two leaders never overlap while the clocks run at the same rate; if they did (a clock
running fast by more than ``1 - SAFE_PART``), a fire would still start once: its run's
trigger key is unique in the Core DB (``TriggerAlreadyFired``).

:class:`LeaseTerm` is the timing, sans-IO; :class:`LeaderLease` keeps the lease in a
task. On SQLite (one server per data dir) there is no lease: the scheduler always fires.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Final

import trio

from flwd.errors import StorageError, UsageError
from flwd.store import Store

__all__ = ["LEASE_ENV", "LEASE_TTL", "RENEWALS", "SAFE_PART", "LeaderLease", "LeaseTerm",
           "lease_ttl"]

_log = logging.getLogger("flwd.schedule")

#: Seconds a leader's lease lasts without a renewal (the bound on a takeover).
LEASE_TTL: Final = 10.0
#: Renewals per lease: a leader renews every ``ttl / RENEWALS`` seconds.
RENEWALS: Final = 3
#: The part of the lease a holder counts on after sending a renewal (the rest is a
#: margin for clocks running at slightly different rates).
SAFE_PART: Final = 0.8
#: The environment variable that sets the lease's seconds (tests; very slow networks).
LEASE_ENV: Final = "FLWD_SCHEDULER_LEASE"


def lease_ttl(environ: dict[str, str] | None = None) -> float:
    """The lease's seconds: ``FLWD_SCHEDULER_LEASE`` if set, else :data:`LEASE_TTL`.

    Raises:
        UsageError: not a number of seconds between 1 and 3600.
    """
    text = (os.environ if environ is None else environ).get(LEASE_ENV, "").strip()
    if not text:
        return LEASE_TTL
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 1.0 <= value <= 3600.0:
        raise UsageError(f"{LEASE_ENV}={text[:20]!r} is not a number of seconds from 1 to 3600",
                         hint=f"unset it for the default ({LEASE_TTL:g} s)")
    return value


@dataclass
class LeaseTerm:
    """When a lease is surely held, and when to renew or try again (sans-IO; times on one
    monotonic clock)."""

    ttl: float
    #: Held while the clock is before this (``-inf``: not held).
    until: float = -math.inf

    def leading(self, now: float) -> bool:
        return now < self.until

    def granted(self, sent: float) -> None:
        """The take or renewal sent at ``sent`` succeeded."""
        self.until = sent + self.ttl * SAFE_PART

    def refused(self) -> None:
        """Another holder has it (or the Core DB could not be asked): not held."""
        self.until = -math.inf

    def next_attempt(self, sent: float) -> float:
        """When to renew (held) or try again (not held) after an attempt sent at ``sent``."""
        return sent + self.ttl / RENEWALS

    def give_up_at(self, sent: float) -> float:
        """How long an attempt may take: while held, until the lease ends (then it is lost
        whatever the answer); else one renewal period."""
        return self.until if self.leading(sent) else sent + self.ttl / RENEWALS


def holder_name() -> str:
    """Who holds a lease: this host and process, and a nonce (a pid is reused)."""
    return f"{socket.gethostname()[:64]}/{os.getpid()}/{secrets.token_hex(4)}"


class LeaderLease:
    """Keeps lease ``name`` of ``store`` while :meth:`run` runs; :attr:`leading` says if it
    is held now. ``on_change`` is called (in trio, synchronously) when it is gained or
    lost by an answer of the Core DB."""

    def __init__(self, store: Store, name: str, *, ttl: float = LEASE_TTL,
                 holder: str | None = None, on_change: Callable[[], None] | None = None
                 ) -> None:
        self.store = store
        self.name = name
        self.holder = holder or holder_name()
        self.term = LeaseTerm(ttl)
        self.on_change = on_change
        #: Times the lease was gained in this process (tests and logs read it).
        self.gained = 0
        #: Gained as this process started (see ``Leader.at_start``), not by a takeover.
        self.at_start = False
        self._started_at: float | None = None

    @property
    def leading(self) -> bool:
        """The lease is held now (its deadline on trio's clock has not passed)."""
        return self.term.leading(trio.current_time())

    async def run(self) -> None:
        """Take the lease, renew it while held, try again while another holds it; let it
        lapse on the way out. Never returns by itself.

        Cancellation: stops at once; the lease is released (shielded, at most a few
        seconds) if held, so another server takes over without waiting for its expiry.
        A renewal under way when its deadline passes is abandoned in its thread (the
        lease counts as lost).
        """
        self._started_at = trio.current_time()
        try:
            while True:
                sent = trio.current_time()
                await self._attempt(sent)
                await trio.sleep_until(self.term.next_attempt(sent))
        finally:
            if self.leading:
                self.term.refused()
                with trio.move_on_after(5) as scope:
                    scope.shield = True
                    try:
                        await trio.to_thread.run_sync(
                            self.store.lease_release, self.name, self.holder,
                            abandon_on_cancel=True)
                    except StorageError:
                        pass  # it lapses by itself

    async def _attempt(self, sent: float) -> None:
        was = self.term.leading(sent)
        epoch: int | None = None
        with trio.move_on_at(self.term.give_up_at(sent)):
            try:
                epoch = await trio.to_thread.run_sync(
                    partial(self.store.lease_take, self.name, self.holder, self.term.ttl),
                    abandon_on_cancel=True)
            except StorageError as exc:
                if was:
                    _log.warning("scheduler: cannot renew the leader lease, firing stops: %s",
                                 exc.one_line())
        if epoch is None:
            self.term.refused()
        else:
            self.term.granted(sent)
        now = self.term.leading(trio.current_time())
        if now != was:
            if now:
                self.gained += 1
                # Within a lease of its start (a dead holder's lease may have had to
                # lapse first: a cluster restarted after a crash); a healthy leader
                # renews, so a server started beside one does not get here in time.
                self.at_start = self.gained == 1 and self._started_at is not None and (
                    sent - self._started_at <= self.term.ttl * (1 + 2 / RENEWALS))
            _log.info("scheduler: %s the leader lease %s", "took" if now else "lost",
                      self.name, extra={"fields": {"holder": self.holder, "epoch": epoch}})
            if self.on_change is not None:
                self.on_change()
