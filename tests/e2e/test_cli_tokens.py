"""`flwd :tokens create|list|revoke` as a user runs it: real processes on a real file."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
from pathlib import Path

from tests.conftest import FLWD, flwd_env, run_cli


def _create(workspace: Path, data_dir: Path, name: str, *flags: str
            ) -> subprocess.CompletedProcess[str]:
    return run_cli([":tokens", "create", "--name", name, *flags], cwd=workspace,
                   data_dir=data_dir)


def test_create_list_revoke(workspace: Path, data_dir: Path) -> None:
    ci = _create(workspace, data_dir, "ci", "--scope", "*", "--expires", "30d")
    assert ci.returncode == 0, ci.stderr
    token = ci.stdout.strip()
    assert token.startswith("flwd_") and ci.stdout == token + "\n"  # the token alone
    assert "expires 20" in ci.stderr and "shown only now" in ci.stderr
    reader = _create(workspace, data_dir, "reader", "--scope", "jobs:read", "--scope",
                     "runs:read")
    assert reader.returncode == 0, reader.stderr
    stored = (data_dir / "tokens.json").read_text()
    digests = [item["sha256"] for item in json.loads(stored)["tokens"]]

    listed = run_cli([":tokens", "list"], cwd=workspace, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SCOPES", "CREATED", "EXPIRES", "STATUS"]
    assert lines[1].split()[:2] == ["ci", "*"] and lines[1].split()[-1] == "active"
    assert lines[2].split()[:2] == ["reader", "jobs:read,runs:read"]
    assert lines[2].split()[-2:] == ["never", "active"]
    as_json = run_cli([":tokens", "list", "--json"], cwd=workspace, data_dir=data_dir)
    entries = json.loads(as_json.stdout)
    assert [sorted(entry) for entry in entries] == [
        ["created_at", "expired", "expires_at", "name", "scopes"]] * 2
    assert entries[1] == {"name": "reader", "scopes": ["jobs:read", "runs:read"],
                          "created_at": entries[1]["created_at"], "expires_at": None,
                          "expired": False}
    for shown in (listed.stdout + listed.stderr, as_json.stdout + as_json.stderr):
        assert token not in shown and not any(d in shown for d in digests)

    revoked = run_cli([":tokens", "revoke", "ci"], cwd=workspace, data_dir=data_dir)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith("token 'ci' revoked")
    after = run_cli([":tokens", "list", "--json"], cwd=workspace, data_dir=data_dir)
    assert [entry["name"] for entry in json.loads(after.stdout)] == ["reader"]


def test_mistakes_are_one_line_and_exit_2(workspace: Path, data_dir: Path) -> None:
    assert _create(workspace, data_dir, "ci", "--scope", "runs:read").returncode == 0
    before = (data_dir / "tokens.json").read_text()
    for args, message in [
        ([":tokens", "revoke", "nope"], "no token named 'nope'"),
        ([":tokens", "create", "--name", "ci", "--scope", "jobs:read"],
         "a token named 'ci' already exists"),
        ([":tokens", "create", "--name", "x", "--scope", "jobs:read", "--expires", "soon"],
         "invalid --expires 'soon'"),
        ([":tokens", "create", "--name", "x", "--scope", "jobs:read", "--expires",
          "2001-01-01T00:00:00Z"], "is in the past"),
        ([":tokens", "create", "--name", "x", "--scope", "runs:delete"],
         "unknown scope runs:delete"),
        ([":tokens", "create", "--name", "x", "--scope", "jobs:read", "--tokens", "a.json",
          "--file", "b.json"], "give the tokens file once"),
    ]:
        done = run_cli(args, cwd=workspace, data_dir=data_dir)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stdout == ""
    assert (data_dir / "tokens.json").read_text() == before
    assert not (workspace / "a.json").exists() and not (workspace / "b.json").exists()


def test_the_old_file_flag_still_works_unlisted(workspace: Path, data_dir: Path,
                                                tmp_path: Path) -> None:
    # `:tokens create --file FILE` was documented before --tokens; scripts using it go on.
    path = tmp_path / "old.json"
    assert _create(workspace, data_dir, "ci", "--scope", "runs:read", "--file",
                   str(path)).returncode == 0
    listed = run_cli([":tokens", "list", "--tokens", str(path)], cwd=workspace,
                     data_dir=data_dir)
    assert listed.stdout.splitlines()[1].split()[0] == "ci"
    helped = run_cli([":tokens", "create", "--help"], cwd=workspace, data_dir=data_dir)
    assert "--tokens" in helped.stdout and "--file" not in helped.stdout
    usage = run_cli(["--help"], cwd=workspace, data_dir=data_dir)
    assert ":tokens list|create|revoke" in usage.stdout


def test_concurrent_creates_all_land(workspace: Path, data_dir: Path) -> None:
    names = [f"ci-{n}" for n in range(8)]
    processes = [subprocess.Popen([*FLWD, ":tokens", "create", "--name", name, "--scope",
                                   "runs:read"], cwd=workspace, env=flwd_env(data_dir),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name in names]
    tokens = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        tokens.append(out.strip())
    listed = run_cli([":tokens", "list", "--json"], cwd=workspace, data_dir=data_dir)
    assert sorted(entry["name"] for entry in json.loads(listed.stdout)) == names
    assert len(set(tokens)) == len(names)
    assert sorted(p.name for p in data_dir.iterdir()) == ["tokens.json", "tokens.json.lock"]


def test_a_failed_write_leaves_the_file_as_it_was(workspace: Path, data_dir: Path) -> None:
    assert _create(workspace, data_dir, "ci", "--scope", "runs:read").returncode == 0
    path = data_dir / "tokens.json"
    before = path.read_text()
    limit = len(before) + 16  # room for the old document, not for one more token

    def small_files() -> None:  # a full disk, as far as this process can tell
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([*FLWD, ":tokens", "create", "--name", "more", "--scope",
                           "runs:read"], cwd=workspace,
                          env=flwd_env(data_dir, PYTHONDONTWRITEBYTECODE="1"),
                          capture_output=True, text=True, timeout=60, check=False,
                          preexec_fn=small_files)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # no token is shown for a token that was not stored
    assert done.stderr.startswith(f"flwd: error: cannot write tokens file {path}")
    assert len(done.stderr.splitlines()) == 1
    assert path.read_text() == before
    assert sorted(os.listdir(data_dir)) == ["tokens.json", "tokens.json.lock"]
