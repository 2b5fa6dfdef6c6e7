"""The container executor with real Podman: output, isolation, secrets, limits, cancel,
name conflicts, orphans of a crashed server, a missing runtime."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import trio

from flwd.containers import ContainerActor, ContainerSpec, Runtime, detect_runtime
from flwd.errors import ContainerNameConflict
from tests.conftest import FLWD, flwd_env, processes_under, run_cli, write_job

from .conftest import IMAGE, flwd_containers, podman

AUTH = {"Authorization": "Bearer dev-token"}


def follow(url: str, run_id: str):
    """The run's events from its SSE stream, live, until the stream ends."""
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", headers=AUTH,
                      timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                yield json.loads(line[6:])


def _container_job(workspace: Path, name: str, script: str, *, extra: str = "",
                   args: str = "") -> Path:
    config = f"executor: container\ncontainer:\n  image: {IMAGE}\n{extra}{args}"
    return write_job(workspace, name, config, {"100_main.sh": "#!/bin/sh\n" + script})


def _kv(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


PROBE = r"""
echo "caps=$(grep -E '^Cap(Eff|Prm)' /proc/self/status | tr -d '\t' | tr '\n' ' ')"
if touch /probe 2>/dev/null; then echo rootfs=writable; else echo rootfs=read-only; fi
echo "ifaces=$(ls /sys/class/net | tr '\n' ' ')"
echo "secret_sha=$(busybox sha256sum /run/secrets/api_key | cut -c1-64)"
echo "secret_in_env=$(env | grep -c 'tok-3f9a' || true)"
echo "token_file=$ARG_API_KEY_FILE"
echo "echo_secret=$(cat /run/secrets/api_key)"
if touch "$FLWD_RUN_DIR/artifact"; then echo rundir=writable; fi
if touch "$FLWD_JOB_DIR/nope" 2>/dev/null; then echo jobdir=writable; else echo jobdir=read-only; fi
echo "uid=$(id -u)"
"""
SECRET_ARGS = """argspec:
  args:
    - {name: api_key, type: string, format: secret}
"""


def test_isolation_and_secrets_inside_the_container(workspace, data_dir, podman_env,
                                                     policy_file):
    import hashlib

    _container_job(workspace, "probe", PROBE, args=SECRET_ARGS)
    secret = "tok-3f9a-very-secret"
    result = run_cli(["probe", "--api_key", secret], cwd=workspace, data_dir=data_dir,
                     FLWD_POLICY_FILE=str(policy_file), **podman_env)
    assert result.returncode == 0, result.stderr
    seen = _kv(result.stdout)
    # Capability sets empty, read-only root, only loopback, no secret in env.
    assert seen["caps"].split() == ["CapPrm:0000000000000000", "CapEff:0000000000000000"]
    assert seen["rootfs"] == "read-only"
    assert seen["ifaces"].split() == ["lo"]
    assert seen["secret_sha"] == hashlib.sha256(secret.encode()).hexdigest()
    assert seen["secret_in_env"] == "0"
    assert seen["token_file"] == "/run/secrets/api_key"
    # A secret printed by the job is masked before it becomes an event.
    assert seen["echo_secret"] == "[secret]"
    assert secret not in result.stdout + result.stderr
    assert (seen["rundir"], seen["jobdir"]) == ("writable", "read-only")


DAG_IN_CONTAINERS = f"""\
executor: container
container: {{image: {IMAGE}}}
composition: steps
steps:
  - {{id: init, script: init.sh}}
  - {{id: run, script: run.sh}}
"""


def test_the_references_run_dir_names_inside_containers(workspace, data_dir, podman_env,
                                                        policy_file):
    # The reference's demo-dag-container: init writes $RUN_DIR/state.txt, run appends.
    write_job(workspace, "dagbox", DAG_IN_CONTAINERS, {
        "init.sh": '#!/bin/sh\necho step1 > "$RUN_DIR/state.txt"\n',
        "run.sh": '#!/bin/sh\necho step2 >> "$RUN_DIR/state.txt"\ncat "$RUN_DIR/state.txt"\n'
                  'echo "flowd_run_dir=$FLOWD_RUN_DIR"\necho "flwd_run_dir=$FLWD_RUN_DIR"\n'
                  'echo "data_dir=${DATA_DIR-unset} ${FLOWD_DATA_DIR-unset}"\n'})
    result = run_cli(["dagbox"], cwd=workspace, data_dir=data_dir,
                     FLWD_POLICY_FILE=str(policy_file), **podman_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["[run] step1", "[run] step2"], result.stdout
    seen = _kv("\n".join(line.removeprefix("[run] ") for line in lines))
    run_dir = Path(seen["flwd_run_dir"])
    assert seen["flowd_run_dir"] == str(run_dir) and run_dir.parent == data_dir.resolve() / "runs"
    assert (run_dir / "state.txt").read_text() == "step1\nstep2\n"
    # The data dir is not mounted in a container: no variable names it.
    assert seen["data_dir"] == "unset unset"


def test_output_streams_live(workspace, data_dir, podman_env, policy_file):
    job = _container_job(workspace, "stream",
                         'echo first\nwhile [ ! -e "$FLWD_JOB_DIR/go" ]; do sleep 0.05; done\n'
                         "echo second >&2\necho third\n")
    process = subprocess.Popen(
        [*FLWD, "stream"], cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=flwd_env(data_dir, FLWD_POLICY_FILE=str(policy_file), **podman_env))
    try:
        assert process.stdout is not None
        # The first line arrives while the container is still running (it waits for "go").
        assert process.stdout.readline() == "first\n"
        assert process.poll() is None
        (job / "go").touch()
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert out == "third\n"
    assert "second" in err


def test_resource_limits_are_applied(workspace, data_dir, podman_env, policy_file):
    _container_job(workspace, "limited", r"""
for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
  [ -r "$f" ] && echo "memory=$(cat $f)" && break
done
if [ -r /sys/fs/cgroup/cpu.max ]; then echo "cpu=$(cat /sys/fs/cgroup/cpu.max | tr ' ' '/')"
else echo "cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)/$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"; fi
for f in /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max; do
  [ -r "$f" ] && echo "pids=$(cat $f)" && break
done
""", extra="  resources: {cpu: 250m, memory: 48Mi}\n")
    result = run_cli(["limited"], cwd=workspace, data_dir=data_dir,
                     FLWD_POLICY_FILE=str(policy_file), **podman_env)
    assert result.returncode == 0, result.stderr
    seen = _kv(result.stdout)
    assert int(seen["memory"]) == 48 << 20
    quota, period = (int(x) for x in seen["cpu"].split("/"))
    assert quota / period == pytest.approx(0.25)
    assert seen["pids"] == "512"


def test_ceilings_refuse_a_larger_request_before_anything_starts(workspace, data_dir,
                                                                  podman_env, tmp_path):
    bundle = tmp_path / "ceil.yaml"
    bundle.write_text("verify_signatures: disabled\nceilings: {memory: 32Mi}\n")
    _container_job(workspace, "greedy", "echo never\n", extra="  resources: {memory: 1Gi}\n")
    result = run_cli(["greedy"], cwd=workspace, data_dir=data_dir,
                     FLWD_POLICY_FILE=str(bundle), **podman_env)
    assert result.returncode == 2
    assert "requested memory 1024Mi exceeds ceiling 32Mi" in result.stderr
    assert "never" not in result.stdout
    assert not (data_dir / "runs").exists() or not any((data_dir / "runs").iterdir())


def test_ctrl_c_stops_and_removes_the_container(workspace, data_dir, podman_env, policy_file):
    _container_job(workspace, "sleepy", "echo ready\nsleep 300\n")
    process = subprocess.Popen(
        [*FLWD, "sleepy", "--json"], cwd=workspace, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env=flwd_env(data_dir, FLWD_POLICY_FILE=str(policy_file), FLWD_GRACE="3",
                     **podman_env))
    events = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            events.append(json.loads(line))
            if events[-1].get("data", {}).get("message") == "ready":
                break
        assert len(flwd_containers()) == 1
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    events += [json.loads(line) for line in out.splitlines()]
    assert process.returncode == 130, err
    types = [event["type"] for event in events]
    assert "run.canceled" in types
    assert events[-1]["type"] == "run.finish"
    assert events[-1]["data"]["status"] == "canceled"
    assert flwd_containers() == []
    assert processes_under(f"FLWD_RUN_DIR={data_dir}") == []


def test_serve_runs_and_cancels_a_container_job(container_server, workspace):
    write_job(workspace, "sleepy", f"executor: container\ncontainer:\n  image: {IMAGE}\n",
              {"100_main.sh": "#!/bin/sh\necho ready\nsleep 300\n"})
    server = container_server()
    run = httpx.post(f"{server.url}/runs", headers=AUTH, json={
        "job_id": "demo-container", "args": {"name": "Ada"}}).raise_for_status().json()
    lines = list(follow(server.url, run["id"]))
    messages = [e["data"].get("message") for e in lines if e["type"] == "step.log"]
    assert messages == ["Hello Ada from inside a container!"]
    assert lines[-1]["data"]["status"] == "completed"
    finish = next(e for e in lines if e["type"] == "step.finish")
    assert finish["data"]["container"]["image"] == IMAGE
    # A long job, cancelled through the API.
    run = httpx.post(f"{server.url}/runs", headers=AUTH,
                     json={"job_id": "sleepy"}).raise_for_status().json()
    seen = []
    for event in follow(server.url, run["id"]):
        seen.append(event)
        if event["data"].get("message") == "ready":
            cancel = httpx.post(f"{server.url}/runs/{run['id']}:cancel", headers=AUTH)
            assert cancel.status_code == 202
    types = [event["type"] for event in seen]
    assert types.count("run.canceled") == 1
    assert seen[-1]["type"] == "run.finish" and seen[-1]["data"]["status"] == "canceled"
    assert flwd_containers() == []
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "flwd_container_run_seconds_count 2.0" in metrics


def test_a_container_run_says_its_executor_and_runtime(container_server, workspace):
    # Issue 14 item 7: the run object, run.start and the stored run say `container` and
    # the runtime, as the plan's executor_preview does.
    server = container_server()
    plan = httpx.post(f"{server.url}/plans", headers=AUTH, json={
        "job_id": "demo-container", "args": {"name": "Ada"}}).raise_for_status().json()
    assert plan["executor_preview"]["executor"] == "container"
    runtime = plan["executor_preview"]["runtime"]
    assert runtime == "podman"
    run = httpx.post(f"{server.url}/runs", headers=AUTH, json={
        "job_id": "demo-container", "args": {"name": "Ada"}}).raise_for_status().json()
    assert (run["executor"], run["runtime"], run["started_at"]) == ("container", runtime, None)
    records = list(follow(server.url, run["id"]))
    start = records[0]["data"]
    assert (records[0]["type"], start["executor"], start["runtime"]) == (
        "run.start", "container", runtime)
    assert records[-1]["data"]["status"] == "completed"
    stored = httpx.get(f"{server.url}/runs/{run['id']}", headers=AUTH).raise_for_status().json()
    assert (stored["executor"], stored["runtime"], stored["started_at"]) == (
        "container", runtime, start["started_at"])


def test_orphans_of_a_crashed_server_are_removed_at_restart(container_server, workspace,
                                                            data_dir):
    write_job(workspace, "sleepy", f"executor: container\ncontainer:\n  image: {IMAGE}\n",
              {"100_main.sh": "#!/bin/sh\necho ready\nsleep 300\n"})
    server = container_server()
    run = httpx.post(f"{server.url}/runs", headers=AUTH,
                     json={"job_id": "sleepy"}).raise_for_status().json()
    for event in follow(server.url, run["id"]):
        if event["data"].get("message") == "ready":
            break
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    # The server is gone, its container is not.
    assert flwd_containers() == [f"flwd-{run['id']}-100_main.sh"]
    again = container_server()
    assert flwd_containers() == []
    status = httpx.get(f"{again.url}/runs/{run['id']}", headers=AUTH).json()["status"]
    assert status == "interrupted"
    assert processes_under(f"FLWD_RUN_DIR={data_dir}") == []
    assert processes_under(f"FLWD_RUN_ID={run['id']}") == []


def test_orphans_are_removed_whichever_runtime_the_recovering_process_would_use(
        container_server, workspace, data_dir, podman_env, policy_file):
    # The crashed server used podman; the process that recovers its run is told to use
    # docker (FLWD_CONTAINER_RUNTIME), which has no daemon here or is not installed: the
    # container is looked for in every runtime installed, not only in its own.
    write_job(workspace, "sleepy", f"executor: container\ncontainer:\n  image: {IMAGE}\n",
              {"100_main.sh": "#!/bin/sh\necho ready\nsleep 300\n"})
    server = container_server()
    run = httpx.post(f"{server.url}/runs", headers=AUTH,
                     json={"job_id": "sleepy"}).raise_for_status().json()
    for event in follow(server.url, run["id"]):
        if event["data"].get("message") == "ready":
            break
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    # A container of the run outside the processes flwd started — as docker's are (its
    # daemon's children): killing the run's processes does not end it, reaping does.
    detached = f"flwd-{run['id']}-detached"
    podman("run", "--detach", "--name", detached, "--label", f"flwd.run={run['id']}",
           IMAGE, "sleep", "300")
    assert sorted(flwd_containers()) == sorted([f"flwd-{run['id']}-100_main.sh", detached])
    # A host run recovers the dead server's run before its own.
    done = run_cli(["demo", "--name", "x"], cwd=workspace, data_dir=data_dir,
                   **{**podman_env, "FLWD_CONTAINER_RUNTIME": "docker"})
    assert done.returncode == 0, done.stderr
    assert flwd_containers() == []
    shown = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir, **podman_env)
    statuses = {row["id"]: row["status"] for row in json.loads(shown.stdout)}
    assert statuses[run["id"]] == "interrupted"
    assert processes_under(f"FLWD_RUN_ID={run['id']}") == []


def test_a_foreign_container_holding_the_name_is_a_conflict(tmp_path, podman_env):
    runtime = detect_runtime()
    assert runtime is not None and runtime.kind == "podman"
    name = "flwd-run-conflict-test-100_main.sh"
    podman("create", "--name", name, IMAGE, "true")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    spec = ContainerSpec(name=name, run_id="run-conflict-test", step_id="100_main.sh",
                         image=IMAGE, command=["true"], job_dir=tmp_path, run_dir=run_dir)
    lines: list[bytes] = []

    async def sink(channel: str, chunk: bytes, count: int) -> None:
        lines.append(chunk)

    async def main() -> None:
        await ContainerActor(runtime, spec, sink, grace=1).run()

    try:
        with pytest.raises(ContainerNameConflict) as info:
            trio.run(main)
        assert info.value.problem.code == "container.name.conflict"
        assert name in info.value.detail
        # The foreign container was not removed by flwd.
        assert podman("container", "exists", name, check=False).returncode == 0
    finally:
        podman("rm", "--force", name, check=False)


def test_no_runtime_fails_fast(workspace, data_dir, podman_env, policy_file):
    env = {**podman_env, "FLWD_POLICY_FILE": str(policy_file),
           "FLWD_POLICY_PUBKEY": str(policy_file.with_name("policy.pub")),
           "FLWD_CONTAINER_RUNTIME": "no-such-runtime"}
    result = run_cli(["demo-container"], cwd=workspace, data_dir=data_dir, **env)
    assert result.returncode == 2
    assert "no container runtime" in result.stderr
    assert "Hello" not in result.stdout
    serve = subprocess.run([*FLWD, ":serve", "--bind", "127.0.0.1:0"], cwd=workspace,
                           env=flwd_env(data_dir, **env), capture_output=True, text=True,
                           timeout=60, check=False)
    assert serve.returncode == 2
    assert "no container runtime found" in serve.stderr
    assert "--no-containers" in serve.stderr


def test_runtime_detection_prefers_podman():
    assert detect_runtime({"PATH": "/usr/bin:/bin"}) == Runtime("podman", "/usr/bin/podman")
    assert detect_runtime({"PATH": "/nonexistent"}) is None
