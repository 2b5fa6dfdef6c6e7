"""Splitting a byte stream into redacted line chunks (sans-IO)."""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = b"[secret]"

#: A line longer than this is cut into pieces so one runaway line cannot hold
#: unbounded memory (or delay every later line).
MAX_LINE = 1 << 20


def secret_pieces(secrets: Iterable[bytes]) -> list[bytes]:
    """What to mask for ``secrets``, longest first.

    Masking works within one line, so a multi-line secret is masked line by
    line (each of its non-blank lines is a piece); a secret without a line
    feed is a piece as a whole too (it may hold a lone ``\\r``).
    """
    pieces: set[bytes] = set()
    for secret in secrets:
        if b"\n" not in secret:
            pieces.add(secret)
        pieces.update(part for part in secret.splitlines() if part.strip())
    pieces.discard(b"")
    return sorted(pieces, key=lambda piece: (-len(piece), piece))


class LineSplitter:
    """Turns arbitrary reads into chunks of complete lines.

    ``feed(data)`` returns ``(lines, n)``: the lines that can be emitted so far,
    joined by ``\\n`` without a trailing newline, with every secret replaced by
    ``[secret]``; ``n`` is their count (0 means nothing to emit). A trailing
    ``\\r`` is dropped from each line. ``flush()`` returns the unterminated rest.

    Masking comes before cutting. A line longer than ``max_line`` is emitted in
    fragments of about ``max_line`` bytes, but a fragment ends only where the
    masker has seen enough to decide it: ``max_line`` plus the longest secret
    minus one byte must be known past the fragment's start, and a secret that
    straddles the cut moves the cut to its end. So a secret never reaches two
    fragments (nor two reads), and the output does not depend on how the
    stream was chunked into reads. The held-back rest is bounded by
    ``max_line`` + the longest secret.
    """

    def __init__(self, secrets: Iterable[bytes] | None = None, *,
                 max_line: int = MAX_LINE) -> None:
        ordered = secret_pieces(secrets or ())
        # One pass, longest alternative first: a secret containing another is
        # masked whole, and the replacement is never masked again.
        self._pattern = re.compile(b"|".join(re.escape(p) for p in ordered)) if ordered else None
        self._max_line = max_line
        #: A line is cut once more than this much of it is known: whether a
        #: secret starts before the cut is decidable only this far ahead.
        self._limit = max_line + (len(ordered[0]) - 1 if ordered else 0)
        #: The unterminated, not yet emitted rest of the current line (raw).
        self._rest = b""

    def feed(self, data: bytes) -> tuple[bytes, int]:
        buffer = self._rest + data if self._rest else data
        cut = buffer.rfind(b"\n")
        chunks: list[bytes] = []
        count = 0
        if cut >= 0:
            body = buffer[:cut]
            buffer = buffer[cut + 1 :]
            if b"\r" in body:
                body = body.replace(b"\r\n", b"\n")
                if body.endswith(b"\r"):
                    body = body[:-1]
            if len(body) > self._limit:  # one of its lines may need cutting
                fragments = [piece for line in body.split(b"\n")
                             for piece in self._cut(line, complete=True)[0]]
                chunks.append(b"\n".join(fragments))
                count = len(fragments)
            else:
                cleaned = self._clean(body)
                chunks.append(cleaned)
                count = cleaned.count(b"\n") + 1
        fragments, start = self._cut(buffer, complete=False)
        self._rest = buffer[start:] if start else buffer
        if fragments:
            chunks.extend(fragments)
            count += len(fragments)
        if not chunks:
            return b"", 0
        return (chunks[0] if len(chunks) == 1 else b"\n".join(chunks)), count

    def flush(self) -> tuple[bytes, int]:
        rest, self._rest = self._rest, b""
        if not rest:
            return b"", 0
        if rest.endswith(b"\r"):
            rest = rest[:-1]
        fragments = self._cut(rest, complete=True)[0]
        return b"\n".join(fragments), len(fragments)

    def _cut(self, line: bytes, *, complete: bool) -> tuple[list[bytes], int]:
        """The masked fragments of ``line`` that can be emitted, and where its rest starts.

        ``complete``: ``line`` is a whole line without its terminator (the rest
        becomes its last fragment). Otherwise more of the line may follow, and
        a trailing ``\\r`` may be half of a ``\\r\\n``, so it is not counted.
        """
        fragments: list[bytes] = []
        start = 0
        known = len(line) if complete or not line.endswith(b"\r") else len(line) - 1
        while known - start > self._limit:
            end = self._cut_point(line, start)
            fragments.append(self._clean(line[start:end]))
            start = end
        if complete:
            fragments.append(self._clean(line[start:] if start else line))
            start = len(line)
        return fragments, start

    def _cut_point(self, line: bytes, start: int) -> int:
        """Where the fragment starting at ``start`` ends: at ``max_line``, or past a
        secret that straddles it (``line[start:start + limit]`` decides)."""
        cut = start + self._max_line
        if self._pattern is not None:
            for match in self._pattern.finditer(line, start, start + self._limit):
                if match.end() > cut:
                    return match.end() if match.start() < cut else cut
        return cut

    def _clean(self, body: bytes) -> bytes:
        if self._pattern is None:
            return body
        return self._pattern.sub(REDACTED, body)
