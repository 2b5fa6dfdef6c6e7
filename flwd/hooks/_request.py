"""An inbound request as the checks see it, and why one is refused (sans-IO).

:data:`REFUSALS` is the one table from a refusal's ``reason`` to what the sender is
told: its status, title, code and a public detail. A refused signature, token or
timestamp all read the same to the sender (which one failed would help a forger);
the journal's ``hook.rejected`` event keeps the precise reason for the operator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    title: str
    code: str
    #: What the sender is told; None: the :class:`Rejected`'s own detail (a malformed
    #: request is the sender's to fix, and says nothing about a secret).
    public: str | None


_UNAUTHENTICATED: Final = ("the request could not be authenticated for this hook (a "
                           "signature, token or timestamp is missing, invalid or too old)")

#: Every reason a request to a known hook is refused, and how the sender is answered.
#: The ``reason`` is also the ``outcome`` label of ``flwd_hook_requests_total``
#: (``flwd.observe.HOOK_OUTCOMES`` lists them all).
REFUSALS: Final[dict[str, Refusal]] = {
    "ip": Refusal(403, "forbidden", "hook.forbidden",
                  "requests from this address may not trigger this hook"),
    "signature": Refusal(401, "unauthorized", "hook.unauthorized", _UNAUTHENTICATED),
    "timestamp": Refusal(401, "unauthorized", "hook.unauthorized", _UNAUTHENTICATED),
    "token": Refusal(401, "unauthorized", "hook.unauthorized", _UNAUTHENTICATED),
    "bearer": Refusal(401, "unauthorized", "unauthorized", None),
    "scope": Refusal(403, "forbidden", "forbidden", None),
    "replay": Refusal(409, "delivery already received", "hook.replay",
                      "this delivery was received before: it starts nothing again"),
    "request": Refusal(400, "invalid request", "hook.request.invalid", None),
    "too_large": Refusal(413, "request body too large", "body.too.large", None),
    "timeout": Refusal(408, "request timeout", "body.timeout", None),
    "args": Refusal(422, "argument validation failed", "E_ARGS", None),
    "refused": Refusal(422, "run refused", "hook.refused", None),
    "unavailable": Refusal(503, "hook unavailable", "hook.unavailable",
                           "the hook cannot check requests now (its secret cannot be read); "
                           "the server's log says why"),
}


class Rejected(Exception):
    """A request to a hook is refused for ``reason`` (a key of :data:`REFUSALS`).

    ``detail`` says exactly why, for the journal and the server's log: it never holds
    a secret, a signature or the body.
    """

    def __init__(self, reason: str, detail: str, *, run_id: str | None = None) -> None:
        if reason not in REFUSALS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        #: A replay's earlier run, when it is known.
        self.run_id = run_id

    @property
    def refusal(self) -> Refusal:
        return REFUSALS[self.reason]

    @property
    def public_detail(self) -> str:
        return self.refusal.public or self.detail


@dataclass(frozen=True, slots=True)
class Inbound:
    """What the checks read of a request: its headers (names in any case, each with
    every value sent), its query (first values), its body, and the peer's address."""

    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str = ""
    peer: str | None = None

    @classmethod
    def build(cls, headers: Iterable[tuple[str, str]], query: Iterable[tuple[str, str]],
              body: bytes, peer: str | None) -> Inbound:
        grouped: dict[str, list[str]] = {}
        for name, value in headers:
            grouped.setdefault(name.lower(), []).append(value)
        first: dict[str, str] = {}
        for name, value in query:
            first.setdefault(name, value)
        content_type = grouped.get("content-type", [""])[0]
        return cls({name: tuple(values) for name, values in grouped.items()}, first, body,
                   content_type.split(";")[0].strip().lower(), peer)

    def header_values(self, name: str) -> tuple[str, ...]:
        return self.headers.get(name.lower(), ())

    def single_header(self, name: str, reason: str) -> str | None:
        """The header's one value (None: not sent).

        Raises:
            Rejected: ``reason``, when it was sent more than once (which one counts?).
        """
        values = self.header_values(name)
        if len(values) > 1:
            raise Rejected(reason, f"the {name} header was sent {len(values)} times")
        return values[0].strip() if values else None
