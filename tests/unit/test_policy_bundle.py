"""The policy bundle, quantities and ceilings, image references, extra runtime arguments,
and native verification of cosign blob signatures (real keys generated here)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from flwd.errors import (
    ImageRefInvalid,
    ImageRegistryNotAllowed,
    ImageSignatureRequired,
    PolicyBundleInvalid,
    PolicySignatureInvalid,
    ResourcesInvalid,
)
from flwd.policy import (
    Ceilings,
    PolicyBundle,
    Verdict,
    check_registry,
    check_resources,
    fold_extra_args,
    image_registry,
    parse_bundle,
    parse_cpu,
    parse_memory,
    signature_decision,
    validate_image_ref,
    verify_blob_signature,
    verify_bundle,
)
from flwd.policy._context import parse_image_map

FULL = """
verify_signatures: Permissive
allowed_registries: [GHCR.io, "127.0.0.1:5000", localhost]
ceilings: {cpu: 1500m, memory: 1Gi}
overrides:
  network: [Bridge]
  rootfs_writable: true
  caps: [net_admin]
  env_inheritance: false
  extra_args: [--hostname]
"""


def test_a_full_bundle_parses_with_normalised_values():
    bundle = parse_bundle(FULL, origin="p.yaml")
    assert bundle.verify_signatures == "permissive"
    assert bundle.allowed_registries == ("ghcr.io", "127.0.0.1:5000", "localhost")
    assert bundle.ceilings == Ceilings(1500, 1 << 30)
    assert bundle.overrides.network == ("bridge",)
    assert bundle.overrides.caps == ("NET_ADMIN",)
    assert bundle.overrides.rootfs_writable is True
    assert bundle.overrides.extra_args == ("--hostname",)
    assert bundle.origin == "p.yaml"


def test_an_empty_bundle_is_the_default_policy():
    assert parse_bundle("", origin="x") == PolicyBundle(origin="x")
    assert PolicyBundle().verify_mode("secure") == "required"
    assert PolicyBundle().verify_mode("permissive") == "permissive"
    assert PolicyBundle().verify_mode("disabled") == "disabled"
    assert PolicyBundle(verify_signatures="disabled").verify_mode("secure") == "disabled"


@pytest.mark.parametrize(("text", "arg", "fragment"), [
    ("verify_signatures: sometimes", "verify_signatures", "not required, permissive"),
    ("allowed_registries: ghcr.io", "allowed_registries", "list of non-empty strings"),
    ("allowed_registries: ['https://ghcr.io']", "allowed_registries", "not a registry"),
    ("ceilings: {cpu: -1}", "ceilings.cpu", "greater than zero"),
    ("ceilings: {cpu: lots}", "ceilings.cpu", "not a quantity"),
    ("ceilings: {cpu: 1m}", "ceilings.cpu", "below the smallest"),
    ("ceilings: {memory: 1Ki}", "ceilings.memory", "below"),
    ("ceilings: {memory: 12parsecs}", "ceilings.memory", "not a quantity"),
    ("ceilings: {disk: 1Gi}", "ceilings.disk", "unknown key"),
    ("overrides: {network: bridge}", "overrides.network", "list"),
    ("overrides: {rootfs_writable: 'yes'}", "overrides.rootfs_writable", "true or false"),
    ("overrides: {extra_args: ['--privileged=true']}", "overrides.extra_args", "flag name"),
    ("overides: {}", "overides", "unknown key"),
])
def test_a_malformed_bundle_names_the_key(text, arg, fragment):
    with pytest.raises(PolicyBundleInvalid) as info:
        parse_bundle(text, origin="b.yaml")
    error = info.value
    assert error.errors[0]["arg"] == arg
    assert fragment in error.errors[0]["message"]
    assert "b.yaml" in error.detail
    assert error.problem.code == "E_POLICY"


def test_every_failing_key_is_listed():
    with pytest.raises(PolicyBundleInvalid) as info:
        parse_bundle("verify_signatures: x\nceilings: {cpu: -1, memory: foo}\nnope: 1",
                     origin="b")
    assert {e["arg"] for e in info.value.errors} == {
        "verify_signatures", "ceilings.cpu", "ceilings.memory", "nope"}


@pytest.mark.parametrize("text", ["[1, 2]", "just text", "a: [unclosed"])
def test_a_bundle_that_is_not_a_mapping_is_refused(text):
    with pytest.raises(PolicyBundleInvalid):
        parse_bundle(text, origin="b")


@pytest.mark.parametrize(("value", "millis"), [("500m", 500), ("1.5", 1500), (2, 2000),
                                                (0.25, 250), (" 750M ", 750)])
def test_cpu_quantities(value, millis):
    assert parse_cpu(value) == millis


@pytest.mark.parametrize(("value", "size"), [("512Mi", 512 << 20), ("1Gi", 1 << 30),
                                               ("256m", 256 << 20), ("64MiB", 64 << 20),
                                               (67108864, 67108864), ("2g", 2 << 30)])
def test_memory_quantities(value, size):
    assert parse_memory(value) == size


def test_ceilings_refuse_a_larger_request_and_bound_a_missing_one():
    ceilings = Ceilings(cpu_millis=500, memory_bytes=128 << 20)
    assert check_resources("250m", "64Mi", ceilings) == (250, 64 << 20)
    assert check_resources(None, None, ceilings) == (500, 128 << 20)
    assert check_resources("2", "4Gi", Ceilings()) == (2000, 4 << 30)
    with pytest.raises(ResourcesInvalid) as info:
        check_resources("750m", "1Gi", ceilings)
    messages = [e["message"] for e in info.value.errors]
    assert messages == ["requested cpu 750m exceeds ceiling 500m",
                        "requested memory 1024Mi exceeds ceiling 128Mi"]
    assert info.value.problem.code == "E_IMAGE_POLICY"
    with pytest.raises(ResourcesInvalid, match="not a quantity"):
        check_resources("fast", None, ceilings)


@pytest.mark.parametrize(("ref", "registry"), [
    ("alpine:3.20", "docker.io"), ("library/alpine", "docker.io"),
    ("ghcr.io/org/app:1", "ghcr.io"), ("localhost/flwd-test/busybox:1", "localhost"),
    ("127.0.0.1:5000/x/y@sha256:" + "a" * 64, "127.0.0.1:5000")])
def test_registry_of_a_reference(ref, registry):
    assert validate_image_ref(ref) == ref
    assert image_registry(ref) == registry


@pytest.mark.parametrize(("ref", "fragment"), [
    ("https://ghcr.io/org/app:1", "has a scheme"), ("docker://alpine", "has a scheme"),
    ("/var/lib/image", "starts with '/'"), ("alpine 3", "not an image reference"),
    ("", "is empty")])
def test_malformed_references_are_refused(ref, fragment):
    with pytest.raises(ImageRefInvalid) as info:
        validate_image_ref(ref)
    assert fragment in info.value.detail
    assert info.value.problem.code == "E_IMAGE_POLICY"


def test_registry_allow_list():
    bundle = PolicyBundle(allowed_registries=("ghcr.io",), origin="p.yaml")
    check_registry("ghcr.io/org/app:1", bundle)
    check_registry("anything:1", PolicyBundle())
    with pytest.raises(ImageRegistryNotAllowed) as info:
        check_registry("alpine:3.20", bundle)
    assert info.value.detail.startswith("registry docker.io not allowed")
    assert "allowed_registries" in (info.value.hint or "")
    assert info.value.problem.code == "image.registry.not.allowed"


def test_signature_decisions_per_mode():
    assert signature_decision("a:1", "disabled", None) is None
    verified = signature_decision("a:1", "required", Verdict(True))
    assert verified is not None and verified.decision == "allowed"
    with pytest.raises(ImageSignatureRequired, match="no matching signatures"):
        signature_decision("a:1", "required", Verdict(False, "no matching signatures"))
    with pytest.raises(ImageSignatureRequired, match="cosign is not installed"):
        signature_decision("a:1", "required", None)
    warning = signature_decision("a:1", "permissive", Verdict(False, "no signature"))
    assert warning is not None
    assert (warning.decision, warning.code, warning.level) == (
        "allowed", "image.signature.permissive", "warning")


def test_extra_args_that_loosen_a_known_subject_are_folded_into_it():
    assert fold_extra_args(None, False, (), ["--network=host", "--cap-add", "SYS_TIME",
                                             "--read-only=false", "--hostname", "box"]) == (
        "host", True, ("SYS_TIME",), ("--hostname", "box"))
    assert fold_extra_args("bridge", False, ("NET_ADMIN",), ["--net", "host"]) == (
        "host", False, ("NET_ADMIN",), ())
    assert fold_extra_args(None, False, (), []) == (None, False, (), ())


def test_image_map_entries():
    assert parse_image_map("alpine:3.20=localhost/x:1, a=b") == {
        "alpine:3.20": "localhost/x:1", "a": "b"}
    assert parse_image_map("") == {}
    with pytest.raises(PolicyBundleInvalid):
        parse_image_map("alpine")


# -- cosign blob signatures, verified natively -------------------------------------------


def _key_pair() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, public


def _cosign_sign_blob(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    # What `cosign sign-blob --key` writes: base64 of the DER ECDSA/SHA-256 signature.
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256())))


def test_blob_signature_valid_tampered_and_wrong_key():
    key, public = _key_pair()
    _, other_public = _key_pair()
    data = b"verify_signatures: required\n"
    signature = _cosign_sign_blob(key, data)
    verify_blob_signature(data, signature + b"\n", public)
    with pytest.raises(PolicySignatureInvalid, match="does not match"):
        verify_blob_signature(data + b"# tampered\n", signature, public)
    with pytest.raises(PolicySignatureInvalid, match="does not match"):
        verify_blob_signature(data, signature, other_public)
    with pytest.raises(PolicySignatureInvalid, match="not base64"):
        verify_blob_signature(data, b"%%%", public)
    with pytest.raises(PolicySignatureInvalid, match="not a PEM public key"):
        verify_blob_signature(data, signature, b"-----BEGIN NOTHING-----")


def test_verify_bundle_with_a_public_key(tmp_path: Path):
    key, public = _key_pair()
    bundle = tmp_path / "flwd.policy.yaml"
    bundle.write_text("verify_signatures: required\n")
    (tmp_path / "cosign.pub").write_bytes(public)
    env = {"FLWD_POLICY_PUBKEY": str(tmp_path / "cosign.pub"), "PATH": ""}
    with pytest.raises(PolicySignatureInvalid, match=r"flwd.policy.yaml.sig is missing"):
        verify_bundle(bundle, env)
    Path(f"{bundle}.sig").write_bytes(_cosign_sign_blob(key, bundle.read_bytes()))
    assert verify_bundle(bundle, env) == "public key"
    bundle.write_text("verify_signatures: disabled\n")
    with pytest.raises(PolicySignatureInvalid, match="does not match"):
        verify_bundle(bundle, env)


def test_verify_bundle_without_any_verifier_names_the_cause(tmp_path: Path):
    bundle = tmp_path / "p.yaml"
    bundle.write_text("{}\n")
    with pytest.raises(PolicySignatureInvalid) as info:
        verify_bundle(bundle, {"PATH": str(tmp_path)})
    assert "no verifier" in info.value.detail
    assert "FLWD_POLICY_PUBKEY" in info.value.detail
