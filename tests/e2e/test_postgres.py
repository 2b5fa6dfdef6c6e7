"""flwd on a PostgreSQL Core DB, end to end: ``flwd :serve --db``, ``FLWD_DB``, ``:db``.

A real server on port 0 and the real CLI against a fresh database of the session's
throw-away cluster (tests/_postgres.py). The cluster trusts its socket, so a password
in the URL is accepted and ignored: what is checked is that it never shows.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, run_cli, start_server, wait_until, write_job

DEV = {"Authorization": "Bearer dev-token"}
SECRET = "pw-e2e-4b9f-never-shown"


def _with_password(dsn: str) -> str:
    return dsn.replace("flwd@", f"flwd:{SECRET}@", 1)


def _command_lines() -> str:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as file:
                    found.append(file.read().decode(errors="replace"))
            except OSError:
                continue
    return "\n".join(found)


def test_serve_on_postgres_runs_demo_and_the_cli_lists_it(workspace: Path, data_dir: Path,
                                                          postgres_dsn: str) -> None:
    server: Server = start_server(workspace, data_dir, "--dev", "--db", postgres_dsn)
    try:
        response = httpx.post(f"{server.url}/runs", headers=DEV, timeout=30,
                              json={"job_id": "demo", "args": {"name": "pg"}})
        assert response.status_code == 201, response.text
        run_id = response.json()["id"]

        def finished() -> dict[str, Any] | None:
            run = httpx.get(f"{server.url}/runs/{run_id}", headers=DEV, timeout=30).json()
            return run if run["status"] not in ("queued", "running") else None

        assert wait_until(finished, "the demo run")["status"] == "completed"
        events = httpx.get(f"{server.url}/runs/{run_id}/events.ndjson", headers=DEV,
                           timeout=30).text
        assert "Hello, pg!" in events
        storage = httpx.get(f"{server.url}/health/storage", headers=DEV, timeout=30).json()
        assert storage["driver"] == "postgresql" and storage["runs"] == 1
    finally:
        assert server.stop() == 0
    # The CLI reads the same database, server or none; the data dir has no SQLite file.
    listed = run_cli([":runs", "--db", postgres_dsn, "--json"], cwd=workspace,
                     data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    assert run_id in listed.stdout and '"completed"' in listed.stdout
    logs = run_cli([":logs", run_id], cwd=workspace, data_dir=data_dir, FLWD_DB=postgres_dsn)
    assert logs.returncode == 0 and "Hello, pg!" in logs.stdout, logs.stderr
    assert not (data_dir / "flwd.db").exists()
    serving = next(line for line in server.log if '"serving"' in line)
    assert "postgresql://flwd@/" in serving  # the log says which Core DB it serves


def test_a_password_never_shows_in_logs_server_metrics_or_processes(
        workspace: Path, data_dir: Path, postgres_dsn: str) -> None:
    server = start_server(workspace, data_dir, "--dev", FLWD_DB=_with_password(postgres_dsn))
    try:
        seen = [httpx.get(f"{server.url}{path}", headers=DEV, timeout=30).text
                for path in ("/server", "/health/storage", "/metrics")]
        processes = _command_lines()
    finally:
        server.stop()
    assert SECRET not in "".join(server.log) + "".join(seen) + processes
    assert "postgresql://flwd@/" in "".join(server.log)


def test_a_password_on_the_command_line_is_refused(workspace: Path, data_dir: Path,
                                                   postgres_dsn: str) -> None:
    for args in ([":serve", "--db", _with_password(postgres_dsn)],
                 ["--db", _with_password(postgres_dsn), ":runs"],
                 [f"--db={postgres_dsn}&password={SECRET}", "demo"]):
        done = run_cli(args, cwd=workspace, data_dir=data_dir)
        assert done.returncode == 2, done
        assert done.stderr.count("\n") == 1 and SECRET not in done.stderr
        assert "PGPASSWORD" in done.stderr


def test_db_migrate_and_status_on_both_backends(workspace: Path, data_dir: Path,
                                                postgres_dsn: str) -> None:
    from flwd.store import SCHEMA_VERSION

    for db in (postgres_dsn, str(data_dir / "elsewhere.db")):
        status = run_cli([":db", "status", "--db", db], cwd=workspace, data_dir=data_dir)
        assert status.returncode == 0 and "no database yet" in status.stdout, status.stderr
        first = run_cli([":db", "migrate", "--db", db], cwd=workspace, data_dir=data_dir)
        assert first.returncode == 0, first.stderr
        assert "created the Core DB" in first.stdout
        again = run_cli([":db", "migrate"], cwd=workspace, data_dir=data_dir, FLWD_DB=db)
        assert f"is up to date (schema version {SCHEMA_VERSION})" in again.stdout
        status = run_cli([":db", "status", "--db", db], cwd=workspace, data_dir=data_dir)
        assert f"schema version {SCHEMA_VERSION}" in status.stdout
    assert (data_dir / "elsewhere.db").exists() and not (data_dir / "flwd.db").exists()


def test_a_job_run_with_db_writes_there_and_its_steps_reach_it(workspace: Path, data_dir: Path,
                                                               postgres_dsn: str) -> None:
    # A step's `flwd :kv` reaches the Core DB its run is in (FLWD_DB is handed down).
    python_path = os.pathsep.join(filter(None, [str(Path(__file__).parents[2]),
                                                os.environ.get("PYTHONPATH")]))
    write_job(workspace, "kvjob", "interpreter: bash\n", {"100_put.sh": (
        f"set -e\nprintf v1 | PYTHONPATH='{python_path}' '{sys.executable}' -m flwd "
        ":kv put core_invocation_state k1\n")})
    done = run_cli(["--db", postgres_dsn, "kvjob"], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 0, done.stderr + done.stdout
    got = run_cli([":kv", "get", "core_invocation_state", "k1"], cwd=workspace,
                  data_dir=data_dir, FLWD_DB=postgres_dsn)
    assert got.returncode == 0 and got.stdout == "v1", got.stderr
    assert not (data_dir / "flwd.db").exists()


def test_an_unreachable_database_is_one_line(workspace: Path, data_dir: Path,
                                             tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    dsn = f"postgresql://flwd:{SECRET}@/flwd?host={tmp_path}&port=5999"
    done = run_cli([":runs"], cwd=workspace, data_dir=data_dir, FLWD_DB=dsn)
    assert done.returncode != 0
    assert done.stderr.startswith("flwd: error: cannot connect to the Core DB "
                                  f"postgresql://flwd@/flwd?host={tmp_path}")
    assert done.stderr.count("\n") == 1 and SECRET not in done.stderr


def _answered_for_a_command_line(server: Any) -> int:
    """How many command lines the server answered without a run (200 on the socket)."""
    count = 0
    for line in list(server.log):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        count += (record.get("msg") == "request" and record.get("route") == "/runs"
                  and record.get("method") == "POST" and record.get("subject") == "local"
                  and record.get("status") == 200)
    return count


def test_a_command_line_goes_to_a_local_server_only_on_the_same_core_db(
        workspace: Path, data_dir: Path, postgres_dsn: str) -> None:
    from flwd.store import SqliteStore
    from flwd.store.postgres import PostgresStore

    server = start_server(workspace, data_dir, "--db", postgres_dsn)
    try:
        # Without FLWD_DB the command line means the data dir's SQLite file: it runs here.
        here = run_cli(["demo", "--name", "sqlite"], cwd=workspace, data_dir=data_dir)
        assert here.returncode == 0, here.stderr
        # With the server's Core DB, the server runs it (and it is recorded there).
        there = run_cli(["demo", "--name", "pg"], cwd=workspace, data_dir=data_dir,
                        FLWD_DB=postgres_dsn)
        assert there.returncode == 0 and "Hello, pg!" in there.stdout, there.stderr
        # A verb the server answers reads the server's Core DB, the command line's.
        answered = _answered_for_a_command_line(server)  # the declined demo's, so far
        thin = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir,
                       FLWD_DB=postgres_dsn)
        wait_until(lambda: _answered_for_a_command_line(server) > answered, "the answer")
        listed = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir,
                         FLWD_DB=postgres_dsn, FLWD_LOCAL="1")
        sqlite = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir, FLWD_LOCAL="1")
        assert thin.stdout == listed.stdout != sqlite.stdout
    finally:
        server.stop()
    [local] = SqliteStore(data_dir / "flwd.db").list_runs()
    assert local.owner_kind == "cli"
    postgres = PostgresStore(postgres_dsn)
    try:
        [served] = postgres.list_runs()
    finally:
        postgres.close()
    # A server on PostgreSQL is a cluster replica: it leased the run (docs/scale-out.md).
    assert served.owner_kind == "cluster" and served.args == {"name": "pg", "loud": False,
                                                               "tags": []}
