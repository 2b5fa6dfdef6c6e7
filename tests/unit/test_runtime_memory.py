"""What CLI runs remember of a passed container runtime check (flwd/containers/_remember.py):
only a success, only under the same fingerprint, only for a while; a damaged file is no
memory. Real files in a temporary folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

from flwd.containers import Runtime
from flwd.containers._remember import REMEMBER_SECONDS, fingerprint, recall, remember

PODMAN = Runtime("podman", "/usr/bin/podman")


def test_a_passed_check_is_recalled_under_its_fingerprint_for_a_while(tmp_path: Path) -> None:
    memory = tmp_path / "container-runtime.json"
    remember(memory, "digest-a", PODMAN)
    assert memory.stat().st_mode & 0o777 == 0o600
    assert recall(memory, "digest-a") == ("podman", "/usr/bin/podman")
    assert recall(memory, "digest-b") is None
    kept = json.loads(memory.read_text())
    for checked_at in (time.time() - REMEMBER_SECONDS - 1, time.time() + 60):  # old; future
        memory.write_text(json.dumps({**kept, "checked_at": checked_at}))
        assert recall(memory, "digest-a") is None
    for damaged in ("", "{", "[]", '{"fingerprint": "digest-a"}', "\x00\xff"):
        memory.write_text(damaged)
        assert recall(memory, "digest-a") is None


def test_nothing_is_written_where_the_data_dir_does_not_exist(tmp_path: Path) -> None:
    memory = tmp_path / "not-yet" / "container-runtime.json"
    remember(memory, "digest", PODMAN)
    assert not memory.parent.exists()
    assert recall(memory, "digest") is None


def test_the_fingerprint_follows_what_decides_the_answer(tmp_path: Path) -> None:
    conf = tmp_path / "containers.conf"
    conf.write_text("[containers]\n")
    env = {"PATH": "/usr/bin", "HOME": str(tmp_path), "CONTAINERS_CONF": str(conf),
           "TERM": "xterm", "PWD": "/somewhere"}
    base = fingerprint([PODMAN], env)
    assert fingerprint([PODMAN], env) == base
    # Variables runtimes do not read change nothing (a run from another folder or terminal).
    assert fingerprint([PODMAN], {**env, "TERM": "dumb", "PWD": "/elsewhere"}) == base
    changed = [
        fingerprint([PODMAN], {**env, "DOCKER_HOST": "tcp://10.0.0.1:2375"}),
        fingerprint([PODMAN], {**env, "XDG_RUNTIME_DIR": "/run/user/1000"}),
        fingerprint([PODMAN], {**env, "PATH": "/opt/bin:/usr/bin"}),
        fingerprint([PODMAN, Runtime("docker", "/usr/bin/docker")], env),
        fingerprint([Runtime("podman", str(tmp_path / "podman"))], env),
    ]
    conf.write_text("[containers]\ndefault_ulimits = []\n")  # the file it reads changed
    changed.append(fingerprint([PODMAN], env))
    (tmp_path / ".config" / "containers").mkdir(parents=True)
    (tmp_path / ".config" / "containers" / "containers.conf").write_text("")  # a user's file
    changed.append(fingerprint([PODMAN], env))
    assert base not in changed and len(set(changed)) == len(changed)
