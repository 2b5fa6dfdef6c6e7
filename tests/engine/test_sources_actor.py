"""Source actors inside a real engine: checkouts run concurrently, apart from runs.

Two git clones are held *inside git* (a real ``uploadpack.packObjectsHook``
that blocks on a FIFO) while a run streams output line by line: every line
still arrives while both checkouts are in flight, and both sources become
ready once released. No sleeps: FIFOs and the event stream synchronise.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import aclosing
from pathlib import Path

import pytest
import trio

from flwd.engine import open_engine
from flwd.errors import SourceCheckoutFailed
from flwd.sources import AllowList, SourceSpec
from tests.conftest import write_job
from tests.engine.test_engine import make_plan, settings_for

GIT_ID = ["-c", "user.email=t@example.org", "-c", "user.name=t"]
HOOK = """#!/bin/sh
# Runs inside upload-pack, in the repository being cloned: say so, then wait.
echo started > "$PWD/started.fifo"
read _ < "$PWD/release.fifo"
exec "$@"
"""


def bare_repo(base: Path, name: str) -> Path:
    work = base / f"{name}-work"
    job = work / "scripts" / "gitjob" / "config.d"
    job.mkdir(parents=True)
    (job / "config.yaml").write_text("interpreter: bash\n")
    (work / "scripts" / "gitjob" / "100_run.sh").write_text(f"echo {name}\n")
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run(["git", *GIT_ID, "-C", str(work), "add", "-A"], check=True)
    subprocess.run(["git", *GIT_ID, "-C", str(work), "commit", "-qm", "one"], check=True)
    bare = base / f"{name}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    os.mkfifo(bare / "started.fifo")
    os.mkfifo(bare / "release.fifo")
    return bare


def read_fifo(path: Path) -> str:
    with path.open() as fifo:
        return fifo.read()


def write_fifo(path: Path, text: str) -> None:
    with path.open("w") as fifo:
        fifo.write(text)


@pytest.fixture
def gated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME whose git config makes every clone wait in the hook above."""
    home = tmp_path / "home"
    home.mkdir()
    hook = tmp_path / "hook.sh"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    (home / ".gitconfig").write_text(f"[uploadpack]\n\tpackObjectsHook = {hook}\n")
    monkeypatch.setenv("HOME", str(home))
    return tmp_path


async def test_concurrent_checkouts_never_disturb_a_streaming_run(
        workspace: Path, data_dir: Path, gated_git: Path) -> None:
    repos = {name: bare_repo(gated_git / "repos", name) for name in ("alpha", "beta")}
    feed = gated_git / "feed.fifo"
    os.mkfifo(feed)
    write_job(workspace, "echoer", "interpreter: bash\n", {
        "100_echo.sh": f'while read -r line; do echo "$line"; [ "$line" = end ] && break; '
                       f"done < {feed}\n"})
    settings = settings_for(workspace, data_dir)
    allow = AllowList.build(settings.scripts_root, [str(gated_git / "repos")], env={})
    added: dict[str, str] = {}
    async with open_engine(settings, sources=allow) as engine:
        run = await engine.start_run(make_plan(settings, "echoer"))

        async def add(name: str) -> None:
            spec = SourceSpec(name, "git", "main", f"file://{repos[name]}")
            source, created = await engine.add_source(spec)
            assert created
            added[name] = source.state.status

        async with trio.open_nursery() as nursery:
            for name in repos:
                nursery.start_soon(add, name)
            # Both clones are now inside git at the same time, neither finished.
            for repo in repos.values():
                assert await trio.to_thread.run_sync(read_fifo, repo / "started.fifo") \
                    == "started\n"
            assert added == {}
            # The run keeps streaming, line by line, while both checkouts wait.
            writer = await trio.to_thread.run_sync(lambda: feed.open("w"))
            async with aclosing(engine.events(run.id)) as events:
                for index in range(30):
                    writer.write(f"line {index}\n")
                    writer.flush()
                    async for batch in events:
                        messages = [e["data"].get("message") for record in batch
                                    for e in record.iter_events()]
                        if f"echoer: line {index}" in messages or f"line {index}" in messages:
                            break
            assert added == {}, "the checkouts were still held in git"
            for repo in repos.values():
                await trio.to_thread.run_sync(write_fifo, repo / "release.fifo", "go\n")
        writer.write("end\n")
        writer.close()
        async with aclosing(engine.events(run.id)) as events:
            async for _ in events:
                pass
        final = await engine.get_run(run.id)
        ids = [job.id for job in (await engine.catalog()).jobs]
    assert added == {"alpha": "ready", "beta": "ready"}
    assert {"alpha/gitjob", "beta/gitjob"} <= set(ids)
    assert final.status == "completed"


async def test_a_failing_checkout_is_reported_and_leaves_no_trace(
        workspace: Path, data_dir: Path, tmp_path: Path) -> None:
    settings = settings_for(workspace, data_dir)
    (tmp_path / "empty").mkdir()
    allow = AllowList.build(settings.scripts_root, [str(tmp_path)], env={})
    async with open_engine(settings, sources=allow) as engine:
        with pytest.raises(SourceCheckoutFailed, match="git clone"):
            await engine.add_source(SourceSpec("broken", "git", "main",
                                               f"file://{tmp_path / 'empty'}"))
        assert engine.sources() == []
        # The name is free again and other work goes on.
        run = await engine.start_run(make_plan(settings, "demo", name="after"))
        async with aclosing(engine.events(run.id)) as events:
            async for _ in events:
                pass
        assert (await engine.get_run(run.id)).status == "completed"
    assert not (data_dir / "sources" / "broken").exists()


async def test_an_unwritable_checkout_is_a_problem_not_a_crash(
        workspace: Path, data_dir: Path, tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "repos", "tools")
    settings = settings_for(workspace, data_dir)
    (data_dir / "sources").mkdir(parents=True)
    (data_dir / "sources" / "tools").write_text("not a directory")  # OSError on mkdir
    allow = AllowList.build(settings.scripts_root, [str(tmp_path / "repos")], env={})
    async with open_engine(settings, sources=allow) as engine:
        with pytest.raises(SourceCheckoutFailed, match="cannot write the checkout"):
            await engine.add_source(SourceSpec("tools", "git", "main", f"file://{repo}"))
        assert engine.sources() == []
        # The actor system is intact: the next registration works.
        (data_dir / "sources" / "tools").unlink()
        source, created = await engine.add_source(
            SourceSpec("tools", "git", "main", f"file://{repo}"))
        assert created and source.state.status == "ready"
