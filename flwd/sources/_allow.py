"""The allow-list: which folders and git repositories may become sources.

Local folders (and ``file://`` repositories) must resolve — symlinks followed —
inside the scripts root or a directory given with ``--allow-path``
(``FLWD_ALLOW_PATHS``). Remote repositories are refused unless their host was
listed with ``--git-allow-host`` (``FLWD_GIT_ALLOW_HOSTS``). A refusal names the
rule that refused, so the fix is obvious.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

from flwd.errors import SourceInvalid, SourceNotAllowed

ALLOW_PATHS_ENV: Final = "FLWD_ALLOW_PATHS"
GIT_HOSTS_ENV: Final = "FLWD_GIT_ALLOW_HOSTS"
_REMOTE_SCHEMES: Final = ("https", "http", "ssh", "git")
#: ``user@host:path`` (scp-like), but not ``C:\\path`` or ``./a:b``.
_SCP_LIKE: Final = re.compile(r"^(?:[A-Za-z0-9._-]+@)?([A-Za-z0-9.-]+):(?!//)(.+)$")


@dataclass(frozen=True, slots=True)
class GitLocation:
    """Where a repository is: a folder on this host, or a remote host."""

    url: str
    path: Path | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class AllowList:
    #: Real paths; the first is the scripts root (relative refs are taken from it).
    roots: tuple[Path, ...]
    git_hosts: frozenset[str] = frozenset()

    @staticmethod
    def build(scripts_root: Path, paths: Iterable[str] = (), hosts: Iterable[str] = (),
              env: Mapping[str, str] | None = None) -> AllowList:
        """The scripts root, the given paths and hosts, plus those of the environment."""
        env = os.environ if env is None else env
        extra = [*paths, *(p for p in env.get(ALLOW_PATHS_ENV, "").split(os.pathsep) if p)]
        names = [*hosts, *(h for h in env.get(GIT_HOSTS_ENV, "").split(",") if h.strip())]
        roots = [Path(os.path.realpath(scripts_root))]
        roots += [Path(os.path.realpath(Path(p).expanduser())) for p in extra]
        return AllowList(tuple(dict.fromkeys(roots)),
                         frozenset(h.strip().lower() for h in names))

    def _rule(self) -> str:
        shown = ", ".join(str(root) for root in self.roots)
        return f"allowed folders: {shown} (add one with --allow-path or {ALLOW_PATHS_ENV})"

    def check_path(self, raw: str, *, what: str = "path") -> Path:
        """The real path of ``raw`` (relative to the scripts root) if it is allowed.

        Raises:
            SourceNotAllowed: it resolves outside every allowed folder.
            SourceInvalid: it does not exist or is not a directory.
        """
        field_name = "ref" if what == "path" else "url"
        try:
            candidate = Path(raw).expanduser()
            if not candidate.is_absolute():
                candidate = self.roots[0] / candidate
            real = Path(os.path.realpath(candidate))
            is_dir = real.is_dir()
        except (OSError, ValueError) as exc:  # too long, NUL byte, unreadable
            raise SourceInvalid(f"{what} {raw[:200]!r} cannot be used: {exc}",
                                errors=[{"arg": field_name, "message": str(exc)}]) from None
        if not any(real == root or real.is_relative_to(root) for root in self.roots):
            via = f" (it resolves to {real})" if real != Path(os.path.abspath(candidate)) else ""
            raise SourceNotAllowed(
                f"{what} {raw!r} is outside the allow-list{via}", hint=self._rule(),
                errors=[{"arg": field_name, "message": "outside the allow-list"}])
        if not is_dir:
            raise SourceInvalid(f"{what} {raw!r} is not an existing directory ({real})",
                                hint="create it or fix the path",
                                errors=[{"arg": field_name, "message": "not an existing directory"}])
        return real

    def check_git(self, url: str) -> GitLocation:
        """Where the repository ``url`` is, if it may be cloned.

        Raises:
            SourceInvalid: not a URL git should be given (credentials, ``ext::``…).
            SourceNotAllowed: a folder outside the allow-list or a host not listed.
        """
        if "::" in url.split("/", 1)[0]:
            raise SourceInvalid(f"unsupported git URL {url!r}: transport helpers are refused",
                                hint="use file://, https://, ssh:// or git@host:path",
                                errors=[{"arg": "url", "message": "unsupported transport"}])
        if "://" in url:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme == "file":
                if parts.netloc not in ("", "localhost"):
                    raise SourceInvalid(f"file URL {url!r} names a host",
                                        hint="use file:///absolute/path",
                                        errors=[{"arg": "url", "message": "file URL with a host"}])
                path = self.check_path(unquote(parts.path), what="repository")
                return GitLocation(url, path=path)
            if scheme not in _REMOTE_SCHEMES:
                raise SourceInvalid(f"unsupported git URL scheme {scheme!r}",
                                    hint="use file://, https://, ssh:// or git@host:path",
                                    errors=[{"arg": "url", "message": "unsupported scheme"}])
            if parts.password is not None:
                # A secret in a URL ends up in the DB, logs and `ps`.
                raise SourceInvalid("credentials do not belong in a git URL",
                                    hint="use a credential helper or an SSH key",
                                    errors=[{"arg": "url", "message": "contains a password"}])
            host = (parts.hostname or "").lower()
            return self._remote(url, host)
        match = _SCP_LIKE.match(url)
        if match and not url.startswith(("/", ".", "~")):
            return self._remote(url, match.group(1).lower())
        return GitLocation(url, path=self.check_path(url, what="repository"))

    def _remote(self, url: str, host: str) -> GitLocation:
        if not host:
            raise SourceInvalid(f"git URL {url!r} has no host",
                                errors=[{"arg": "url", "message": "no host"}])
        if host not in self.git_hosts:
            listed = ", ".join(sorted(self.git_hosts)) or "none"
            raise SourceNotAllowed(
                f"git host {host!r} is not allowed",
                hint=f"allowed hosts: {listed} (add one with --git-allow-host or {GIT_HOSTS_ENV})",
                errors=[{"arg": "url", "message": f"host {host} not allowed"}])
        return GitLocation(url, host=host)
