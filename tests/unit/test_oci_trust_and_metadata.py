"""OCI sources without I/O (issue 14 items 4 and 9): ``verify_signatures`` in the request
and its decision per verify mode, the image's metadata from ``image inspect``, and the
source's ``metadata`` in its document and in ``provenance.source``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flwd.containers._inspect import MAX_LABEL_CHARS, MAX_LABELS, parse_inspect
from flwd.errors import (
    ImageSignatureRequired,
    SourceInvalid,
    SourceSignatureInvalid,
    SourceSignatureUnverifiable,
)
from flwd.policy import ImageTrust, Verdict
from flwd.sources import Source, SourceSpec, SourceState, parse_request
from flwd.sources._oci import source_image_trust

REF = "ghcr.io/example/addon:1.0.0"
DIGEST = "sha256:" + "d" * 64


def oci(**extra: Any) -> dict[str, Any]:
    return {"type": "oci", "ref": REF, "trusted": True, **extra}


# -- the request --------------------------------------------------------------------


def test_verify_signatures_is_an_oci_request_field() -> None:
    assert parse_request(oci(verify_signatures=True)).verify_signatures is True
    assert parse_request(oci(verify_signatures=False)).verify_signatures is False
    assert parse_request(oci()).verify_signatures is False
    spec = parse_request(oci(verify_signatures=True))
    assert spec.to_json()["verify_signatures"] is True
    assert SourceSpec.from_json(spec.to_json()) == spec
    # A row stored before the field existed reads as not asking.
    stored = {k: v for k, v in spec.to_json().items() if k != "verify_signatures"}
    assert SourceSpec.from_json(stored).verify_signatures is False


@pytest.mark.parametrize(("body", "message"), [
    (oci(verify_signatures="yes"), "must be true or false"),
    (oci(verify_signatures=1), "must be true or false"),
    ({"type": "local", "ref": "extra", "verify_signatures": True},
     "only oci sources have an image signature to verify"),
])
def test_a_bad_verify_signatures_is_named(body: dict[str, Any], message: str) -> None:
    with pytest.raises(SourceInvalid) as info:
        parse_request(body)
    assert {"arg": "verify_signatures", "message": message} in info.value.errors


def test_verify_signatures_false_is_accepted_on_any_type() -> None:
    assert parse_request({"type": "local", "ref": "extra", "verify_signatures": False})


# -- the decision (reference §12.3 step 5) ------------------------------------------


SIGNED, UNSIGNED = Verdict(True), Verdict(False, "no matching signatures")


@pytest.mark.parametrize("mode", ["required", "permissive"])
def test_a_source_asking_for_signatures_needs_a_verified_image(mode: Any) -> None:
    spec = parse_request(oci(verify_signatures=True))
    trust = source_image_trust(spec, mode, SIGNED, "secure")
    assert trust == ImageTrust(REF, mode, True)
    assert trust.source_json() == {"verify_mode": mode, "signature_verified": True}
    with pytest.raises(SourceSignatureInvalid) as info:
        source_image_trust(spec, mode, UNSIGNED, "permissive")
    assert type(info.value) is SourceSignatureInvalid
    problem = info.value.problem
    assert (problem.status, problem.code, problem.title) == (
        422, "source-signature-invalid", "signature verification failed")
    assert "no matching signatures" in info.value.detail
    # No verifier installed: nothing verifies, so the source is refused.
    with pytest.raises(SourceSignatureInvalid, match="cosign is not installed"):
        source_image_trust(spec, mode, None, "secure")


def test_a_source_asking_for_signatures_is_refused_while_verification_is_disabled() -> None:
    spec = parse_request(oci(verify_signatures=True))
    with pytest.raises(SourceSignatureUnverifiable) as info:
        source_image_trust(spec, "disabled", None, "disabled")
    problem = info.value.problem
    assert (problem.status, problem.code, problem.title) == (
        422, "source-signature-invalid", "signature verification required")
    assert "disabled for the current profile (disabled)" in info.value.detail


def test_without_verify_signatures_the_mode_decides() -> None:
    spec = parse_request(oci())
    assert source_image_trust(spec, "disabled", None, "disabled") is None
    with pytest.raises(ImageSignatureRequired):
        source_image_trust(spec, "required", UNSIGNED, "secure")
    trust = source_image_trust(spec, "permissive", UNSIGNED, "permissive")
    assert trust is not None and trust.source_json() == {
        "verify_mode": "permissive", "signature_verified": False,
        "signature_reason": "no matching signatures"}
    assert source_image_trust(spec, "required", SIGNED, "secure") == ImageTrust(
        REF, "required", True)


# -- image inspect ------------------------------------------------------------------


def test_inspect_gives_created_size_and_labels() -> None:
    repo = "ghcr.io/example/addon"
    podman = json.dumps([{
        "Id": "abc", "Digest": DIGEST, "RepoDigests": [f"{repo}@{DIGEST}"],
        "Created": "2026-12-03T19:24:26.230972794Z", "Size": 2005337,
        "Labels": {"io.buildah.version": "1.28.2"},
        "Config": {"Labels": {"io.buildah.version": "1.28.2", "org.example": "x"}}}])
    info = parse_inspect(podman, repo)
    assert (info.image_id, info.digest, info.created, info.size_bytes) == (
        "abc", DIGEST, "2026-12-03T19:24:26.230972794Z", 2005337)
    assert info.labels == {"io.buildah.version": "1.28.2", "org.example": "x"}
    # docker: only Config.Labels; no labels at all is None, not a crash.
    docker = parse_inspect(json.dumps([{"Id": "x", "Config": {"Labels": None},
                                        "Size": "big", "Created": 5}]), repo)
    assert (docker.labels, docker.size_bytes, docker.created) == (None, None, None)


def test_labels_kept_are_bounded() -> None:
    """They are kept with every run of the add-on's jobs: a hostile image cannot bloat runs."""
    labels = {f"k{index:04}": "v" for index in range(1000)}
    labels["huge"] = "x" * MAX_LABEL_CHARS
    info = parse_inspect(json.dumps([{"Id": "x", "Config": {"Labels": labels}}]), "r")
    assert info.labels is not None and len(info.labels) == MAX_LABELS
    assert "huge" not in info.labels and min(info.labels) == "k0000"


# -- the source's document and provenance ---------------------------------------------


def addon(**state: Any) -> Source:
    spec = parse_request(oci(verify_signatures=True, name="addon"))
    return Source(spec, SourceState(
        status="ready", root="/d/addon", checkout_path="/d/addon", digest=DIGEST,
        image_id="abc", manifest={"name": "Add-on", "jobs": 1},
        created="2026-12-03T19:24:26Z", size_bytes=2005337, labels={"a": "b"},
        image_trust={"verify_mode": "required", "signature_verified": True}, **state),
        1.0, 2.0)


def test_metadata_of_an_oci_source() -> None:
    source = addon()
    document = source.to_json(jobs=1)
    metadata = document["metadata"]
    assert metadata["created"] == "2026-12-03T19:24:26Z"
    assert metadata["size_bytes"] == 2005337 and metadata["labels"] == {"a": "b"}
    assert metadata["image_trust"] == {"verify_mode": "required", "signature_verified": True}
    assert (metadata["trusted"], metadata["digest"], metadata["image_id"]) == (True, DIGEST,
                                                                              "abc")
    assert metadata["manifest_path"] == "/d/addon/manifest.yaml"
    assert document["verify_signatures"] is True
    provenance = document["provenance"]
    assert provenance["verify_signatures"] is True
    assert provenance["metadata"] == metadata
    # Stored and read back whole.
    assert SourceState.from_json(json.loads(json.dumps(source.state.to_json()))) == \
        source.state


def test_provenance_leaves_out_what_is_unknown() -> None:
    spec = parse_request(oci(name="plain"))
    source = Source(spec, SourceState(status="ready", checkout_path="/d/plain"))
    provenance = source.provenance()
    assert "verify_signatures" not in provenance  # as the reference: only when asked for
    assert set(provenance["metadata"]) == {"checkout_path", "trusted", "pull_policy",
                                           "manifest_path", "image"}
    assert source.to_json()["verify_signatures"] is False
