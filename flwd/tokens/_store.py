"""The tokens file as a running server sees it: reloaded as soon as it changes (blocking, cheap).

Every lookup first ``stat``s the file (about a microsecond) and compares device,
inode, size, mtime and ctime with the version it holds; only a changed file is read
again. So a token revoked or minted with ``flwd :tokens`` counts from the very next
request, and an unchanged file is never read.

A file that turns bad while the server runs — unreadable, malformed, half-edited —
does not open the door and does not stop the server: the tokens loaded last stay in
force, and one warning is logged per bad version (not per request). A file that is
removed holds no tokens, as at start: every token is refused until it is back.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from flwd.errors import UsageError

from ._file import Signature, read_tokens, signature_of
from ._model import TokenEntry, digest

_log = logging.getLogger("flwd.tokens")


class TokenStore:
    """The live set of tokens of one tokens file.

    Args:
        path: the tokens file (a missing file holds no tokens).
        clock: the wall clock expiry is judged by.

    Raises:
        UsageError: the file cannot be read or is malformed right now (at start there
            is no earlier set to fall back on).
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        #: Where the tokens are, for logs: the file (a Core DB's location for its tokens).
        self.where = str(path)
        self._clock = clock
        snapshot = read_tokens(path)
        self._entries = snapshot.entries
        self._by_id = {entry.id: entry for entry in self._entries}
        #: The version in force, or the bad version last warned about.
        self._seen: Signature | str | None = snapshot.signature
        #: How many times the file was (re)loaded: tests and metrics read it.
        self.generation = 1

    @property
    def entries(self) -> tuple[TokenEntry, ...]:
        """The tokens in force (expired ones included), as last loaded."""
        return self._entries

    def now(self) -> float:
        return self._clock()

    def refresh(self) -> None:
        """Reload the file if it changed since it was last looked at (one ``stat`` if not)."""
        try:
            seen: Signature | str | None = signature_of(os.stat(self.path))
        except FileNotFoundError:
            seen = None
        except OSError as exc:
            seen = f"stat: {exc.strerror}"  # e.g. a directory on the way lost its x bit
        if seen == self._seen:
            return
        self._seen = seen
        if isinstance(seen, str):
            self._keep(f"cannot read tokens file {self.path}: {seen.removeprefix('stat: ')}")
            return
        try:
            snapshot = read_tokens(self.path)
        except UsageError as exc:
            self._keep(exc.one_line())
            return
        # The version actually read (it may be newer than the one stat saw).
        self._seen = snapshot.signature
        self._entries = snapshot.entries
        self._by_id = {entry.id: entry for entry in self._entries}
        self.generation += 1
        if snapshot.signature is None:
            _log.warning("tokens file removed: every token is refused until it is back",
                         extra={"fields": {"tokens_file": str(self.path)}})
        else:
            _log.info("tokens file reloaded", extra={"fields": {
                "tokens_file": str(self.path), "tokens": len(self._entries)}})

    def _keep(self, reason: str) -> None:
        _log.warning("tokens file unusable; the tokens loaded before stay in force",
                     extra={"fields": {"tokens_file": str(self.path), "reason": reason,
                                       "tokens": len(self._entries)}})

    def lookup(self, token: str) -> TokenEntry | None:
        """The entry of ``token`` in the current file (expired or not), else None.

        Every entry is compared, in constant time, so the time taken does not tell
        which entry (if any) matched.
        """
        self.refresh()
        wanted = digest(token)
        match: TokenEntry | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.sha256, wanted):
                match = entry
        return match

    def active(self, token_id: str) -> TokenEntry | None:
        """The token with this id while it is in the file and unexpired, else None.

        What a long-lived grant (a web session) checks on each use: revoking the
        token or its expiry ends the grant with the next check.
        """
        self.refresh()
        entry = self._by_id.get(token_id)
        if entry is None or entry.expired(self._clock()):
            return None
        return entry
