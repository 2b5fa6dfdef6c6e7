"""Source trees: leases (shared flocks) keep a tree from being deleted, in this process or
any other; sweeps delete what nothing points at and nobody leases (real directories)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flwd.errors import SourceCheckoutFailed
from flwd.sources import delete_tree, lease_checkout, sweep, sweep_source


def tree(sources: Path, name: str, commit: str) -> Path:
    path = sources / name / "trees" / commit
    (path / "scripts").mkdir(parents=True)
    (path / "scripts" / "file").write_text(commit)
    return path


def test_a_leased_tree_is_kept_and_deleted_once_released(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    old = tree(sources, "tools", "a" * 40)
    lease = lease_checkout(sources, old)
    assert lease is not None and lease.held
    second = lease_checkout(sources, old)  # leases are shared
    assert second is not None
    assert delete_tree(old) is False and old.is_dir()
    lease.release()
    assert delete_tree(old) is False  # the other lease still holds it
    second.release()
    assert delete_tree(old) is True and not old.exists()
    assert delete_tree(old) is True  # gone is gone
    assert [p.name for p in (sources / "tools" / "trees").iterdir()] == []


def test_leasing_a_deleted_tree_is_a_clear_error(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    gone = tree(sources, "tools", "b" * 40)
    assert delete_tree(gone)
    with pytest.raises(SourceCheckoutFailed, match="is gone"):
        lease_checkout(sources, gone)


def test_a_users_folder_is_never_leased(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    assert lease_checkout(tmp_path / "sources", folder) is None


def test_a_lease_of_another_process_keeps_the_tree_until_it_exits(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    used = tree(sources, "tools", "c" * 40)
    with subprocess.Popen(
            [sys.executable, "-c",
             "import sys; from pathlib import Path; from flwd.sources import lease_checkout\n"
             f"lease = lease_checkout(Path({str(sources)!r}), Path({str(used)!r}))\n"
             "print('leased', flush=True); sys.stdin.read()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "leased\n"
            assert sweep_source(sources, "tools", None) == [] and used.is_dir()
        finally:
            holder.kill()  # the kernel drops the lease
            holder.wait(timeout=30)
    assert sweep_source(sources, "tools", None) == [used]
    assert not (sources / "tools").exists()


def test_sweep_keeps_what_sources_point_at_and_clears_the_rest(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    pinned = tree(sources, "tools", "d" * 40)
    stale = tree(sources, "tools", "e" * 40)
    (sources / "tools" / "repo.git").mkdir()
    orphan = tree(sources, "gone", "f" * 40)
    leased_orphan = tree(sources, "left", "1" * 40)
    addon = sources / "addon"
    addon.mkdir()
    (addon / "manifest.yaml").write_text("x")
    old_addon = sources / "oldaddon"
    old_addon.mkdir()
    writing = sources / "tools" / "trees" / f".{'2' * 40}.abcd1234"  # being extracted
    writing.mkdir()
    half_deleted = sources / ".x.deleting-0badcafe"  # a crash mid-delete
    (half_deleted / "deep").mkdir(parents=True)
    (sources / ".changed").write_text("3")

    with lease_checkout(sources, leased_orphan):
        deleted = sweep(sources, {"tools": [pinned], "addon": [addon],
                                  "local": [tmp_path / "folder"]})
        assert sorted(deleted) == sorted([stale, orphan, old_addon])
        assert pinned.is_dir() and (sources / "tools" / "repo.git").is_dir()
        assert addon.is_dir() and writing.is_dir() and (sources / ".changed").exists()
        assert not (sources / "gone").exists() and not half_deleted.exists()
        assert leased_orphan.is_dir()  # its source is gone, a run still uses it
    assert sweep(sources, {"tools": [pinned], "addon": [addon]}) == [leased_orphan]
    assert not (sources / "left").exists()
