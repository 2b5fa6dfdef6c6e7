"""Where the completed command's workspace and data dir are, found cheaply.

A mirror of :func:`flwd.settings.resolve_settings` and ``resolve_data_dir`` with
``os.path`` only (no pathlib, no pydantic): ``--scripts`` > ``FLWD_SCRIPTS`` >
the nearest ``scripts/`` from the working directory upwards; ``--data-dir`` >
``FLWD_DATA_DIR`` > ``DATA_DIR`` > ``$XDG_DATA_HOME/flwd`` > ``~/.local/share/flwd``.
``tests/complete/test_cache.py`` checks both against the real resolution.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def scripts_root(flag: str | None, env: Mapping[str, str], cwd: str) -> str | None:
    """The absolute scripts root, or None when there is none (no job to complete)."""
    explicit = flag or env.get("FLWD_SCRIPTS")
    if explicit:
        root = os.path.abspath(os.path.join(cwd, os.path.expanduser(explicit)))
        return root if os.path.isdir(root) else None
    folder = os.path.abspath(cwd)
    while True:
        candidate = os.path.join(folder, "scripts")
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def data_dir(flag: str | None, env: Mapping[str, str]) -> str:
    """The absolute data dir (it may not exist yet)."""
    for value in (flag, env.get("FLWD_DATA_DIR"), env.get("DATA_DIR")):
        if value:
            return os.path.abspath(os.path.expanduser(value))
    xdg = env.get("XDG_DATA_HOME")
    if xdg:
        return os.path.join(os.path.abspath(os.path.expanduser(xdg)), "flwd")
    return os.path.join(os.path.expanduser("~"), ".local", "share", "flwd")
