"""Issue 14 items 4 and 9 against a real server (and the real CLI), real Podman and a real
registry on loopback: ``verify_signatures`` on OCI sources (reference §12.3), the image
metadata of a source, and what plans and runs say about images (reference §5, §12.4-12.5).

Image signatures are checked by ``cosign verify --key``: these machines have no cosign, so
the fake one of ``conftest.FAKE_COSIGN`` is put first on the server's PATH."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli

from .conftest import (
    AUTH,
    AddonImage,
    Cosign,
    Registry,
    add,
    all_containers,
    events,
    podman,
    write_signed_bundle,
)

pytestmark = pytest.mark.usefixtures("no_containers_at_all")


def bundle(registry: Registry, mode: str) -> str:
    return f"verify_signatures: {mode}\nallowed_registries: ['{registry.host}']\n"


def refused(response: httpx.Response, title: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    document: dict[str, Any] = response.json()
    assert (document["code"], document["title"]) == ("source-signature-invalid", title)
    assert document["type"].endswith("/source-signature-invalid")
    return document


def test_verify_signatures_through_the_api(addon_server: Any, fake_cosign: Cosign,
                                           addon_images: dict[str, AddonImage],
                                           oci_registry: Registry) -> None:
    signed, unsigned = addon_images["addon"], addon_images["probe"]
    fake_cosign.sign(signed.ref)
    body = {"type": "oci", "trusted": True, "verify_signatures": True}

    # Verification disabled (by the bundle here): nothing would be checked → refused.
    server = addon_server(bundle(oci_registry, "disabled"), **fake_cosign.env)
    off = refused(add(server, {**body, "ref": signed.ref}), "signature verification required")
    assert "disabled for the current profile" in off["detail"]
    assert httpx.get(f"{server.url}/sources", headers=AUTH).json() == []
    server.stop()

    # Permissive would let an unsigned image in; verify_signatures does not.
    server = addon_server(bundle(oci_registry, "permissive"), **fake_cosign.env)
    podman("rmi", "--force", unsigned.ref, check=False)
    failed = refused(add(server, {**body, "ref": unsigned.ref}), "signature verification failed")
    assert "no matching signatures" in failed["detail"]
    assert failed["errors"][0]["arg"] == "verify_signatures"
    assert httpx.get(f"{server.url}/sources", headers=AUTH).json() == []
    # Refused before anything was pulled or run.
    assert podman("image", "exists", unsigned.ref, check=False).returncode != 0
    assert all_containers() == []
    # Without verify_signatures the same image is let in, unverified (permissive).
    loose = add(server, {"type": "oci", "trusted": True, "ref": unsigned.ref})
    assert loose.status_code == 201, loose.text
    assert loose.json()["verify_signatures"] is False
    assert "verify_signatures" not in loose.json()["provenance"]
    assert loose.json()["metadata"]["image_trust"] == {
        "verify_mode": "permissive", "signature_verified": False,
        "signature_reason": f"Error: no matching signatures: {unsigned.ref}"}

    added = add(server, {**body, "ref": signed.ref})
    assert added.status_code == 201, added.text
    source = added.json()
    assert source["verify_signatures"] is True
    assert source["provenance"]["verify_signatures"] is True
    assert source["metadata"]["image_trust"] == {"verify_mode": "permissive",
                                                 "signature_verified": True}
    # Persisted: a restarted server still says so (and runs no container for it).
    server.stop()
    again = addon_server(bundle(oci_registry, "permissive"), **fake_cosign.env)
    restored = httpx.get(f"{again.url}/sources/addon", headers=AUTH).json()
    assert restored["verify_signatures"] is True and restored["status"] == "ready"
    assert restored["metadata"]["image_trust"]["signature_verified"] is True
    for name in ("addon", "probe"):
        assert httpx.delete(f"{again.url}/sources/{name}", headers=AUTH).status_code == 204


def test_verify_signatures_through_the_cli(fake_cosign: Cosign, tmp_path: Path,
                                           addon_images: dict[str, AddonImage],
                                           oci_registry: Registry, workspace: Path,
                                           data_dir: Path) -> None:
    image = addon_images["addon"]

    def cli(mode: str, *args: str) -> Any:
        folder = tmp_path / mode
        folder.mkdir(exist_ok=True)
        path = write_signed_bundle(folder / "policy.yaml", bundle(oci_registry, mode))
        return run_cli([":sources", "add", "--type", "oci", "--ref", image.ref, "--trusted",
                        *args], cwd=workspace, data_dir=data_dir, timeout=180,
                       **oci_registry.env, **fake_cosign.env, FLWD_POLICY_FILE=str(path))

    off = cli("disabled", "--verify-signatures")
    assert off.returncode == 2, off.stderr
    assert "verify_signatures" in off.stderr and "disabled" in off.stderr
    unsigned = cli("required", "--verify-signatures")
    assert unsigned.returncode == 2, unsigned.stderr
    assert "signature verification failed" in unsigned.stderr
    fake_cosign.sign(image.ref)
    added = cli("required", "--verify-signatures", "--json")
    assert added.returncode == 0, added.stderr
    document = json.loads(added.stdout)
    assert document["verify_signatures"] is True
    assert document["provenance"]["verify_signatures"] is True
    assert document["metadata"]["image_trust"] == {"verify_mode": "required",
                                                   "signature_verified": True}


def test_source_metadata_and_what_plans_and_runs_say(addon_server: Any,
                                                     addon_images: dict[str, AddonImage],
                                                     oci_registry: Registry) -> None:
    """Reference tests 114, 131 and 135: metadata from image inspect, the plan's image
    fields, and the source's metadata in the provenance of plans and runs."""
    image = addon_images["addon"]
    repository = image.ref.rpartition(":")[0]
    # Permissive, and no cosign on PATH: nothing verifies, and that is said everywhere.
    server = addon_server(bundle(oci_registry, "permissive"))
    response = add(server, {"type": "oci", "ref": image.ref, "trusted": True})
    assert response.status_code == 201, response.text
    metadata = response.json()["metadata"]
    created = datetime.fromisoformat(metadata["created"][:26].rstrip("Z") + "+00:00")
    assert created.year >= 2024
    assert isinstance(metadata["size_bytes"], int) and metadata["size_bytes"] > 1_000_000
    assert metadata["labels"]["org.opencontainers.image.title"] == "flwd-test-addon"
    assert metadata["image_trust"] == {
        "verify_mode": "permissive", "signature_verified": False,
        "signature_reason": "cosign is not installed, so no signature can be verified"}
    assert metadata["digest"] == image.digest and metadata["image_id"]
    assert response.json()["provenance"]["metadata"] == metadata

    plan = httpx.post(f"{server.url}/plans", json={"job_id": "addon/greet",
                                                   "args": {"who": "Eve"}}, headers=AUTH)
    assert plan.status_code == 200, plan.text
    document = plan.json()
    pinned = f"{repository}@{image.digest}"
    assert document["executor_preview"]["container_image"] == image.ref
    assert document["requirements"] == {"tools": [{"name": "busybox", "version": "1"},
                                                  {"name": "sh"}], "status": "unknown"}
    assert document["image_trust"] == {
        "image": pinned, "mode": "permissive", "verified": False,
        "reason": "cosign is not installed, so no signature can be verified"}
    (step,) = document["steps"]
    assert step["container_image"] == image.ref and step["image_trust"] == document[
        "image_trust"]
    assert "image.signature.permissive" in [f["code"] for f in document["policy_findings"]]
    assert document["provenance"]["source"]["metadata"] == metadata

    run = httpx.post(f"{server.url}/runs", json={"job_id": "addon/greet",
                                                 "args": {"who": "Eve"}}, headers=AUTH)
    assert run.status_code == 201, run.text
    assert run.json()["provenance"]["source"]["metadata"]["labels"] == metadata["labels"]
    records = events(server, run.json()["id"])
    assert records[-1]["data"]["status"] == "completed"
    start = next(r for r in records if r["type"] == "run.start")
    assert start["data"]["provenance"]["source"]["metadata"]["digest"] == image.digest
    detail = httpx.get(f"{server.url}/runs/{run.json()['id']}", headers=AUTH).json()
    assert detail["provenance"]["source"]["metadata"]["size_bytes"] == metadata["size_bytes"]
    assert httpx.delete(f"{server.url}/sources/addon", headers=AUTH).status_code == 204


def test_a_container_job_plan_names_its_image(container_server: Any, podman_env: dict[str, str],
                                              tmp_path: Path) -> None:
    """Reference test 98: ``interpreter: container:alpine:3.20`` → executor ``container`` and
    container_image ``alpine:3.20`` (here mapped to the local busybox image, which is what
    the policy checks and what runs)."""
    folder = tmp_path / "permissive-bundle"
    folder.mkdir()
    path = write_signed_bundle(folder / "policy.yaml", "verify_signatures: permissive\n")
    server = container_server(FLWD_POLICY_FILE=str(path),
                              FLWD_POLICY_PUBKEY=str(folder / "policy.pub"))
    plan = httpx.post(f"{server.url}/plans", json={"job_id": "demo-container"}, headers=AUTH)
    assert plan.status_code == 200, plan.text
    document = plan.json()
    mapped = podman_env["FLWD_IMAGE_MAP"].partition("=")[2]
    preview = document["executor_preview"]
    assert (preview["executor"], preview["container_image"]) == ("container", "alpine:3.20")
    assert preview["container"]["image"] == mapped
    assert document["image_trust"]["image"] == mapped
    assert (document["image_trust"]["mode"], document["image_trust"]["verified"]) == (
        "permissive", False)
    assert [step["container_image"] for step in document["steps"]] == ["alpine:3.20"]
