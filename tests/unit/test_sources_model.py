"""Source requests, names, the allow-list and alias tagging — sans-IO but for temp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flwd.errors import SourceInvalid, SourceNotAllowed
from flwd.jobs import Catalog, index_aliases
from flwd.jobs._discovery import Job
from flwd.sources import AllowList, Source, SourceSpec, SourceState, parse_request
from flwd.sources._materialise import discovery_root
from flwd.sources._model import default_name


def fields_of(exc: pytest.ExceptionInfo[SourceInvalid]) -> dict[str, str]:
    return {error["arg"]: error["message"] for error in exc.value.errors}


def test_a_git_request_is_parsed_and_named_after_the_repository() -> None:
    spec = parse_request({"type": "git", "url": "file:///srv/repos/tools.git", "ref": "main"})
    assert spec == SourceSpec(name="tools", type="git", ref="main",
                              url="file:///srv/repos/tools.git")
    assert parse_request({"type": "local", "ref": "../extra scripts/"}).name == "extra-scripts"
    assert default_name("git", "main", "git@example.org:team/deploy.git") == "deploy"


def test_every_bad_field_is_listed() -> None:
    with pytest.raises(SourceInvalid) as info:
        parse_request({"type": "git", "name": "a/b", "ref": "-x", "expose": "all",
                       "colour": "red"})
    assert set(fields_of(info)) == {"colour", "url", "ref", "expose", "name"}
    assert "one word" in fields_of(info)["name"]


@pytest.mark.parametrize(("body", "field", "words"), [
    ({}, "type", "required"),
    ({"type": "svn", "ref": "x"}, "type", "unknown source type"),
    ({"type": "oci"}, "ref", "required for an oci source"),
    ({"type": "oci", "ref": "https://ghcr.io/x:1", "trusted": True}, "ref", "scheme"),
    ({"type": "oci", "ref": "x:1", "trusted": True, "pull_policy": "sometimes"},
     "pull_policy", "'on-add' (or 'always') or 'on-run' (or 'ifNotPresent', 'never')"),
    ({"type": "oci", "ref": "x:1", "url": "file:///x", "trusted": True}, "url", "no url"),
    ({"type": "local", "ref": "x", "pull_policy": "on-run"}, "pull_policy", "only oci"),
    ({"type": "local"}, "ref", "required"),
    ({"type": "local", "ref": "x", "url": "file:///x"}, "url", "no url"),
    ({"type": "git", "ref": "main"}, "url", "required"),
    ({"type": "git", "url": "file:///r", "ref": "a..b"}, "ref", "not a valid git ref"),
    ({"type": "git", "url": "file:///r", "ref": "main", "name": "..\\x"}, "name", "one word"),
    ({"type": "local", "ref": "x", "name": "-lead"}, "name", "starting with"),
    ({"type": "local", "ref": 7}, "ref", "must be a string"),
])
def test_bad_requests(body: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(SourceInvalid) as info:
        parse_request(body)
    assert words in fields_of(info)[field]


@pytest.mark.parametrize(("spelling", "policy"), [
    ("on-add", "on-add"), ("always", "on-add"), ("Always", "on-add"),
    ("on-run", "on-run"), ("ifNotPresent", "on-run"), ("ifnotpresent", "on-run"),
    ("if-not-present", "on-run"), ("IF_NOT_PRESENT", "on-run"), ("never", "on-run"),
])
def test_the_references_pull_policies_are_read_as_flwds(spelling: str, policy: str) -> None:
    spec = parse_request({"type": "oci", "ref": "x:1", "trusted": True,
                          "pull_policy": spelling})
    assert spec.pull_policy == policy
    assert spec.to_json()["pull_policy"] == policy


@pytest.mark.parametrize("ref", [None, "", "  "])
def test_a_git_source_without_ref_is_head(ref: str | None) -> None:
    body = {"type": "git", "url": "file:///srv/repos/tools.git"}
    spec = parse_request(body if ref is None else {**body, "ref": ref})
    assert (spec.name, spec.ref) == ("tools", "HEAD")


def test_a_name_that_cannot_be_derived_must_be_given() -> None:
    with pytest.raises(SourceInvalid, match="cannot derive a name"):
        parse_request({"type": "local", "ref": "/"})


def test_same_location() -> None:
    git = SourceSpec("t", "git", "main", "file:///r")
    assert git.same_location(SourceSpec("t", "git", "v2", "file:///r"))
    assert not git.same_location(SourceSpec("t", "git", "main", "file:///other"))
    assert not git.same_location(SourceSpec("t", "local", "/r"))


def test_state_and_provenance_round_trip() -> None:
    state = SourceState(status="ready", root="/d/trees/abc/scripts", checkout_path="/d/trees/abc",
                        resolved_commit="abc", refreshed_at=1.5)
    assert SourceState.from_json(state.to_json()) == state
    source = Source(SourceSpec("tools", "git", "main", "file:///r"), state, 1.0, 2.0)
    # provenance.source carries the source's metadata (issue 14 item 9, reference §12.4).
    assert source.provenance() == {"name": "tools", "type": "git", "ref": "main",
                                   "url": "file:///r", "resolved_ref": "abc",
                                   "resolved_commit": "abc", "checkout_path": "/d/trees/abc",
                                   "metadata": source.to_json()["metadata"]}
    document = source.to_json(jobs=3)
    assert (document["status"], document["jobs"], document["resolved_commit"]) == ("ready", 3,
                                                                                   "abc")


def test_a_sources_document_shows_times_as_runs_do() -> None:
    """RFC 3339 UTC strings (as runs' ``created_at``), not epoch floats; stored as floats."""
    state = SourceState(status="ready", refreshed_at=1_764_013_693.0301)
    source = Source(SourceSpec("tools", "local", "/r"), state, 1_764_013_693.123456,
                    1_764_013_694.5)
    document = source.to_json()
    assert document["created_at"] == "2025-11-24T19:48:13.123456Z"
    assert document["updated_at"] == "2025-11-24T19:48:14.500000Z"
    assert document["metadata"]["refreshed_at"] == "2025-11-24T19:48:13.030100Z"
    assert state.to_json()["refreshed_at"] == 1_764_013_693.0301  # the stored form


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path, Path]:
    scripts = tmp_path / "ws" / "scripts"
    (scripts / "inner").mkdir(parents=True)
    allowed = tmp_path / "allowed"
    (allowed / "jobs").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    return scripts, allowed, outside


def test_local_paths_must_resolve_inside_the_allow_list(roots: tuple[Path, Path, Path]) -> None:
    scripts, allowed, outside = roots
    allow = AllowList.build(scripts, [str(allowed)], env={})
    assert allow.check_path("inner") == scripts.resolve() / "inner"
    assert allow.check_path(str(allowed / "jobs")) == allowed.resolve() / "jobs"
    with pytest.raises(SourceNotAllowed, match="outside the allow-list") as info:
        allow.check_path("../../outside")
    assert "--allow-path" in (info.value.hint or "")
    (scripts / "escape").symlink_to(outside)
    with pytest.raises(SourceNotAllowed, match="resolves to"):
        allow.check_path("escape")
    with pytest.raises(SourceInvalid, match="not an existing directory"):
        allow.check_path("missing")


def test_the_environment_extends_the_allow_list(roots: tuple[Path, Path, Path]) -> None:
    scripts, allowed, outside = roots
    allow = AllowList.build(scripts, env={"FLWD_ALLOW_PATHS": f"{outside}{os.pathsep}{allowed}",
                                          "FLWD_GIT_ALLOW_HOSTS": "Git.Example.org, other"})
    assert allow.check_path(str(outside)) == outside.resolve()
    assert allow.check_git("https://git.example.org/team/tools.git").host == "git.example.org"


@pytest.mark.parametrize(("url", "error", "words"), [
    ("https://github.com/x/y.git", SourceNotAllowed, "git host 'github.com' is not allowed"),
    ("git@github.com:x/y.git", SourceNotAllowed, "git host 'github.com'"),
    ("ssh://git@github.com/x/y", SourceNotAllowed, "git host"),
    ("https://user:pw@git.example.org/x", SourceInvalid, "credentials"),
    ("ext::sh -c touch% /tmp/pwned", SourceInvalid, "transport helpers"),
    ("ftp://git.example.org/x", SourceInvalid, "unsupported git URL scheme"),
    ("file://otherhost/srv/x", SourceInvalid, "names a host"),
])
def test_git_urls(roots: tuple[Path, Path, Path], url: str, error: type[Exception],
                  words: str) -> None:
    scripts, _, _ = roots
    allow = AllowList.build(scripts, hosts=["git.example.org"], env={})
    with pytest.raises(error, match=words):
        allow.check_git(url)


def test_file_urls_and_paths_follow_the_folder_rules(roots: tuple[Path, Path, Path]) -> None:
    scripts, allowed, outside = roots
    allow = AllowList.build(scripts, [str(allowed)], env={})
    assert allow.check_git(f"file://{allowed}/jobs").path == allowed.resolve() / "jobs"
    assert allow.check_git(str(allowed / "jobs")).path == allowed.resolve() / "jobs"
    with pytest.raises(SourceNotAllowed, match="repository"):
        allow.check_git(f"file://{outside}")


def test_discovery_root_prefers_a_scripts_folder(tmp_path: Path) -> None:
    (tmp_path / "repo" / "scripts").mkdir(parents=True)
    assert discovery_root(tmp_path / "repo") == tmp_path / "repo" / "scripts"
    (tmp_path / "plain").mkdir()
    assert discovery_root(tmp_path / "plain") == tmp_path / "plain"


def _job(job_id: str, source: str | None) -> Job:
    from flwd.jobs import parse_config

    return Job(id=job_id, name=job_id, summary=None, dir=Path("/x"), config_path=Path("/x/c"),
               rel_dir=job_id, config=parse_config("interpreter: bash\n", path="c").config,
               scripts=(), source=source)


def test_source_aliases_target_their_own_jobs_and_collide_across_files() -> None:
    catalog = Catalog(jobs=[_job("demo", None), _job("tools/deploy", "tools"),
                            _job("tools/build.web", "tools")])
    index = index_aliases([
        {"from": "demo", "to": "hi"},
        {"from": "deploy", "to": "ship", "source": "tools"},
        {"from": "tools/build/web", "to": "web", "source": "tools"},
        {"from": "demo", "to": "both"},
        {"from": "deploy", "to": "both", "source": "tools"},
    ], catalog)
    assert {name: (a.target_id, a.source) for name, a in index.aliases.items()} == {
        "hi": ("demo", None), "ship": ("tools/deploy", "tools"),
        "web": ("tools/build.web", "tools")}
    assert sorted(a.target_id for a in index.collisions["both"]) == ["demo", "tools/deploy"]
