"""The checks a request to a hook passes before anything runs (sans-IO).

In the order the adapter calls them: :func:`check_peer` (before the body is read),
:func:`delivery_of`, then :func:`verify_hmac` / :func:`verify_token` with the
secret read for the request. Each raises :class:`~flwd.hooks.Rejected`.

Signatures are compared with :func:`hmac.compare_digest` on the decoded bytes, every
candidate of the header checked (a sender rotating its secret sends two), so the
time taken says nothing of how much of a forged signature was right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Sequence
from typing import Final

from ._model import HmacAuth, Hook, Network, TokenAuth
from ._request import Inbound, Rejected

#: A delivery id: what GitHub, GitLab and Standard Webhooks send (a UUID, a msg_ id),
#: bounded; it becomes part of a run's trigger key.
_DELIVERY: Final = re.compile(r"[!-~]{1,128}")
#: Signatures looked at in one header (a rotation sends two; more is not a sender).
MAX_CANDIDATES: Final = 8
#: A Unix time in seconds, as GitHub, Stripe, Slack and Standard Webhooks send it.
_UNIX_TIME: Final = re.compile(r"\d{1,12}")
_ALGORITHMS: Final = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


def check_peer(networks: Sequence[Network], peer: str | None) -> None:
    """Refuse a peer outside ``networks`` (none: every peer may call).

    The peer is the socket's: ``flwd :serve`` has no trusted proxy, so an
    ``X-Forwarded-For`` header (anyone can send one) is never believed.
    """
    if not networks:
        return
    try:
        address = ipaddress.ip_address((peer or "").strip("[]").partition("%")[0])
    except ValueError:
        raise Rejected("ip", f"the peer address {peer!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not any(address in network for network in networks if network.version == address.version):
        raise Rejected("ip", f"{address} is not in allow_ips")


def delivery_of(hook: Hook, inbound: Inbound) -> str | None:
    """The delivery id the request carries (None: it carries none, and needs none).

    Raises:
        Rejected: ``request``: an explicit ``delivery_header`` missing, or an id that
            is not 1-128 visible ASCII characters.
    """
    for name in hook.delivery_headers:
        value = inbound.single_header(name, "request")
        if value is None:
            continue
        if not _DELIVERY.fullmatch(value):
            raise Rejected("request", f"the {name} header must be 1-128 visible ASCII "
                                      "characters (a delivery id)")
        return value
    if hook.delivery_header is not None:
        raise Rejected("request", f"the {hook.delivery_header} header is missing: this hook "
                                  "needs a delivery id")
    return None


def _decode(encoded: str, encoding: str) -> bytes | None:
    try:
        if encoding == "hex":
            return bytes.fromhex(encoded) if re.fullmatch(r"[0-9A-Fa-f]*", encoded) else None
        return base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        return None


def _template_candidates(template: str, text: str) -> list[bytes]:
    """The signatures ``text`` holds in the form ``template`` (``sha256={hex}``,
    ``v1,{base64}``), space-separated when several."""
    encoding = "hex" if "{hex}" in template else "base64"
    prefix, _, suffix = template.partition("{" + encoding + "}")
    found = []
    for part in text.split()[:MAX_CANDIDATES]:
        if len(part) >= len(prefix) + len(suffix) and part.startswith(prefix) \
                and part.endswith(suffix):
            decoded = _decode(part[len(prefix):len(part) - len(suffix)], encoding)
            if decoded:
                found.append(decoded)
    return found


def _stripe_candidates(text: str) -> tuple[str | None, list[bytes]]:
    """Stripe's ``t=<time>,v1=<hex>[,v1=<hex>…]``: the timestamp and the v1 signatures
    (other schemes, ``v0``, are ignored as Stripe's own libraries do)."""
    timestamps, found = [], []
    for item in text.split(",")[:MAX_CANDIDATES * 2]:
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamps.append(value)
        elif key == "v1" and (decoded := _decode(value, "hex")):
            found.append(decoded)
    return (timestamps[0] if len(timestamps) == 1 else None), found


def signed_payload(spec: HmacAuth, body: bytes, timestamp: str, delivery: str) -> bytes:
    """The bytes ``spec`` signs: its ``signed_payload`` with the body, the timestamp and
    the delivery id as they were sent."""
    values = {"body": body, "timestamp": timestamp.encode(), "delivery": delivery.encode()}
    return b"".join(values[piece[1:-1]] if piece.startswith("{") else piece.encode()
                    for piece in re.split(r"(\{body\}|\{timestamp\}|\{delivery\})", spec.payload)
                    if piece)


def verify_hmac(spec: HmacAuth, secret: bytes, inbound: Inbound, delivery: str | None,
                now: float) -> None:
    """Check the request's signature, and its signed timestamp within the tolerance.

    Raises:
        Rejected: ``signature`` (missing, malformed, or no candidate matches),
            ``timestamp`` (missing, malformed, or too far from ``now``).
    """
    text = inbound.single_header(spec.header, "signature")
    if not text:
        raise Rejected("signature", f"the {spec.header} header is missing")
    timestamp: str | None = None
    if spec.stripe:
        timestamp, candidates = _stripe_candidates(text)
    else:
        candidates = _template_candidates(spec.template, text)
        if spec.timestamp_header is not None:
            timestamp = inbound.single_header(spec.timestamp_header, "timestamp")
    if not candidates:
        raise Rejected("signature", f"the {spec.header} header holds no signature in the "
                                    "expected format")
    if spec.signs_time and (timestamp is None or not _UNIX_TIME.fullmatch(timestamp)):
        raise Rejected("timestamp", "the signed timestamp is missing or not a Unix time "
                                    "in seconds")
    digest = hmac.new(secret, signed_payload(spec, inbound.body, timestamp or "",
                                             delivery or ""), _ALGORITHMS[spec.algorithm]
                      ).digest()
    # Every candidate is compared (no early exit): the time does not tell which matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise Rejected("signature", f"the {spec.header} signature does not match")
    if spec.signs_time and timestamp is not None:
        skew = now - int(timestamp)
        if abs(skew) > spec.tolerance:
            raise Rejected("timestamp", f"the signed timestamp is {abs(skew):.0f} s "
                                        f"{'old' if skew > 0 else 'in the future'} (tolerance "
                                        f"{spec.tolerance:g} s)")


def verify_token(spec: TokenAuth, secret: bytes, inbound: Inbound) -> None:
    """Check a shared token sent as is (GitLab's ``X-Gitlab-Token``).

    Raises:
        Rejected: ``token``: missing, or not the secret.
    """
    sent = inbound.single_header(spec.header, "token")
    if not sent:
        raise Rejected("token", f"the {spec.header} header is missing")
    try:
        # Header bytes reach us decoded as Latin-1: encoding back gives what was sent.
        given = sent.encode("latin-1")
    except UnicodeEncodeError:
        given = b""
    if not (given and hmac.compare_digest(given, secret)):
        raise Rejected("token", f"the {spec.header} token does not match")
