"""What a hook is once its definition has been checked (sans-IO).

A :class:`Hook` names the job it runs, how a request becomes the job's arguments
(:class:`ArgSource`), and how a request proves where it comes from (:class:`HookAuth`).
Secrets are never held here: a :class:`SecretRef` says where to read one (a file, an
environment variable) when a request needs it, so nothing that lists, logs or
journals a hook can show a secret.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Final, Literal

#: Where a hook's delivery id is looked for when its definition names no
#: ``delivery_header``: GitHub's, GitLab's, and Standard Webhooks' (``webhook-id``).
DELIVERY_HEADERS: Final = ("X-GitHub-Delivery", "X-Gitlab-Event-UUID", "Webhook-Id")
#: The scope a bearer token needs to trigger a hook.
TRIGGER_SCOPE: Final = "hooks:trigger"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a shared secret is read from: a file (an absolute path once resolved) or an
    environment variable of the server. Never the secret itself."""

    kind: Literal["file", "env"]
    where: str
    #: ``text``: the secret is the text's bytes; ``base64``: it is what the text decodes
    #: to (Standard Webhooks' ``whsec_…`` secrets, the prefix left out).
    encoding: Literal["text", "base64"] = "text"

    def __str__(self) -> str:
        return f"secret_file {self.where}" if self.kind == "file" else f"secret_env {self.where}"


@dataclass(frozen=True, slots=True)
class HmacAuth:
    """An HMAC of the body (and, when signed, a timestamp and the delivery id) in a header.

    ``template`` is how the header writes a signature (``sha256={hex}``, ``v0={hex}``,
    ``v1,{base64}``); ``stripe`` is Stripe's ``t=<time>,v1=<hex>[,v1=<hex>…]``.
    ``payload`` is what is signed (``{body}``, ``{timestamp}.{body}``,
    ``{delivery}.{timestamp}.{body}``).
    """

    secret: SecretRef
    header: str = "X-Hub-Signature-256"
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    template: str = "sha256={hex}"
    stripe: bool = False
    timestamp_header: str | None = None
    payload: str = "{body}"
    #: Seconds a signed timestamp may be away from the server's clock (either way).
    tolerance: float = 300.0

    @property
    def signs_time(self) -> bool:
        return "{timestamp}" in self.payload

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"header": self.header, "algorithm": self.algorithm,
                               "format": "stripe" if self.stripe else self.template,
                               "signed_payload": self.payload}
        if self.timestamp_header:
            out["timestamp_header"] = self.timestamp_header
        if self.signs_time:
            out["tolerance_seconds"] = self.tolerance
        return out


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """A shared secret sent as is in a header (GitLab's ``X-Gitlab-Token``)."""

    secret: SecretRef
    header: str = "X-Gitlab-Token"

    def to_json(self) -> dict[str, Any]:
        return {"header": self.header}


@dataclass(frozen=True, slots=True)
class HookAuth:
    """Every check a request must pass (all of them); ``none`` only when the definition
    says ``auth: none`` (served by a ``--dev`` server alone)."""

    hmac: HmacAuth | None = None
    token: TokenAuth | None = None
    bearer: bool = False
    allow_ips: tuple[Network, ...] = ()

    @property
    def none(self) -> bool:
        return not (self.hmac or self.token or self.bearer or self.allow_ips)

    @property
    def kinds(self) -> list[str]:
        kinds = [kind for kind, on in (("hmac", self.hmac), ("token", self.token),
                                       ("bearer", self.bearer), ("allow_ips", self.allow_ips))
                 if on]
        return kinds or ["none"]

    @property
    def credential_headers(self) -> frozenset[str]:
        """Headers that carry a credential: never mapped into an argument."""
        names = {"authorization"}
        if self.hmac is not None:
            names.add(self.hmac.header.lower())
        if self.token is not None:
            names.add(self.token.header.lower())
        return frozenset(names)


@dataclass(frozen=True, slots=True)
class ArgSource:
    """Where one argument's value comes from: ``body`` (a JSON pointer or a dotted path),
    ``query`` or ``header`` (a name), or ``value`` (a constant)."""

    kind: Literal["body", "query", "header", "value"]
    #: The pointer's tokens (``body``), the name (``query``, ``header``).
    path: tuple[str, ...] = ()
    #: As written (``/pusher/name``, ``pusher.name``, ``X-GitHub-Event``).
    text: str = ""
    value: Any = None

    def to_json(self, *, secret: bool = False) -> dict[str, Any]:
        if self.kind == "value":
            return {"value": "[secret]" if secret else self.value}
        return {self.kind: self.text}


@dataclass(frozen=True, slots=True)
class Hook:
    """One served hook: ``POST /hooks/<name>`` runs ``job`` with ``args`` mapped from
    the request, once ``auth`` has passed."""

    name: str
    job: str
    auth: HookAuth
    args: dict[str, ArgSource] = field(default_factory=dict)
    description: str | None = None
    #: An explicit delivery id header (then required); None: the known ones, if sent.
    delivery_header: str | None = None
    #: Seconds a delivery id is remembered (a replay within it is refused).
    replay_window: float = 86400.0
    #: The file that declares it, as shown to users.
    declared_in: str = ""
    #: Names of the job's secret arguments (a constant for one is never shown).
    secret_args: frozenset[str] = frozenset()

    @property
    def delivery_headers(self) -> tuple[str, ...]:
        return (self.delivery_header,) if self.delivery_header else DELIVERY_HEADERS

    def to_json(self) -> dict[str, Any]:
        """What ``GET /hooks`` shows: never a secret, nor where one is kept."""
        out: dict[str, Any] = {"name": self.name, "job": self.job, "url": f"/hooks/{self.name}"}
        if self.description:
            out["description"] = self.description
        out["auth"] = self.auth.kinds
        if self.auth.hmac is not None:
            out["hmac"] = self.auth.hmac.to_json()
        if self.auth.token is not None:
            out["token"] = self.auth.token.to_json()
        if self.auth.allow_ips:
            out["allow_ips"] = [str(network) for network in self.auth.allow_ips]
        out["delivery_headers"] = list(self.delivery_headers)
        out["replay_window_seconds"] = self.replay_window
        out["args"] = {name: source.to_json(secret=name in self.secret_args)
                       for name, source in self.args.items()}
        out["declared_in"] = self.declared_in
        return out
