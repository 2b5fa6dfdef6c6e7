"""Reading what ``podman ps``/``docker ps`` lists (sans-IO).

podman prints one JSON array (``--format json``), docker one JSON object per line
(``--format '{{json .}}'``); their labels and names differ in shape too.
"""

from __future__ import annotations

import json


def ps_argv(path: str, is_podman: bool, label: str) -> list[str]:
    """Every container (running or not) labelled ``label``, as JSON."""
    return [path, "ps", "--all", "--filter", f"label={label}",
            "--format", "json" if is_podman else "{{json .}}"]


def ps_entries(text: str) -> list[dict[str, object]]:
    """The containers of a ``ps`` output (nothing when it is not JSON)."""
    text = text.strip()
    try:
        entries = json.loads(text) if text.startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        return []
    return [entry for entry in entries if isinstance(entry, dict)] if isinstance(
        entries, list) else []


def labels(entry: dict[str, object]) -> dict[str, str]:
    found = entry.get("Labels") or {}
    if isinstance(found, str):  # docker: "k=v,k2=v2"
        return dict(item.partition("=")[::2] for item in found.split(",") if item)
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def names(entry: dict[str, object]) -> list[str]:
    found = entry.get("Names") or []
    if isinstance(found, str):
        return [n.lstrip("/") for n in found.split(",") if n]
    return [str(n) for n in found] if isinstance(found, list) else []
