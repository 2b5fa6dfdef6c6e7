"""Serve preflight with a policy bundle: real keys generated here (valid, tampered, wrong key,
missing signature), the keyless path through a cosign TEST DOUBLE, bad input; and a denied
run request, journaled and counted, with nothing started."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import FLWD, flwd_env, write_job

AUTH = {"Authorization": "Bearer dev-token"}
BUNDLE = "verify_signatures: disabled\noverrides:\n  network: [bridge]\n"


def _keys(folder: Path, name: str) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    (folder / f"{name}.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key


def _sign(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    """What ``cosign sign-blob --key cosign.key FILE --output-signature FILE.sig`` writes."""
    signature = key.sign(path.read_bytes(), ec.ECDSA(hashes.SHA256()))
    Path(f"{path}.sig").write_bytes(base64.b64encode(signature) + b"\n")


def _serve_refused(workspace: Path, data_dir: Path, *flags: str, **env: str) -> str:
    """Run ``flwd :serve`` expecting a refusal; returns its stderr."""
    done = subprocess.run([*FLWD, ":serve", "--bind", "127.0.0.1:0", "--no-containers", *flags],
                          cwd=workspace, env=flwd_env(data_dir, **env), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "serving" not in done.stderr
    return done.stderr


@pytest.fixture
def signed(tmp_path: Path) -> dict[str, Path]:
    bundle = tmp_path / "flwd.policy.yaml"
    bundle.write_text(BUNDLE)
    key = _keys(tmp_path, "cosign")
    _keys(tmp_path, "other")
    _sign(key, bundle)
    return {"bundle": bundle, "pub": tmp_path / "cosign.pub", "other": tmp_path / "other.pub"}


def test_a_validly_signed_bundle_is_served(server_factory, signed):
    server = server_factory(FLWD_POLICY_FILE=str(signed["bundle"]),
                            FLWD_POLICY_PUBKEY=str(signed["pub"]))
    serving = next(json.loads(line) for line in server.log if '"serving"' in line)
    assert serving["policy_verified_by"] == "public key"
    assert serving["policy_bundle"] == str(signed["bundle"])


def test_a_tampered_bundle_is_refused(workspace, data_dir, signed):
    signed["bundle"].write_text(BUNDLE + "  rootfs_writable: true\n")
    stderr = _serve_refused(workspace, data_dir, FLWD_POLICY_FILE=str(signed["bundle"]),
                            FLWD_POLICY_PUBKEY=str(signed["pub"]))
    assert "signature does not match" in stderr


def test_a_bundle_signed_by_another_key_is_refused(workspace, data_dir, signed):
    stderr = _serve_refused(workspace, data_dir, FLWD_POLICY_FILE=str(signed["bundle"]),
                            FLWD_POLICY_PUBKEY=str(signed["other"]))
    assert "signature does not match" in stderr


def test_a_missing_signature_is_refused(workspace, data_dir, signed):
    Path(f"{signed['bundle']}.sig").unlink()
    stderr = _serve_refused(workspace, data_dir, FLWD_POLICY_FILE=str(signed["bundle"]),
                            FLWD_POLICY_PUBKEY=str(signed["pub"]))
    assert "flwd.policy.yaml.sig is missing" in stderr


def test_no_verifier_at_all_is_refused_but_permissive_serves(workspace, data_dir, signed,
                                                             server_factory):
    stderr = _serve_refused(workspace, data_dir, FLWD_POLICY_FILE=str(signed["bundle"]),
                            PATH="/usr/bin:/bin")
    assert "no verifier" in stderr
    # The signature is checked in secure only.
    server_factory("--profile", "permissive", FLWD_POLICY_FILE=str(signed["bundle"]))


def _fake_cosign(folder: Path, verdict: int) -> Path:
    """TEST DOUBLE for cosign, keyless path only: records its argv, exits ``verdict``."""
    bin_dir = folder / "fake-cosign-bin"
    bin_dir.mkdir()
    double = bin_dir / "cosign"
    double.write_text(f"#!/bin/sh\necho \"$@\" > {folder / 'cosign-argv'}\n"
                      f"[ {verdict} = 0 ] || echo 'error: no matching signatures' >&2\n"
                      f"exit {verdict}\n")
    double.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("verdict", [0, 1], ids=["fake-cosign-accepts", "fake-cosign-rejects"])
def test_keyless_verification_runs_cosign_verify_blob(workspace, data_dir, signed, tmp_path,
                                                       server_factory, verdict):
    bin_dir = _fake_cosign(tmp_path, verdict)
    env = {"FLWD_POLICY_FILE": str(signed["bundle"]), "PATH": f"{bin_dir}:/usr/bin:/bin",
           "FLWD_COSIGN_IDENTITY": "ci@example.com",
           "FLWD_COSIGN_OIDC_ISSUER": "https://issuer.example.com"}
    if verdict == 0:
        server = server_factory(**env)
        assert any('"policy_verified_by": "cosign keyless"' in line for line in server.log)
    else:
        stderr = _serve_refused(workspace, data_dir, **env)
        assert "cosign verify-blob failed: error: no matching signatures" in stderr
    argv = (tmp_path / "cosign-argv").read_text().split()
    assert argv[0] == "verify-blob"
    assert argv[argv.index("--certificate-identity") + 1] == "ci@example.com"
    assert argv[argv.index("--signature") + 1] == f"{signed['bundle']}.sig"
    assert argv[-1] == str(signed["bundle"])


@pytest.mark.parametrize(("flags", "bundle", "fragment"), [
    (("--profile", "strict"), None, "invalid security profile 'strict'"),
    ((), "ceilings: {cpu: 1000m, memory: [1Gi]\n", "not valid YAML"),
    ((), "verify_signatures: maybe\n", "verify_signatures"),
    ((), "ceilings: {cpu: -2, memory: 1Ki}\n", "ceilings.cpu"),
    ((), "allowed_registries: ['https://ghcr.io']\n", "not a registry"),
], ids=["unknown-profile", "malformed-yaml", "bad-verify-mode", "impossible-ceilings",
        "registry-with-scheme"])
def test_bad_input_refuses_to_serve(workspace, data_dir, tmp_path, flags, bundle, fragment):
    env = {}
    if bundle is not None:
        path = tmp_path / "bad.yaml"
        path.write_text(bundle)
        env["FLWD_POLICY_FILE"] = str(path)
    stderr = _serve_refused(workspace, data_dir, "--profile", "permissive", *flags, **env) \
        if "--profile" not in flags else _serve_refused(workspace, data_dir, *flags, **env)
    assert fragment in stderr
    assert not (data_dir / "runs").exists()


def test_a_no_containers_server_refuses_container_jobs(server_factory, workspace, signed):
    write_job(workspace, "netjob", "executor: container\ncontainer:\n  image: busybox:1\n"
              "  network: bridge\n", {"100_main.sh": "#!/bin/sh\necho never\n"})
    server = server_factory("--dev", FLWD_POLICY_FILE=str(signed["bundle"]),
                            FLWD_POLICY_PUBKEY=str(signed["pub"]))
    # --no-containers: a container job is refused before policy with the runtime code.
    refused = httpx.post(f"{server.url}/runs", headers=AUTH, json={"job_id": "netjob"})
    assert refused.status_code == 422
    assert refused.json()["code"] == "container.runtime.unavailable"
    assert httpx.get(f"{server.url}/runs", headers=AUTH).json() == []


def test_policy_denial_through_a_server_with_a_runtime(tmp_path, workspace, data_dir, signed):
    """A container runtime on PATH that is never run: the request is refused while planning."""
    bin_dir = tmp_path / "rt"
    bin_dir.mkdir()
    never = bin_dir / "podman"
    never.write_text("#!/bin/sh\necho \"$@\" >> " + str(tmp_path / "podman-calls") + "\nexit 0\n")
    never.chmod(0o755)
    write_job(workspace, "netjob", "executor: container\ncontainer:\n  image: busybox:1\n"
              "  network: bridge\n", {"100_main.sh": "#!/bin/sh\necho never\n"})
    write_job(workspace, "schemed", "executor: container\ncontainer:\n"
              "  image: 'https://ghcr.io/org/app:1'\n", {"100_main.sh": "#!/bin/sh\necho no\n"})
    from tests.containers.conftest import start_container_server

    server = start_container_server(
        workspace, data_dir, FLWD_POLICY_FILE=str(signed["bundle"]),
        FLWD_POLICY_PUBKEY=str(signed["pub"]), PATH=f"{bin_dir}:/usr/bin:/bin")
    try:
        denied = httpx.post(f"{server.url}/runs", headers=AUTH, json={"job_id": "netjob"})
        assert denied.status_code == 422
        assert denied.json()["code"] == "policy.denied"
        assert "not permitted in secure profile" in denied.json()["detail"]
        scheme = httpx.post(f"{server.url}/plans", headers=AUTH, json={"job_id": "schemed"})
        assert scheme.status_code == 422
        assert scheme.json()["code"] == "E_IMAGE_POLICY"
        assert "has a scheme" in scheme.json()["detail"]
        assert httpx.get(f"{server.url}/runs", headers=AUTH).json() == []
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'flwd_policy_denials_total{reason="policy.denied"} 1.0' in metrics
        with httpx.stream("GET", f"{server.url}/events", headers=AUTH,
                          params={"after": "0"}, timeout=30) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: ") and '"policy.decision"' in line:
                    event = json.loads(line[6:])
                    break
        assert event["data"]["decision"] == "denied"
        assert event["data"]["subject"] == "container.network"
        assert event["data"]["code"] == "policy.denied"
        assert event["data"]["run_id"] is None
    finally:
        server.stop()
    # Start-up checked the runtime (a container created and initialised, never started)
    # and swept for orphans; nothing was ever run in a container.
    calls = (tmp_path / "podman-calls").read_text().splitlines()
    checks = [call for call in calls if "flwd-preflight-" in call]
    assert [call.split()[0] for call in checks] == ["create", "init", "rm"], calls
    assert all(call.startswith("ps ") for call in calls if call not in checks), calls
