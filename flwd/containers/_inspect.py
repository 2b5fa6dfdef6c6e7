"""Pulling and inspecting images with the runtime CLI: digests and image ids.

``choose_digest`` is sans-IO; the rest are short runtime calls in trio.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from ._runtime import Runtime

#: Bounds: an inspect is local and quick; a pull may move a large image.
INSPECT_TIMEOUT = 30.0
PULL_TIMEOUT = 900.0
#: An image's labels are kept with every run of its jobs (in their provenance): an
#: image with thousands of labels, or huge ones, must not make every run record huge.
MAX_LABELS = 64
MAX_LABEL_CHARS = 1024


@dataclass(frozen=True, slots=True)
class ImageInfo:
    image_id: str | None
    #: The registry manifest digest for the inspected repository, when it can be told.
    digest: str | None
    #: When the image was built, as the runtime says it (RFC 3339).
    created: str | None = None
    size_bytes: int | None = None
    #: ``Config.Labels``: the first :data:`MAX_LABELS` by name, none longer than
    #: :data:`MAX_LABEL_CHARS` (a longer one is left out, never cut).
    labels: dict[str, str] | None = None


def choose_digest(repository: str, repo_digests: Sequence[str], digest: str | None
                  ) -> str | None:
    """The manifest digest of ``repository`` among an image's ``RepoDigests``.

    Podman lists every (name × digest) pair an image has, so one image known
    under several names shows several digests per repository. The image's own
    ``Digest`` wins when it is one of the repository's; else the repository's
    only digest; else (ambiguous, or none) None.
    """
    found = [entry.partition("@")[2] for entry in repo_digests
             if entry.partition("@")[0] == repository and "@" in entry]
    if digest and digest in found:
        return digest
    unique = list(dict.fromkeys(found))
    return unique[0] if len(unique) == 1 else None


def parse_inspect(output: str, repository: str) -> ImageInfo:
    """``ImageInfo`` from ``<runtime> image inspect`` JSON (an array of one image)."""
    try:
        data: Any = json.loads(output)
    except ValueError:
        return ImageInfo(None, None)
    entry = data[0] if isinstance(data, list) and data else data
    if not isinstance(entry, dict):
        return ImageInfo(None, None)
    image_id = entry.get("Id") or entry.get("ID")
    repo_digests = [d for d in entry.get("RepoDigests") or [] if isinstance(d, str)]
    digest = entry.get("Digest") if isinstance(entry.get("Digest"), str) else None
    created = entry.get("Created")
    size = entry.get("Size")
    return ImageInfo(str(image_id) if image_id else None,
                     choose_digest(repository, repo_digests, digest),
                     created=created if isinstance(created, str) and created else None,
                     size_bytes=size if isinstance(size, int) and not isinstance(size, bool)
                     and size >= 0 else None,
                     labels=_labels(entry))


def _labels(entry: dict[str, Any]) -> dict[str, str] | None:
    """The image's labels (docker: ``Config.Labels``; podman also has a top-level copy)."""
    config = entry.get("Config")
    found = config.get("Labels") if isinstance(config, dict) else None
    if not isinstance(found, dict):
        found = entry.get("Labels")
    if not isinstance(found, dict):
        return None
    kept = sorted((key, value) for key, value in found.items()
                  if isinstance(key, str) and isinstance(value, str)
                  and len(key) + len(value) <= MAX_LABEL_CHARS)
    return dict(kept[:MAX_LABELS])


async def runtime_call(argv: Sequence[str], env: Mapping[str, str], limit: float
                       ) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a runtime command; -1 on timeout or no binary.

    Cancellation: the command is killed (trio's default) and ``Cancelled`` propagates.
    """
    with trio.move_on_after(limit):
        try:
            done = await trio.run_process(list(argv), stdin=subprocess.DEVNULL,
                                          capture_stdout=True, capture_stderr=True,
                                          check=False, env=dict(env))
        except OSError as exc:
            return -1, "", str(exc)
        return (done.returncode, done.stdout.decode(errors="replace"),
                done.stderr.decode(errors="replace"))
    return -1, "", f"timed out after {limit:g}s"


async def inspect_image(runtime: Runtime, ref: str, repository: str,
                        env: Mapping[str, str]) -> ImageInfo | None:
    """The local image ``ref``'s id and digest; None when it is not present."""
    code, out, _ = await runtime_call([runtime.path, "image", "inspect", ref], env,
                                      INSPECT_TIMEOUT)
    if code != 0:
        return None
    return parse_inspect(out, repository)


async def pull_image(runtime: Runtime, ref: str, env: Mapping[str, str]) -> str | None:
    """Pull ``ref`` (layers already present are reused); None, or the runtime's error."""
    code, out, err = await runtime_call([runtime.path, "pull", ref], env, PULL_TIMEOUT)
    if code == 0:
        return None
    lines = [line for line in (err + out).splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    return (errors or lines or [f"exit status {code}"])[-1].strip()
