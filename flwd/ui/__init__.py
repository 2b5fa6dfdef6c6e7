"""The web UI's files: plain ES modules, CSS and one HTML shell, shipped as package data.

There is no build step: what is under :data:`STATIC_DIR` is what browsers get
(``flwd.http``'s ``_ui`` blueprint serves it at ``/`` and ``/ui/<path>``). The
shell holds no data; every page asks the API for it, with the caller's
credentials.

:func:`asset` is the only way to a file: it answers only for files under
:data:`STATIC_DIR` of a type it knows, so a request path can never name
anything else (``..``, an absolute path, a dotfile, a symlink leading out).

Sans-IO apart from reading the files: no trio, no Quart.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

__all__ = ["CONTENT_TYPES", "INDEX", "RELEASE_MARK", "STATIC_DIR", "Asset", "asset",
           "etag_matches", "index", "release", "split_release"]

#: The folder whose files are the UI (package data: see pyproject's package-data).
STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
#: The shell, served at ``/``.
INDEX: Final = "index.html"

#: The types served, by suffix; a file of any other suffix is not part of the UI.
CONTENT_TYPES: Final[dict[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/vnd.microsoft.icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}

#: One path segment: no leading dot (so no ``.``, ``..`` nor dotfile), no
#: separator, no character a file of ours would not have in its name.
#: Starts the path segment naming a release of the files (``/ui/~<release>/js/app.js``).
RELEASE_MARK: Final = "~"
_RELEASE: Final = re.compile(r"~([0-9a-f]{1,64})")
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_MAX_PATH: Final = 512


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the UI as it is answered."""

    body: bytes
    #: A strong validator (RFC 9110 §8.8.3), quoted: a digest of ``body``.
    etag: str
    content_type: str


def asset(path: str) -> Asset | None:
    """The UI file at ``path`` (``/``-separated, relative to :data:`STATIC_DIR`), or None
    when there is no such file of the UI.

    Blocking (a ``stat``, and a read when the file changed): call it from a worker
    thread inside trio. Files are read again when their size or mtime changes, so
    an edited file is served at once (and gets a new ETag).
    """
    if len(path) > _MAX_PATH:
        return None
    segments = path.split("/")
    if not all(_SEGMENT.fullmatch(segment) for segment in segments):
        return None
    content_type = CONTENT_TYPES.get(os.path.splitext(segments[-1])[1].lower())
    if content_type is None:
        return None
    candidate = STATIC_DIR.joinpath(*segments)
    try:
        # A symlink may point anywhere: what it resolves to must be ours too.
        resolved = candidate.resolve(strict=True)
        if not resolved.is_relative_to(STATIC_DIR):
            return None
        stat = resolved.stat()
    except (OSError, RuntimeError):  # missing, unreadable, a symlink loop
        return None
    if not resolved.is_file():
        return None
    return _load(resolved, stat.st_mtime_ns, stat.st_size, content_type)


@lru_cache(maxsize=256)
def _load(path: Path, mtime_ns: int, size: int, content_type: str) -> Asset | None:
    # (mtime_ns, size) are part of the key only so that a changed file is read again.
    try:
        body = path.read_bytes()
    except OSError:
        return None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body, etag, content_type)


def release() -> str:
    """A digest of every file of the UI: it changes whenever any of them does.

    The shell names its modules and styles under ``/ui/~<release>/``: their relative
    imports stay under it, so a browser may keep all of them for good (they never
    change under one name) and an upgraded server's shell names new ones at once.
    Blocking, as :func:`asset`: a walk with a ``stat`` per file (every versioned file's
    request asks twice); the files are read and digested again only when one of them
    changed.
    """
    stamps = []
    for folder, dirs, files in os.walk(STATIC_DIR):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                # Followed: a symlink edited to point elsewhere changes the stamp.
                info = os.stat(path)
            except OSError:
                continue
            stamps.append((os.path.relpath(path, STATIC_DIR).replace(os.sep, "/"),
                           info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size))
    return _release(tuple(stamps))


@lru_cache(maxsize=4)
def _release(stamps: tuple[tuple[str, int, int, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for relative, *_ in stamps:
        found = asset(relative)
        if found is not None:
            digest.update(relative.encode() + b"\0" + found.etag.encode() + b"\0")
    return digest.hexdigest()[:16]


def index() -> Asset | None:
    """The shell, its ``/ui/`` references under the current :func:`release`. Blocking."""
    shell = asset(INDEX)
    if shell is None:
        return None
    return _versioned(shell, release())


@lru_cache(maxsize=4)
def _versioned(shell: Asset, version: str) -> Asset:
    body = shell.body.replace(b'"/ui/', f'"/ui/{RELEASE_MARK}{version}/'.encode())
    return Asset(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', shell.content_type)


def split_release(path: str) -> tuple[str | None, str]:
    """(the release a ``/ui/`` path names, if it does; the file's path within the UI)."""
    first, _, rest = path.partition("/")
    matched = _RELEASE.fullmatch(first)
    if matched is None or not rest:
        return None, path
    return matched.group(1), rest


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` header value names ``etag`` (quoted): ``*``, or one
    of its comma-separated entity tags, weak or strong (RFC 9110 §13.1.2 compares
    weakly)."""
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False
