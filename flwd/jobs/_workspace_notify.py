"""The ``notify:`` rules of ``<scripts root>/flwd.yaml``: for every job of the workspace.

::

    aliases: [...]
    notify:
      - on: [failure, recovery]
        jobs: ["backup.*"]            # optional: only these jobs
        webhook: {url_env: ALERTS_URL, secret_env: ALERTS_SECRET}

Each rule is checked on its own: a bad rule is a discovery error of the file (``flwd
:jobs`` lists it) and never hides the good ones, which still apply.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from ._config import _ArgSource, _located, _Model
from ._discovery import DiscoveryIssue
from ._notify import NotifyRule, normalize_notify
from ._yaml import YamlRefused, load_yaml, read_yaml_file

ALIASES_FILE = "flwd.yaml"


class _Rules(_Model):
    # The one field gives errors their path in the file: notify[0].webhook.url.
    notify: list[NotifyRule]


def notify_rules(value: Any, display: str) -> tuple[list[NotifyRule], list[DiscoveryIssue]]:
    """The valid rules of a ``notify:`` value of ``display`` (a flwd.yaml), and what is
    wrong with the others (an unknown key included: a misspelt ``secret_env`` must not
    send unsigned notifications)."""
    rules = normalize_notify(value)
    if not isinstance(rules, list):
        return [], [DiscoveryIssue(display, "notify: must be a list of rules (or one rule)",
                                   code="E_CONFIG")]
    valid: list[NotifyRule] = []
    issues: list[DiscoveryIssue] = []
    for index, rule in enumerate(rules):
        try:
            checked = _Rules.model_validate({"notify": [rule]})
        except ValidationError as exc:
            for path, message in _located(exc, _ArgSource()):
                path = path.replace("notify[0]", f"notify[{index}]", 1)
                issues.append(DiscoveryIssue(display, f"{path}: {message} (the rule is not used)",
                                             code="E_CONFIG"))
            continue
        valid += checked.notify
    return valid, issues


#: What a file's ``notify:`` read as: nothing (no file, no ``notify:``), a reason it
#: cannot be read, or the value of ``notify:`` (plain YAML data, not yet checked).
NotifyRead = tuple[Literal["none", "unreadable", "value"], Any]
#: Reads of flwd.yaml files made by an earlier process (the run index), each with the
#: identity of the file it read: (mtime_ns, size, inode).
_known: dict[str, tuple[tuple[int, int, int], NotifyRead]] = {}


def file_key(path: Path) -> tuple[int, int, int] | None:
    """The identity of ``path``'s content as flwd.yaml's readers compare it, or None."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def read_workspace_notify(root: Path) -> NotifyRead:
    """What ``<root>/flwd.yaml`` says of ``notify:`` (blocking: the file is read and
    parsed, unless :func:`know_workspace_notify` told it for the file as it is)."""
    path = root / ALIASES_FILE
    known = _known.pop(os.path.abspath(path), None)
    if known is not None and known[0] == file_key(path):
        return known[1]
    try:
        if not path.is_file():
            return "none", None
        data = load_yaml(read_yaml_file(path))
    except FileNotFoundError:
        return "none", None
    except (OSError, UnicodeDecodeError, YamlRefused) as exc:
        return "unreadable", str(exc)
    if not isinstance(data, dict) or "notify" not in data:
        return "none", None
    return "value", data["notify"]


def know_workspace_notify(root: Path, key: tuple[int, int, int], read: NotifyRead) -> None:
    """Take ``read`` as what ``<root>/flwd.yaml`` says while the file's identity is ``key``
    (the run index kept it from the discovery that wrote it): the next
    :func:`load_workspace_notify` of that file, as it is, parses nothing (nor loads yaml)."""
    _known[os.path.abspath(root / ALIASES_FILE)] = (key, read)


def load_workspace_notify(root: Path, display: str | None = None
                          ) -> tuple[list[NotifyRule], list[DiscoveryIssue]]:
    """The ``notify:`` rules of ``<root>/flwd.yaml`` (none without the file); blocking."""
    shown = display or str(root / ALIASES_FILE)
    kind, value = read_workspace_notify(root)
    if kind == "none":
        return [], []
    if kind == "unreadable":
        return [], [DiscoveryIssue(shown, f"cannot read: {value}", code="E_CONFIG")]
    return notify_rules(value, shown)
