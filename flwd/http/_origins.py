"""Who may drive a ``--dev`` server from a browser (sans-IO).

``--dev`` lets a request without a token do everything, so the server must tell
a local tool from any web page the user happens to visit. Three doors:

- **Origin.** A page's requests carry its origin; only loopback origins —
  ``http``/``https``, host exactly ``localhost``, ``127.0.0.1`` or ``[::1]``,
  any port — are let in (CORS for them, 403 for the rest, WebSockets too).
  The match is exact: ``http://localhost.evil.example`` and
  ``http://localhost@evil.example`` are other origins.
- **Host.** A page on ``rebind.attacker.example`` whose name the attacker
  re-points at 127.0.0.1 (DNS rebinding) is same-origin with the server, so it
  sends no foreign Origin; its requests still name the attacker's host in
  ``Host``. Only loopback names and the bound address are served.
- **Content type** (for every server, see ``_app``): a JSON route reads only
  ``application/json``, which a cross-site form or a no-preflight ``fetch``
  cannot send.

Outside ``--dev`` every route but the open ones needs a bearer token, which a
browser never attaches on its own: origins do not matter there.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

#: The host names a loopback origin may have.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")

#: A loopback origin. quart-cors matches a pattern with ``re.match``, which anchors
#: only at the start: without ``\Z`` this would admit ``http://localhost.evil.example``.
DEV_ORIGIN = re.compile(r"https?://(?:localhost|127\.0\.0\.1|\[::1\])(?::[0-9]{1,5})?\Z")

_PORT = re.compile(r"[0-9]{1,5}\Z")


def is_dev_origin(origin: str) -> bool:
    """``origin`` (an ``Origin`` header) is a loopback origin a ``--dev`` server serves."""
    return DEV_ORIGIN.match(origin) is not None


def host_name(header: str) -> str | None:
    """The host of a ``Host`` header, lowercased, without its port (IPv6 in brackets);
    None when the header is not ``host[:port]``."""
    text = header.strip().lower()
    if text.startswith("["):
        name, bracket, rest = text.partition("]")
        if not bracket:
            return None
        name += "]"
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            return None
    else:
        name, colon, port_text = text.partition(":")
        port = port_text if colon else None
    if port is not None and not _PORT.match(port):
        return None
    return name or None


def _is_loopback_literal(name: str) -> bool:
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class HostCheck:
    """The ``Host`` names a ``--dev`` server answers to: ``localhost``, any loopback IP
    literal (no DNS name is involved, so nothing to rebind), and the ``--bind`` host."""

    bound: str

    def allows(self, header: str | None) -> bool:
        name = host_name(header) if header else None
        if name is None:
            return False
        bound = self.bound.lower()
        return (name == "localhost" or _is_loopback_literal(name)
                or name in (bound, f"[{bound}]"))
