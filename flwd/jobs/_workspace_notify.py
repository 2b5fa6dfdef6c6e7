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

from pathlib import Path
from typing import Any

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


def load_workspace_notify(root: Path, display: str | None = None
                          ) -> tuple[list[NotifyRule], list[DiscoveryIssue]]:
    """The ``notify:`` rules of ``<root>/flwd.yaml`` (none without the file); blocking."""
    path = root / ALIASES_FILE
    shown = display or str(path)
    try:
        if not path.is_file():
            return [], []
        data = load_yaml(read_yaml_file(path))
    except FileNotFoundError:
        return [], []
    except (OSError, UnicodeDecodeError, YamlRefused) as exc:
        return [], [DiscoveryIssue(shown, f"cannot read: {exc}", code="E_CONFIG")]
    if not isinstance(data, dict) or "notify" not in data:
        return [], []
    return notify_rules(data["notify"], shown)
