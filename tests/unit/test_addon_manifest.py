"""OCI add-ons without I/O: the manifest schema (every violation named), the pull policy,
the oci request, digests, and the extraction container's flags per profile."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from flwd.containers import Runtime
from flwd.containers._inspect import choose_digest, parse_inspect
from flwd.errors import AddonManifestInvalid, SourceInvalid, SourceTrustRequired
from flwd.sources import SourceSpec, SourceState, extraction_argv, parse_manifest, parse_request
from flwd.sources._model import pinned_image
from flwd.sources._oci import add_steps, digest_to_record

GOOD: dict[str, Any] = {
    "apiVersion": "flwd.addon/v1",
    "kind": "AddOn",
    "metadata": {"name": "Example add-on", "id": "example.addon", "version": "1.2.3-rc.1+b7",
                 "summary": "tools", "maintainers": [{"name": "Ann", "email": "a@x.org"}]},
    "requires": {"flwd": {"min": "0.1"}, "permissions": ["net"],
                 "containers": [{"image": "x:1", "verify_signatures": "permissive"}]},
    "jobs": [
        {"id": "build", "name": "Build", "summary": "builds it",
         "argspec": {"args": [
             {"name": "target", "type": "string", "required": True, "title": "Target"},
             {"name": "level", "type": "integer", "default": 2, "minimum": 1, "maximum": 5},
             {"name": "api_key", "type": "string", "format": "secret"},
             {"name": "tags", "type": "array", "items_type": "string", "minItems": 1},
         ]},
         "requirements": {"tools": [{"name": "make", "version": "4"}]},
         "command": ["/bin/sh", "-c", "echo $ARG_TARGET"]},
        {"id": "plan-only", "name": "Plan only", "summary": "no command", "argspec": {}},
    ],
}


def violations(data: Any) -> dict[str, str]:
    with pytest.raises(AddonManifestInvalid) as info:
        parse_manifest(yaml.safe_dump(data))
    assert info.value.problem.code == "E_ADDON_MANIFEST"
    return {error["arg"]: error["message"] for error in info.value.errors}


def test_a_good_manifest() -> None:
    manifest = parse_manifest(yaml.safe_dump(GOOD))
    assert manifest.summary_json() == {"name": "Example add-on", "jobs": 2,
                                       "id": "example.addon", "version": "1.2.3-rc.1+b7",
                                       "summary": "tools"}
    build, plan_only = manifest.jobs
    assert build.command == ("/bin/sh", "-c", "echo $ARG_TARGET")
    assert [arg.name for arg in build.args] == ["target", "level", "api_key", "tags"]
    assert build.args[0].required and build.args[0].description == "Target"  # title
    assert build.args[1].default == 2 and build.args[2].is_secret
    assert build.tools == ({"name": "make", "version": "4"},)
    assert plan_only.command is None and plan_only.args == ()


def test_every_violation_is_named_at_once() -> None:
    bad = {
        "apiVersion": "flwd.addon/v2", "kind": "Addon", "unexpected": True,
        "metadata": {"name": "ab", "id": "-x", "version": "1.2", "summary": "s" * 241,
                     "maintainers": [{"email": "e"}], "colour": "red"},
        "requires": {"containers": [{"verify_signatures": "sometimes"}]},
        "jobs": [
            {"id": "Build", "argspec": {"args": [{"type": "float", "format": "uri"},
                                                 {"name": "json", "type": "string"},
                                                 {"name": "n", "type": "integer",
                                                  "default": "x"}]},
             "command": "echo hi", "shell": "bash"},
            {"id": "ok-job", "name": "n", "summary": "s"},
        ],
    }
    found = violations(bad)
    expected = {
        "apiVersion": "apiVersion must be flwd.addon/v1",
        "kind": "kind must be AddOn",
        "manifest.unexpected": "manifest.unexpected is not allowed",
        "metadata.name": "metadata.name must be at least 3 characters",
        "metadata.id": "metadata.id must match",
        "metadata.version": "metadata.version must be a SemVer string (e.g., 1.2.3)",
        "metadata.summary": "metadata.summary must be <=240 characters",
        "metadata.maintainers[0].name": "metadata.maintainers[0].name is required",
        "metadata.colour": "metadata.colour is not allowed",
        "requires.containers[0].image": "requires.containers[0].image is required",
        "requires.containers[0].verify_signatures":
            "requires.containers[0].verify_signatures must be required|permissive|disabled",
        "jobs[0].id": "jobs[0].id must match ^[a-z][a-z0-9_.:-]{2,}$",
        "jobs[0].name": "jobs[0].name is required",
        "jobs[0].summary": "jobs[0].summary is required",
        "jobs[0].shell": "jobs[0].shell is not allowed",
        "jobs[0].command": "jobs[0].command must be a non-empty array",
        "jobs[0].argspec.args[0].name": "jobs[0].argspec.args[0].name is required",
        "jobs[0].argspec.args[0].type": 'jobs[0].argspec.args[0].type "float" is invalid',
        "jobs[0].argspec.args[0].format": 'jobs[0].argspec.args[0].format "uri" is invalid',
        "jobs[0].argspec.args[1].name": "reserved",
        "jobs[0].argspec.args[2].default": "must be an integer",
        "jobs[1].argspec": "jobs[1].argspec is required",
    }
    for path, words in expected.items():
        assert path in found, f"{path} not reported; got {sorted(found)}"
        assert words in found[path], (path, found[path])


@pytest.mark.parametrize(("change", "path", "words"), [
    ({"metadata": None}, "metadata", "metadata is required"),
    ({"metadata": ["x"]}, "metadata", "must be an object"),
    ({"requires": None, "_drop": "requires"}, "requires", "requires section is required"),
    ({"jobs": []}, "jobs", "jobs must contain at least one entry"),
    ({"jobs": {"id": "x"}}, "jobs", "must be an array"),
])
def test_sections(change: dict[str, Any], path: str, words: str) -> None:
    data = {**GOOD, **{k: v for k, v in change.items() if not k.startswith("_")}}
    if "_drop" in change:
        del data[change["_drop"]]
    assert words in violations(data)[path]


def test_duplicate_job_ids_and_args() -> None:
    job = {"id": "build", "name": "B", "summary": "s",
           "argspec": {"args": [{"name": "a", "type": "string"},
                                {"name": "a", "type": "string"}]}}
    other = {**job, "id": "other", "argspec": {}}
    found = violations({**GOOD, "jobs": [job, other, other]})
    assert "declared twice" in found["jobs[0].argspec.args[1].name"]
    assert "repeats jobs[1].id" in found["jobs[2].id"]


def test_not_yaml_or_not_a_mapping() -> None:
    with pytest.raises(AddonManifestInvalid, match="not valid YAML"):
        parse_manifest("jobs: [\n")
    with pytest.raises(AddonManifestInvalid, match="must be an object"):
        parse_manifest("- a\n")
    with pytest.raises(AddonManifestInvalid, match="larger than"):
        parse_manifest(b"#" * (2 << 20))


# -- requests, pull policies, digests -------------------------------------------------


def test_oci_request() -> None:
    spec = parse_request({"type": "oci", "ref": "ghcr.io/example/addon:1.0.0",
                          "trusted": True})
    assert (spec.name, spec.pull_policy, spec.trusted) == ("addon", "on-add", True)
    assert spec.to_json()["pull_policy"] == "on-add"
    assert SourceSpec.from_json(spec.to_json()) == spec
    on_run = parse_request({"type": "oci", "ref": "127.0.0.1:5000/x/tools@sha256:" + "a" * 64,
                            "trusted": True, "pull_policy": "on-run", "name": "t"})
    assert on_run.pull_policy == "on-run" and on_run.name == "t"


@pytest.mark.parametrize("trusted", [None, False])
def test_trust_is_required(trusted: bool | None) -> None:
    body: dict[str, Any] = {"type": "oci", "ref": "ghcr.io/example/addon:1"}
    if trusted is not None:
        body["trusted"] = trusted
    with pytest.raises(SourceTrustRequired) as info:
        parse_request(body)
    assert info.value.problem.code == "source.trust.required"
    assert info.value.problem.status == 400  # the reference's status (its §12.3)
    assert "--trusted" in (info.value.hint or "")


def test_a_malformed_request_is_told_so_before_trust() -> None:
    with pytest.raises(SourceInvalid):
        parse_request({"type": "oci", "ref": "ghcr.io/x:1", "pull_policy": "sometimes"})


def test_pull_policy_steps() -> None:
    on_add = SourceSpec("a", "oci", "r:1", pull_policy="on-add", trusted=True)
    on_run = SourceSpec("a", "oci", "r:1", pull_policy="on-run", trusted=True)
    assert add_steps(on_add).pull and add_steps(on_add).pin
    assert not add_steps(on_run).pull and not add_steps(on_run).pin
    assert add_steps(on_run).extract_pull == add_steps(on_add).extract_pull == "never"


def test_digest_is_recorded_once_for_on_run_only() -> None:
    on_run = SourceSpec("a", "oci", "r:1", pull_policy="on-run", trusted=True)
    on_add = SourceSpec("a", "oci", "r:1", pull_policy="on-add", trusted=True)
    empty, pinned = SourceState(status="ready"), SourceState(status="ready", digest="sha256:1")
    assert digest_to_record(on_run, empty, "sha256:2", "r:1") == "sha256:2"
    assert digest_to_record(on_run, pinned, "sha256:2", "r:1") is None  # already pinned
    assert digest_to_record(on_add, empty, "sha256:2", "r:1") is None
    assert digest_to_record(on_run, empty, None, "r:1") is None
    assert digest_to_record(on_run, empty, "sha256:2", "r:0") is None  # re-pointed since


def test_pinned_image_and_provenance() -> None:
    digest = "sha256:" + "b" * 64
    assert pinned_image("127.0.0.1:5000/flwd-test/addon:1", digest) == \
        f"127.0.0.1:5000/flwd-test/addon@{digest}"
    assert pinned_image("addon@sha256:" + "c" * 64, digest) == f"addon@{digest}"
    assert pinned_image("ghcr.io/x/addon:1", None) == "ghcr.io/x/addon:1"
    from flwd.sources import Source

    source = Source(SourceSpec("addon", "oci", "ghcr.io/x/addon:1", pull_policy="on-add",
                               trusted=True),
                    SourceState(status="ready", checkout_path="/d/addon", digest=digest))
    provenance = source.provenance()
    assert provenance["digest"] == provenance["resolved_ref"] == digest
    assert provenance["image"] == f"ghcr.io/x/addon@{digest}"
    assert provenance["pull_policy"] == "on-add" and provenance["type"] == "oci"
    document = source.to_json(jobs=1)
    assert document["digest"] == digest and document["metadata"]["trusted"] is True
    assert document["metadata"]["manifest_path"] == "/d/addon/manifest.yaml"
    assert SourceState.from_json(source.state.to_json()) == source.state


def test_choose_digest() -> None:
    repo = "127.0.0.1:5000/x/addon"
    assert choose_digest(repo, [f"{repo}@sha256:1", "other/x@sha256:2"], None) == "sha256:1"
    assert choose_digest(repo, [f"{repo}@sha256:1", f"{repo}@sha256:2"], "sha256:2") == \
        "sha256:2"
    assert choose_digest(repo, [f"{repo}@sha256:1", f"{repo}@sha256:2"], "sha256:9") is None
    assert choose_digest(repo, ["other/x@sha256:2"], "sha256:2") is None
    info = parse_inspect('[{"Id": "abc", "Digest": "sha256:1", "RepoDigests": '
                         f'["{repo}@sha256:1"]}}]', repo)
    assert (info.image_id, info.digest) == ("abc", "sha256:1")
    assert parse_inspect("not json", repo).digest is None


@pytest.mark.parametrize(("profile", "network", "read_only"), [
    ("secure", "none", True), ("permissive", "none", True), ("disabled", "bridge", False)])
def test_extraction_flags(profile: Any, network: str, read_only: bool) -> None:
    argv = extraction_argv(Runtime("podman", "/usr/bin/podman"), "img@sha256:1", profile,
                           "flwd-addon-a-1", "a")
    assert argv[:3] == ["/usr/bin/podman", "run", "--rm"]
    assert "--cap-drop=ALL" in argv and "--security-opt=no-new-privileges" in argv
    assert "--pull=never" in argv
    assert argv[argv.index("--network") + 1] == network
    assert ("--read-only" in argv) is read_only
    assert argv[-4:] == ["--entrypoint", "cat", "img@sha256:1", "/flwd-addon/manifest.yaml"]
