"""OCI add-on sources against a real registry on loopback and real Podman: add, plan, run
and remove through the API and the CLI; pull policies; every troubleshooting code; the
extraction container's flags as the container itself sees them."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli

from .conftest import (
    AUTH,
    AddonImage,
    Registry,
    add,
    all_containers,
    events,
    output,
    podman,
    write_signed_bundle,
)

SECRET = "tok-addon-7f3c"
#: Not even an extraction container (labelled flwd.addon, not flwd.run) may survive.
pytestmark = pytest.mark.usefixtures("no_containers_at_all")


def test_api_add_plan_run_remove(addon_server: Any, addon_images: dict[str, AddonImage],
                                 data_dir: Path) -> None:
    image = addon_images["addon"]
    server = addon_server()
    response = add(server, {"type": "oci", "ref": image.ref, "trusted": True,
                            "pull_policy": "on-add"})
    assert response.status_code == 201, response.text
    source = response.json()
    assert source["name"] == "addon" and source["type"] == "oci"
    # The digest the registry stored when the image was pushed is pinned.
    assert source["digest"] == source["resolved_ref"] == image.digest
    assert source["pull_policy"] == "on-add" and source["jobs"] == 2
    assert source["metadata"]["manifest"] == {"name": "Test add-on", "jobs": 2,
                                              "id": "flwd-test.addon", "version": "1.0.0",
                                              "summary": "jobs shipped in an image"}
    manifest = Path(source["metadata"]["manifest_path"])
    assert manifest.is_file() and manifest.stat().st_mode & 0o777 == 0o600
    repository = image.ref.rpartition(":")[0]
    assert source["provenance"]["image"] == f"{repository}@{image.digest}"

    jobs = {job["id"]: job for job in httpx.get(f"{server.url}/jobs", headers=AUTH).json()}
    greet = jobs["addon/greet"]
    assert greet["source"] == {"name": "addon", "type": "oci"}
    assert [arg["name"] for arg in greet["args"]] == ["who", "times", "api_key"]
    assert greet["args"][0]["required"] and greet["args"][2]["format"] == "secret"
    assert "addon/info" in jobs

    plan = httpx.post(f"{server.url}/plans", json={"job_id": "addon/greet",
                                                   "args": {"who": "Ann"}}, headers=AUTH)
    assert plan.status_code == 200, plan.text
    provenance = plan.json()["provenance"]["source"]
    assert provenance["name"] == "addon" and provenance["type"] == "oci"
    assert provenance["ref"] == image.ref
    assert provenance["digest"] == provenance["resolved_ref"] == image.digest
    assert provenance["pull_policy"] == "on-add"
    preview = plan.json()["executor_preview"]
    assert preview["container_image"] == image.ref
    assert preview["resolved_digest"] == image.digest
    assert preview["container"]["image"] == f"{repository}@{image.digest}"
    # Arguments are validated against the manifest's argspec.
    bad = httpx.post(f"{server.url}/plans", json={"job_id": "addon/greet",
                                                  "args": {"times": 9}}, headers=AUTH)
    assert bad.status_code == 422
    assert {e["arg"] for e in bad.json()["errors"]} == {"who", "times"}

    run = httpx.post(f"{server.url}/runs", json={
        "job_id": "greet", "source": {"name": "addon"},
        "args": {"who": "Ann", "times": 2, "api_key": SECRET}}, headers=AUTH)
    assert run.status_code == 201, run.text
    records = events(server, run.json()["id"])
    lines = [r["data"]["message"] for r in records if r["type"] == "step.log"]
    assert lines.count("hello Ann from the add-on") == 2
    seen = output(records)
    assert seen["key_sha"] == hashlib.sha256(SECRET.encode()).hexdigest()[:16]
    assert seen["key_in_env"] == "0" and seen["rootfs"] == "read-only"
    assert SECRET not in json.dumps(records)
    finish = records[-1]
    assert finish["type"] == "run.finish" and finish["data"]["status"] == "completed"
    step = next(r for r in records if r["type"] == "step.finish")
    assert step["data"]["container"]["image"] == f"{repository}@{image.digest}"
    detail = httpx.get(f"{server.url}/runs/{run.json()['id']}", headers=AUTH).json()
    assert detail["provenance"]["source"]["digest"] == image.digest

    # A job without a command is planned, not run.
    assert httpx.post(f"{server.url}/plans", json={"job_id": "addon/info"},
                      headers=AUTH).status_code == 200
    refused = httpx.post(f"{server.url}/runs", json={"job_id": "addon/info"}, headers=AUTH)
    assert refused.status_code == 501
    assert refused.json()["code"] == "E_OCI_RUN_UNSUPPORTED"
    # Which add-on, as the reference says it: the source, and its manifest's summary.
    assert refused.json()["source"]["name"] == "addon"
    assert refused.json()["source"]["type"] == "oci"
    assert refused.json()["source"]["digest"] == image.digest
    assert refused.json()["manifest"] == source["metadata"]["manifest"]

    removed = httpx.delete(f"{server.url}/sources/addon", headers=AUTH)
    assert removed.status_code == 204
    assert not manifest.exists() and not manifest.parent.exists()
    ids = {job["id"] for job in httpx.get(f"{server.url}/jobs", headers=AUTH).json()}
    assert not any(job_id.startswith("addon/") for job_id in ids)
    assert httpx.get(f"{server.url}/sources/addon", headers=AUTH).status_code == 404


def test_on_run_defers_pulls_until_a_run(addon_server: Any, addon_images: dict[str, AddonImage],
                                         data_dir: Path) -> None:
    image = addon_images["addon"]
    repository = image.ref.rpartition(":")[0]
    server = addon_server()
    # on-run never pulls when added: an image absent locally cannot be read.
    podman("rmi", "--force", image.ref, check=False)
    absent = add(server, {"type": "oci", "ref": image.ref, "trusted": True,
                          "pull_policy": "on-run"})
    assert absent.status_code == 400, absent.text
    assert absent.json()["code"] == "E_OCI"
    assert "image not known" in absent.json()["detail"]
    assert podman("image", "exists", image.ref, check=False).returncode != 0

    podman("pull", "--quiet", image.ref)
    response = add(server, {"type": "oci", "ref": image.ref, "trusted": True,
                            "pull_policy": "on-run", "name": "later"})
    assert response.status_code == 201, response.text
    assert "digest" not in response.json() and response.json()["pull_policy"] == "on-run"
    plan = httpx.post(f"{server.url}/plans", json={"job_id": "later/greet",
                                                   "args": {"who": "Bo"}}, headers=AUTH).json()
    assert "digest" not in plan["provenance"]["source"]
    assert "oci.digest.missing" in [f["code"] for f in plan["policy_findings"]]
    assert plan["executor_preview"]["container"]["image"] == image.ref

    # The run pulls the image it needs (gone again from local storage).
    podman("rmi", "--force", image.ref)
    run = httpx.post(f"{server.url}/runs", json={"job_id": "later/greet",
                                                 "args": {"who": "Bo"}}, headers=AUTH).json()
    assert "digest" not in run["provenance"]["source"]
    records = events(server, run["id"])
    assert records[-1]["data"]["status"] == "completed"
    step = next(r for r in records if r["type"] == "step.finish")
    assert "pull_seconds" in step["data"]["container"]
    assert step["data"]["container"]["digest"] == image.digest
    # Once a run succeeded, provenance has the digest: the run's, then the source's.
    detail = httpx.get(f"{server.url}/runs/{run['id']}", headers=AUTH).json()
    assert detail["provenance"]["source"]["digest"] == image.digest
    source = httpx.get(f"{server.url}/sources/later", headers=AUTH).json()
    assert source["digest"] == image.digest
    plan = httpx.post(f"{server.url}/plans", json={"job_id": "later/greet",
                                                   "args": {"who": "Bo"}}, headers=AUTH).json()
    assert plan["provenance"]["source"]["digest"] == image.digest
    assert plan["executor_preview"]["container"]["image"] == f"{repository}@{image.digest}"

    # Persisted: a restarted server has the pinned digest (and runs no container for it).
    server.stop()
    again = addon_server()
    source = httpx.get(f"{again.url}/sources/later", headers=AUTH).json()
    assert source["digest"] == image.digest and source["status"] == "ready"
    assert httpx.delete(f"{again.url}/sources/later", headers=AUTH).status_code == 204


def test_the_references_pull_policy_spellings(addon_server: Any,
                                              addon_images: dict[str, AddonImage],
                                              oci_registry: Registry, workspace: Path,
                                              data_dir: Path) -> None:
    """``always`` means on-add, ``ifNotPresent``/``if-not-present``/``if_not_present``/
    ``never`` mean on-run (reference §12.3); the source shows flwd's word."""
    image = addon_images["addon"]
    server = addon_server()
    podman("rmi", "--force", image.ref, check=False)
    # always: pulled now (the image was absent) and pinned, as on-add.
    eager = add(server, {"type": "oci", "ref": image.ref, "trusted": True,
                         "pull_policy": "always"})
    assert eager.status_code == 201, eager.text
    assert eager.json()["pull_policy"] == "on-add" and eager.json()["digest"] == image.digest
    assert eager.json()["provenance"]["pull_policy"] == "on-add"
    # The reference's other spellings pull nothing, as on-run (the image is present now).
    for name, spelling in (("lazy1", "ifNotPresent"), ("lazy2", "if-not-present"),
                           ("lazy3", "IF_NOT_PRESENT"), ("lazy4", "never")):
        lazy = add(server, {"type": "oci", "ref": image.ref, "trusted": True, "name": name,
                            "pull_policy": spelling})
        assert lazy.status_code == 201, lazy.text
        assert lazy.json()["pull_policy"] == "on-run" and "digest" not in lazy.json()
    refused = problem(add(server, {"type": "oci", "ref": image.ref, "trusted": True,
                                   "name": "odd", "pull_policy": "sometimes"}),
                      400, "invalid-request-body")
    assert refused["errors"][0]["arg"].endswith("pull_policy")
    # The CLI takes the same words, remotely and locally.
    env = {**oci_registry.env}
    remote = run_cli([":sources", "add", "--type", "oci", "--name", "viacli", "--ref", image.ref,
                      "--pull-policy", "IfNotPresent", "--trusted", "--json"], cwd=workspace,
                     data_dir=data_dir, timeout=180, FLWD_SERVER=server.url,
                     FLWD_TOKEN="dev-token", **env)
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout)["pull_policy"] == "on-run"
    server.stop()
    odd = run_cli([":sources", "add", "--type", "oci", "--name", "local", "--ref", image.ref,
                   "--pull-policy", "sometimes", "--trusted"], cwd=workspace,
                  data_dir=data_dir, **env)
    assert odd.returncode == 2 and len(odd.stderr.splitlines()) == 1
    assert "pull_policy" in odd.stderr and "ifNotPresent" in odd.stderr


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    document: dict[str, Any] = response.json()
    assert document["code"] == code, document
    assert response.headers["content-type"].startswith("application/problem+json")
    return document


def test_troubleshooting_codes(addon_server: Any, addon_images: dict[str, AddonImage],
                               oci_registry: Registry, data_dir: Path) -> None:
    server = addon_server()
    ref = addon_images["addon"].ref
    untrusted = problem(add(server, {"type": "oci", "ref": ref}), 400, "source.trust.required")
    assert "trusted" in untrusted["detail"]
    problem(add(server, {"type": "oci", "ref": ref, "trusted": False}), 400,
            "source.trust.required")

    missing = problem(add(server, {"type": "oci", "ref": addon_images["nomanifest"].ref,
                                   "trusted": True}), 400, "E_ADDON_MANIFEST")
    assert "missing" in missing["detail"]

    invalid = problem(add(server, {"type": "oci", "ref": addon_images["invalid"].ref,
                                   "trusted": True}), 400, "E_ADDON_MANIFEST")
    named = {error["arg"] for error in invalid["errors"]}
    assert {"apiVersion", "manifest.unexpected", "metadata.name", "metadata.version",
            "jobs[0].id", "jobs[0].summary", "jobs[0].argspec.args[0].type"} <= named

    pull = problem(add(server, {"type": "oci", "ref": addon_images["missing"].ref,
                                "trusted": True}), 400, "E_OCI")
    assert "manifest unknown" in pull["detail"]  # the runtime's own message
    # Nothing of the refused sources stays behind.
    assert httpx.get(f"{server.url}/sources", headers=AUTH).json() == []
    assert not list((data_dir / "sources").glob("*"))

    server.stop()  # one server per data dir
    elsewhere = addon_server("verify_signatures: disabled\nallowed_registries: [ghcr.io]\n")
    denied = problem(add(elsewhere, {"type": "oci", "ref": ref, "trusted": True}), 422,
                     "image.registry.not.allowed")
    assert oci_registry.host in denied["detail"]

    # secure + verify_signatures required, and no cosign on this host: fails closed.
    elsewhere.stop()
    signed = addon_server(f"verify_signatures: required\n"
                          f"allowed_registries: ['{oci_registry.host}']\n")
    problem(add(signed, {"type": "oci", "ref": ref, "trusted": True}), 422,
            "image.signature.required")
    # No container ran for a refused add-on, and nothing was pulled for a refusal.
    assert all_containers() == []


@pytest.mark.parametrize(("profile", "interfaces", "rootfs"), [
    ("secure", "lo,", "ro"),
    ("permissive", "lo,", "ro"),
    ("disabled", "eth0,lo,", "rw"),
])
def test_extraction_flags_seen_from_inside(addon_server: Any, addon_images: dict[str, AddonImage],
                                           oci_registry: Registry, profile: str,
                                           interfaces: str, rootfs: str) -> None:
    server = addon_server(f"verify_signatures: disabled\n"
                          f"allowed_registries: ['{oci_registry.host}']\n",
                          FLWD_PROFILE=profile)
    response = add(server, {"type": "oci", "ref": addon_images["probe"].ref, "trusted": True})
    assert response.status_code == 201, response.text
    seen = dict(item.split("=", 1) for item in
                response.json()["metadata"]["manifest"]["summary"].split())
    assert seen["caps"] == "0000000000000000"  # --cap-drop=ALL
    assert ",".join(sorted(seen["ifaces"].strip(",").split(","))) + "," == interfaces
    assert seen["rootfs"] == rootfs  # the root mount's options in /proc/mounts
    assert seen["write"] == ("failed" if rootfs == "ro" else "ok")  # a file under /


def test_cli_local_and_remote(addon_server: Any, addon_images: dict[str, AddonImage],
                              oci_registry: Registry, workspace: Path, data_dir: Path,
                              tmp_path: Path) -> None:
    image = addon_images["addon"]
    bundle = write_signed_bundle(tmp_path / "policy.yaml", (
        f"verify_signatures: disabled\nallowed_registries: ['{oci_registry.host}']\n"))
    env = {**oci_registry.env, "FLWD_POLICY_FILE": str(bundle)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), cwd=workspace, data_dir=data_dir, timeout=180, **env)

    refused = cli(":sources", "add", "--type", "oci", "--name", "addon", "--ref", image.ref)
    assert refused.returncode == 2 and "--trusted" in refused.stderr
    added = cli(":sources", "add", "--type", "oci", "--name", "addon", "--ref", image.ref,
                "--pull-policy", "on-add", "--trusted", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["digest"] == image.digest
    listed = cli(":sources", "list")
    assert "addon" in listed.stdout and image.digest[:19] in listed.stdout
    jobs = json.loads(cli(":jobs", "--json").stdout)["jobs"]
    greet = next(job for job in jobs if job["id"] == "addon/greet")
    assert greet["source"] == {"name": "addon", "type": "oci"}
    # Completion knows the add-on's jobs and the flags of their manifest argspec.
    completed = cli("__complete", "2", "addon", "")
    assert completed.returncode == 0, completed.stderr
    assert {"greet", "info"} <= {json.loads(line)["insert"] for line in
                                 completed.stdout.splitlines()}
    flags = cli("__complete", "2", "addon/greet", "--")
    assert {"--who", "--times", "--api_key"} <= {json.loads(line)["insert"] for line in
                                                  flags.stdout.splitlines()}
    plan = cli(":plan", "addon/greet", "--who", "Cy", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["provenance"]["source"]["digest"] == image.digest
    run = cli("addon/greet", "--who", "Cy", "--api_key", SECRET)
    assert run.returncode == 0, run.stderr
    assert "hello Cy from the add-on" in run.stdout and SECRET not in run.stdout
    not_runnable = cli("addon/info")
    assert not_runnable.returncode == 2 and "E_OCI_RUN_UNSUPPORTED" not in not_runnable.stdout
    assert "declares no command" in not_runnable.stderr
    removed = cli(":sources", "remove", "addon")
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert not (data_dir / "sources" / "addon").exists()
    assert cli(":plan", "addon/greet", "--who", "Cy").returncode == 2

    # Remote mode: the same verbs through a server.
    server = addon_server()
    remote = {"FLWD_SERVER": server.url, "FLWD_TOKEN": "dev-token"}
    added = run_cli([":sources", "add", "--type", "oci", "--name", "remote", "--ref", image.ref,
                     "--trusted"], cwd=workspace, data_dir=data_dir, timeout=180,
                    **env, **remote)
    assert added.returncode == 0, added.stderr
    assert "Source remote (oci) added" in added.stdout
    plan = run_cli([":plan", "remote/greet", "--who", "Di", "--json"], cwd=workspace,
                   data_dir=data_dir, **env, **remote)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["provenance"]["source"]["digest"] == image.digest
    untrusted = run_cli([":sources", "add", "--type", "oci", "--name", "x", "--ref", image.ref],
                        cwd=workspace, data_dir=data_dir, **env, **remote)
    assert untrusted.returncode == 2 and "trusted" in untrusted.stderr
    removed = run_cli([":sources", "remove", "remote"], cwd=workspace, data_dir=data_dir,
                      **env, **remote)
    assert removed.returncode == 0, removed.stderr
