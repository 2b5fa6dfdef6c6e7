"""Materialising a git source with the real ``git`` CLI: a mirror, and one tree per commit.

::

    <data>/sources/<name>/repo.git        bare mirror (clone --mirror, then fetch --prune)
    <data>/sources/<name>/trees/<commit>  the files of one commit (git archive | extract)

A tree is never modified once written: a refresh that pins a new commit writes
a new tree, so a run planned against the old commit keeps executing from it.
Old trees are deleted by a sweep once no process leases them (``_trees``).

git runs with no terminal prompt, no system config and only the file, http(s),
ssh and git transports; its stderr (trimmed) is the detail of a failure.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Final

import trio

from flwd.errors import SourceCheckoutFailed

#: Seconds one git command may take (a clone of a large repository over a slow link).
GIT_TIMEOUT: Final = 300.0
_ENV: Final = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
    "GIT_ASKPASS": "/bin/false",
    "SSH_ASKPASS": "/bin/false",
    "GCM_INTERACTIVE": "never",
    "LC_ALL": "C",
}


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(_ENV)
    return env


async def git(*args: str, cwd: Path | None = None) -> bytes:
    """Run ``git ARGS``; its stdout.

    Raises:
        SourceCheckoutFailed: git failed, timed out or is not installed.

    Cancellation: the git process is terminated (trio's run_process).
    """
    command = ["git", *args]
    shown = " ".join(args[:3])
    try:
        with trio.fail_after(GIT_TIMEOUT):
            done = await trio.run_process(command, cwd=cwd, env=_env(), check=False,
                                          stdin=subprocess.DEVNULL, capture_stdout=True,
                                          capture_stderr=True)
    except trio.TooSlowError:
        raise SourceCheckoutFailed(f"git {shown} took longer than {GIT_TIMEOUT:.0f} s",
                                   hint="check the repository and the network") from None
    except FileNotFoundError:
        raise SourceCheckoutFailed("git is not installed",
                                   hint="install git (e.g. apt-get install git)") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.decode(errors="replace").splitlines()
                 if line.strip()]
        raise SourceCheckoutFailed(f"git {shown} failed: {' / '.join(lines[-3:]) or 'no output'}")
    return done.stdout


async def fetch_mirror(url: str, mirror: Path) -> None:
    """Clone ``url`` into the bare ``mirror``, or bring an existing mirror up to date."""
    if (mirror / "HEAD").is_file():
        await git("--git-dir", str(mirror), "remote", "set-url", "origin", "--", url)
        await git("--git-dir", str(mirror), "fetch", "--prune", "--quiet", "origin")
        return
    mirror.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = mirror.with_name(f".{mirror.name}.{uuid.uuid4().hex[:8]}")
    try:
        await git("clone", "--mirror", "--quiet", "--no-local", "--", url, str(partial))
        partial.rename(mirror)
    finally:
        if partial.exists():
            await trio.to_thread.run_sync(shutil.rmtree, partial, True)


async def resolve_commit(mirror: Path, ref: str) -> str:
    """The commit ``ref`` names in ``mirror``: a branch, a tag or a (short) commit id.

    Raises:
        SourceCheckoutFailed: nothing in the repository is called ``ref``.
    """
    for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
        try:
            out = await git("--git-dir", str(mirror), "rev-parse", "--verify", "--quiet",
                            "--end-of-options", f"{candidate}^{{commit}}")
        except SourceCheckoutFailed:
            continue
        return out.decode().strip()
    raise SourceCheckoutFailed(f"ref {ref!r} is not a branch, tag or commit of the repository",
                               hint="list them with 'git ls-remote URL'",
                               errors=[{"arg": "ref", "message": "not found in the repository"}])


async def write_tree(mirror: Path, commit: str, trees: Path) -> Path:
    """The files of ``commit`` under ``trees/<commit>`` (written once, atomically)."""
    target = trees / commit
    if target.is_dir():
        return target
    archive = await git("--git-dir", str(mirror), "archive", "--format=tar", commit)
    await trio.to_thread.run_sync(_extract, archive, target)
    return target


def _extract(archive: bytes, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            # The "data" filter refuses absolute names, links out of the tree
            # and device files: a hostile repository cannot write elsewhere.
            tar.extractall(partial, filter="data")
        os.replace(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
