"""The webhook sink: one signed POST per attempt (httpx's async client, on trio)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path

import httpx
import trio

from flwd import __version__
from flwd.jobs import WebhookSink

from ._attempt import Attempt, bounded
from ._payload import SIGNATURE_HEADER, TIMESTAMP_HEADER, Notification, signature
from ._secrets import SecretUnavailable, read_env, read_secret_file

#: Statuses worth another attempt besides 5xx: the receiver was busy, not unwilling.
_RETRY_STATUSES = frozenset({408, 425, 429})
#: A Retry-After beyond this is not waited for (the sink's own backoff applies).
MAX_RETRY_AFTER = 300.0


def _target(sink: WebhookSink, environ: Mapping[str, str], workspace: Path
            ) -> tuple[str, bytes | None, dict[str, str]]:
    """(the URL, the signing secret, the secret headers) of ``sink``; blocking (a secret
    file).

    Raises:
        SecretUnavailable.
    """
    url = sink.url if sink.url is not None else read_env(sink.url_env or "", environ)
    secret: bytes | None = None
    if sink.secret_file is not None:
        secret = read_secret_file(sink.secret_file, workspace)
    elif sink.secret_env is not None:
        secret = read_env(sink.secret_env, environ).encode()
    headers: dict[str, str] = {}
    for header, name in sink.headers_env.items():
        value = read_env(name, environ)
        # A line break would end the header and start another (header injection).
        if any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in value):
            raise SecretUnavailable(f"the environment variable {name} (header {header}) is "
                                    "not one line of text")
        headers[header] = value
    return url, secret, headers


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return min(float(value.strip()), MAX_RETRY_AFTER)
    try:
        delay = parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None
    return max(0.0, min(delay, MAX_RETRY_AFTER))


async def post_webhook(client: httpx.AsyncClient, sink: WebhookSink, note: Notification,
                       *, environ: Mapping[str, str], workspace: Path) -> Attempt:
    """POST ``note`` to the sink; the answer's status decides (2xx: delivered).

    The answer's body is never read (a receiver cannot make flwd hold megabytes), and
    redirects are not followed (a signed request goes where it was configured to).

    Cancellation: the request is abandoned (its connection closed).
    """
    try:
        url, secret, secret_headers = await trio.to_thread.run_sync(
            partial(_target, sink, environ, workspace))
    except SecretUnavailable as exc:
        return Attempt(False, error=str(exc))
    body = note.body
    stamp = int(time.time())
    headers = {**sink.headers, **secret_headers, "Content-Type": "application/json",
               "User-Agent": f"flwd/{__version__}", "X-Flwd-Event": note.event,
               "X-Flwd-Delivery": note.delivery, TIMESTAMP_HEADER: str(stamp)}
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature(secret, stamp, body)
    hidden = (url, _path_of(url), secret.decode("utf-8", "replace") if secret else "",
              *secret_headers.values())
    try:
        # httpx's timeout bounds each read and write; the scope bounds the whole attempt
        # (a receiver dripping one byte a second would otherwise hold it for hours).
        with trio.fail_after(sink.timeout):
            async with client.stream("POST", url, content=body, headers=headers,
                                     timeout=sink.timeout) as response:
                status, reason = response.status_code, response.reason_phrase
                retry_after = _retry_after(response.headers.get("Retry-After"))
    except trio.TooSlowError:
        return Attempt(False, error=f"no answer within {sink.timeout:g}s", retry=True)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        text = bounded(f"{type(exc).__name__}: {exc}", *hidden)
        # A URL httpx cannot use will not work the next time either.
        return Attempt(False, error=text, retry=not isinstance(exc, httpx.UnsupportedProtocol
                                                                | httpx.InvalidURL))
    if 200 <= status < 300:
        return Attempt(True, status=status)
    return Attempt(False, status=status, error=bounded(f"HTTP {status} {reason}", *hidden),
                   retry=status >= 500 or status in _RETRY_STATUSES, retry_after=retry_after)


def _path_of(url: str) -> str:
    # A chat service's webhook URL carries its token in the path: never quoted either.
    try:
        path = httpx.URL(url).raw_path.decode("ascii", "replace")
    except (httpx.InvalidURL, TypeError, ValueError):
        return ""
    return path if len(path) > 1 else ""
