"""Splitting a byte stream into redacted line chunks (sans-IO)."""

from __future__ import annotations

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
    """

    def __init__(self, secrets: list[bytes] | None = None) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted((s for s in secrets or [] if s), key=len, reverse=True)
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
        return self._clean(body), body.count(b"\n") + 1

    def flush(self) -> tuple[bytes, int]:
        rest, self._partial = self._partial, b""
        if not rest:
            return b"", 0
        return self._clean(rest.rstrip(b"\r")), 1

    def _clean(self, body: bytes) -> bytes:
        for secret in self._secrets:
            if secret in body:
                body = body.replace(secret, REDACTED)
        return body
