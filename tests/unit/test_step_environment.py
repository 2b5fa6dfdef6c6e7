"""step_environment: one recipe for host and container steps, differing only where said."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from flwd.cli._init import scaffold
from flwd.jobs import bind_cli, discover, parse_cli_tokens
from flwd.plan import Plan, build_plan, step_environment
from flwd.policy import Decision

HOST = {"PATH": "/host/bin", "HOME": "/home/me", "LANG": "C.UTF-8", "FLWD_DATA_DIR": "/d"}


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    root = tmp_path / "scripts"
    root.mkdir()
    scaffold(root, "bash", "tools/greet")
    job = discover(root).get("tools.greet")
    binding = bind_cli(job.config.args, parse_cli_tokens(job.config.args, ["--who", "Dana"],
                                                          job_id=job.id), job_id=job.id)
    return build_plan(job, binding, profile="secure", workspace=tmp_path, scripts_root=root)


def inheriting(plan: Plan) -> Plan:
    allowed = Decision("env.inheritance", "allowed", "policy.override.allowed", "test")
    return dataclasses.replace(plan, decisions=[*plan.decisions, allowed])


def environment(plan: Plan, *, in_container: bool, secret_files: dict[str, str] | None = None,
                bash_env: Path | None = None) -> dict[str, str]:
    return step_environment(plan, plan.steps[0], run_id="run-1", run_dir=Path("/runs/run-1"),
                            host_env=HOST, secret_files=secret_files or {},
                            in_container=in_container, bash_env=bash_env)


def test_a_host_step_gets_the_host_path_and_flwd_variables(plan: Plan) -> None:
    env = environment(plan, in_container=False)
    assert env["PATH"] == "/host/bin"
    assert "HOME" not in env and "LANG" not in env
    assert env["ARG_WHO"] == "Dana"
    assert env["FLWD_STEP_KEY"] == f"run-1/{plan.steps[0].id}"
    assert env["FLWD_RUN_DIR"] == "/runs/run-1"
    assert "BASH_ENV" not in env


def test_a_container_step_keeps_the_image_path(plan: Plan) -> None:
    host = environment(plan, in_container=False)
    env = environment(plan, in_container=True)
    assert "PATH" not in env
    assert {k: v for k, v in host.items() if k != "PATH"} == env


def test_inheritance_filters_host_variables_only_in_a_container(plan: Plan) -> None:
    host = environment(inheriting(plan), in_container=False)
    assert host["HOME"] == "/home/me" and host["FLWD_DATA_DIR"] == "/d"
    env = environment(inheriting(plan), in_container=True)
    assert env["LANG"] == "C.UTF-8"
    assert "HOME" not in env and "PATH" not in env and "FLWD_DATA_DIR" not in env


def test_secrets_are_paths_and_bash_env_comes_last(plan: Plan) -> None:
    env = environment(plan, in_container=False, secret_files={"api-token": "/s/api-token"},
                      bash_env=Path("/runs/run-1/profile.sh"))
    assert env["ARG_API_TOKEN_FILE"] == "/s/api-token"
    assert list(env)[-1] == "BASH_ENV"
    assert env["BASH_ENV"] == "/runs/run-1/profile.sh"


def test_the_references_names_hold_flwds_values(plan: Plan) -> None:
    # A job written for flowd reads RUN_DIR, FLOWD_RUN_DIR, DATA_DIR, FLOWD_DATA_DIR.
    access = {"FLWD_DATA_DIR": "/data", "FLWD_KV_NAMESPACES": "core_triggers=1"}
    host = step_environment(plan, plan.steps[0], run_id="run-1", run_dir=Path("/runs/run-1"),
                            host_env=HOST, secret_files={}, in_container=False,
                            local_access=access)
    assert host["RUN_DIR"] == host["FLOWD_RUN_DIR"] == host["FLWD_RUN_DIR"] == "/runs/run-1"
    assert host["DATA_DIR"] == host["FLOWD_DATA_DIR"] == host["FLWD_DATA_DIR"] == "/data"
    # In a container the run dir is mounted at its own path; the data dir is not mounted.
    env = environment(plan, in_container=True)
    assert env["RUN_DIR"] == env["FLOWD_RUN_DIR"] == "/runs/run-1"
    assert not {"DATA_DIR", "FLOWD_DATA_DIR", "FLWD_DATA_DIR"} & set(env)


def test_a_container_inherits_none_of_the_references_names(plan: Plan) -> None:
    host = {**HOST, "RUN_DIR": "/outer/run", "DATA_DIR": "/outer", "FLOWD_DATA_DIR": "/outer"}
    env = step_environment(inheriting(plan), plan.steps[0], run_id="run-1",
                           run_dir=Path("/runs/run-1"), host_env=host, secret_files={},
                           in_container=True)
    assert env["RUN_DIR"] == "/runs/run-1" and env["LANG"] == "C.UTF-8"
    assert "DATA_DIR" not in env and "FLOWD_DATA_DIR" not in env


def test_a_jobs_env_sets_data_dir_but_not_the_run_dir(tmp_path: Path) -> None:
    root = tmp_path / "scripts"
    job_dir = root / "own"
    (job_dir / "config.d").mkdir(parents=True)
    (job_dir / "config.d" / "config.yaml").write_text(
        "interpreter: bash\nenv: {DATA_DIR: /mine, RUN_DIR: /x}\n")
    (job_dir / "100_main.sh").write_text("true\n")
    job = discover(root).get("own")
    own = build_plan(job, bind_cli(job.config.args, parse_cli_tokens(job.config.args, [],
                                                                     job_id=job.id),
                                   job_id=job.id),
                     profile="secure", workspace=tmp_path, scripts_root=root)
    env = step_environment(own, own.steps[0], run_id="run-1", run_dir=Path("/runs/run-1"),
                           host_env=HOST, secret_files={}, in_container=False,
                           local_access={"FLWD_DATA_DIR": "/data"})
    assert env["DATA_DIR"] == "/mine" and env["FLOWD_DATA_DIR"] == "/data"
    assert env["RUN_DIR"] == "/runs/run-1"
