"""Where things are: the workspace, its scripts root and the data dir (sans-IO but for stat)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flwd.errors import UsageError

if TYPE_CHECKING:
    from flwd.store import Store

DEFAULT_GRACE = 5.0


@dataclass(frozen=True, slots=True)
class Settings:
    #: The directory holding ``scripts/``; jobs run with it as working directory.
    workspace: Path
    scripts_root: Path
    data_dir: Path
    #: Seconds between SIGTERM and SIGKILL when a run is cancelled.
    grace: float = DEFAULT_GRACE
    #: The Core DB when it is not the data dir's SQLite file: ``--db`` / ``FLWD_DB``, a
    #: ``postgresql://`` URL or a SQLite file's path (the run directories, sockets and
    #: sources stay in the data dir).
    db: str | None = None
    #: A worker of ``flwd :serve --workers N``: ``db`` is the host's SQLite Core DB, which
    #: it shares with the other workers as the replicas of a cluster share PostgreSQL.
    shared_db: bool = False

    @property
    def db_path(self) -> Path:
        return self.data_dir / "flwd.db"

    def open_store(self) -> Store:
        """The Core DB (``db``, else the data dir's); nothing is opened until it is used."""
        # Not at import: the completion path reads settings.
        from flwd.store import SqliteStore, open_store

        if self.db is None:
            return SqliteStore(self.db_path, clustered=self.shared_db)
        return open_store(self.db, shared=self.shared_db)

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def workspace_key(self) -> str:
        """The workspace as runs record it, and as ``:runs`` finds them by: its absolute
        path with symlinks resolved, so every way of naming it is the same."""
        return str(self.workspace.resolve())


def find_scripts_root(start: Path) -> Path | None:
    """``scripts/`` in ``start`` or the nearest parent that has one (like git finds .git)."""
    for folder in (start, *start.parents):
        candidate = folder / "scripts"
        if candidate.is_dir():
            return candidate
    return None


def resolve_data_dir(flag: str | None, env: Mapping[str, str]) -> Path:
    """``--data-dir`` > ``FLWD_DATA_DIR`` > ``DATA_DIR`` > ``$XDG_DATA_HOME/flwd`` > ``~/.local/share/flwd``."""
    for value in (flag, env.get("FLWD_DATA_DIR"), env.get("DATA_DIR")):
        if value:
            return Path(value).expanduser().absolute()
    xdg = env.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg).expanduser().absolute() / "flwd"
    return Path.home() / ".local" / "share" / "flwd"


def resolve_settings(*, scripts: str | None = None, data_dir: str | None = None,
                     env: Mapping[str, str] | None = None, cwd: Path | None = None,
                     require_scripts: bool = True, db: str | None = None) -> Settings:
    """Settings from flags, then the environment, then defaults.

    Raises:
        UsageError: no scripts directory could be found, or a value is malformed.
    """
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    explicit = scripts or env.get("FLWD_SCRIPTS")
    if explicit:
        root = (cwd / Path(explicit).expanduser()).absolute()
        if require_scripts and not root.is_dir():
            raise UsageError(f"scripts directory {root} does not exist",
                             hint="pass an existing directory with --scripts or FLWD_SCRIPTS")
    else:
        found = find_scripts_root(cwd)
        if found is None:
            if require_scripts:
                raise UsageError(
                    f"no scripts/ directory in {cwd} or any parent",
                    hint="run flwd inside a workspace, pass --scripts DIR, "
                         "or create a job with 'flwd init bash NAME'",
                )
            found = cwd / "scripts"
        root = found.absolute()
    return Settings(workspace=root.parent, scripts_root=root,
                    data_dir=resolve_data_dir(data_dir, env), grace=resolve_grace(env),
                    db=db or env.get("FLWD_DB") or None)


def resolve_grace(env: Mapping[str, str]) -> float:
    """``FLWD_GRACE`` (seconds between TERM and KILL), else the default.

    Raises:
        UsageError: not a number of seconds from 0 to 3600.
    """
    grace_text = env.get("FLWD_GRACE")
    grace = DEFAULT_GRACE
    if grace_text:
        try:
            grace = float(grace_text)
        except ValueError:
            grace = -1.0
        if not 0 <= grace <= 3600:
            raise UsageError(f"FLWD_GRACE={grace_text!r} is not a number of seconds (0–3600)")
    return grace
