"""flwd.daemon: one owner per data dir (a real flock), who it is (serve.json), and the one
line a refused command gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flwd.daemon import DataDirBusy, Owner, client_url, hold_data_dir, read_owner
from flwd.daemon._owner import refusal


def test_the_owner_is_published_and_withdrawn(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with hold_data_dir(data, "serve", [":serve"], scripts_root="/ws/scripts") as lock:
        owner = read_owner(data)
        assert owner is not None and (owner.kind, owner.pid) == ("serve", os.getpid())
        assert owner.start is not None and owner.url is None
        lock.publish(Owner("serve", os.getpid(), owner.start, url="http://127.0.0.1:8080",
                           scripts_root="/ws/scripts"))
        assert read_owner(data) == lock.owner
        assert oct((data / "serve.json").stat().st_mode & 0o777) == "0o600"
        with pytest.raises(DataDirBusy) as refused:
            hold_data_dir(data, "sources", [":sources", "refresh", "tools"])
        assert refused.value.one_line() == (
            f"flwd :serve (pid {os.getpid()}) is using this data dir; change sources through "
            "it: flwd --server http://127.0.0.1:8080 :sources refresh tools")
        assert refused.value.problem.exit_status == 2
    assert not (data / "serve.json").exists() and (data / "serve.lock").exists()
    with hold_data_dir(data, "sources", [":sources", "remove", "x"]) as again:
        assert again.owner.command == ":sources remove x"


def test_a_stale_description_is_not_trusted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (data / "serve.json").write_text(json.dumps({"kind": "serve", "pid": int(dead.stdout),
                                                 "url": "http://127.0.0.1:1"}))
    assert read_owner(data) is None
    # Nobody holds the lock: the stale file is no obstacle.
    with hold_data_dir(data, "sources", [":sources", "refresh", "tools"]):
        assert read_owner(data) is not None


def test_an_unwritable_description_does_not_stop_the_owner(tmp_path: Path) -> None:
    (tmp_path / "serve.json").mkdir()  # as good as a full disk for os.replace
    with hold_data_dir(tmp_path, "serve", [":serve"]) as lock:
        assert lock.held and read_owner(tmp_path) is None
        assert lock.publish(lock.owner) is False
        with pytest.raises(DataDirBusy, match="another flwd process"):
            hold_data_dir(tmp_path, "sources", [":sources", "refresh", "tools"])


@pytest.mark.parametrize("text", ["", "[]", "{}", '{"kind": "serve"}', '{"kind": "x", "pid": 1}',
                                  '{"kind": "serve", "pid": true}',
                                  '{"kind": "serve", "pid": 1, "url": 5}', "\x00" * 10])
def test_malformed_descriptions_name_nobody(tmp_path: Path, text: str) -> None:
    (tmp_path / "serve.json").write_text(text)
    assert read_owner(tmp_path) is None


def test_refusals() -> None:
    server = Owner("serve", 7, 1, url="http://127.0.0.1:9")
    change = Owner("sources", 8, 1, command=":sources add tools")
    assert refusal(server, [":serve"]).one_line() == (
        "flwd :serve (pid 7) already serves this data dir at http://127.0.0.1:9; stop it "
        "first, or give this server another one (flwd --data-dir DIR :serve)")
    assert refusal(change, [":serve"]).one_line() == (
        "flwd :sources add tools (pid 8) is changing the sources of this data dir; start the "
        "server when it is done")
    assert refusal(change, [":sources", "remove", "x"]).one_line().endswith("try again when "
                                                                           "it is done")
    assert "flwd --server URL :sources add --name 'a b'" in refusal(
        None, [":sources", "add", "--name", "a b"]).one_line()
    assert "\n" not in refusal(server, [":sources", "refresh", "x\ny"]).one_line()


@pytest.mark.parametrize(("bound", "url"), [
    ("http://0.0.0.0:8080", "http://127.0.0.1:8080"),
    ("http://[::]:8080", "http://[::1]:8080"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://10.1.2.3:80", "http://10.1.2.3:80"),
])
def test_client_url(bound: str, url: str) -> None:
    assert client_url(bound) == url
