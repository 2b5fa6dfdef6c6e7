"""Splitting a byte stream into redacted line chunks (sans-IO)."""

from __future__ import annotations

import re

REDACTED = b"[secret]"

#: A line longer than this is cut into pieces so one runaway line cannot hold
#: unbounded memory (or delay every later line).
MAX_LINE = 1 << 20


class LineSplitter:
    """Turns arbitrary reads into chunks of complete lines.

    ``feed(data)`` returns ``(lines, n)``: the complete lines seen so far,
    joined by ``\\n`` without a trailing newline, with every secret replaced by
    ``[secret]``; ``n`` is their count (0 means nothing to emit). A trailing
    ``\\r`` is dropped from each line. ``flush()`` returns the unterminated rest.

    Masking works on complete lines, so a secret split across two reads is
    still masked; each line of a multi-line secret is masked on its own too.
    """

    def __init__(self, secrets: list[bytes] | None = None) -> None:
        pieces = set()
        for secret in secrets or []:
            pieces.add(secret)
            pieces.update(part for part in secret.splitlines() if part.strip())
        pieces.discard(b"")
        # One pass, longest alternative first: a secret containing another is
        # masked whole, and the replacement is never masked again.
        ordered = sorted(pieces, key=len, reverse=True)
        self._pattern = re.compile(b"|".join(re.escape(p) for p in ordered)) if ordered else None
        self._partial = b""

    def feed(self, data: bytes) -> tuple[bytes, int]:
        buffer = self._partial + data if self._partial else data
        cut = buffer.rfind(b"\n")
        if cut < 0:
            if len(buffer) >= MAX_LINE:
                self._partial = b""
                return self._clean(buffer), 1
            self._partial = buffer
            return b"", 0
        self._partial = buffer[cut + 1 :]
        body = buffer[:cut]
        if b"\r" in body:
            body = body.replace(b"\r\n", b"\n")
            if body.endswith(b"\r"):
                body = body[:-1]
        cleaned = self._clean(body)
        return cleaned, cleaned.count(b"\n") + 1

    def flush(self) -> tuple[bytes, int]:
        rest, self._partial = self._partial, b""
        if not rest:
            return b"", 0
        cleaned = self._clean(rest.rstrip(b"\r"))
        return cleaned, cleaned.count(b"\n") + 1

    def _clean(self, body: bytes) -> bytes:
        if self._pattern is None:
            return body
        return self._pattern.sub(REDACTED, body)
