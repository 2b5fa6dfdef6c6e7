"""Job discovery and lookup (flwd.jobs._discovery), on real files in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flwd.errors import JobIdDuplicate, JobNotFound, UsageError
from flwd.jobs import Catalog, DiscoveryIssue, DuplicateId, Job, discover


def write_job(root: Path, rel: str, text: str = "interpreter: bash\n", *,
              script: str | None = "100_main.sh") -> Path:
    """A job dir with ``text`` as its config and (unless ``script`` is None) a no-op script."""
    job_dir = root / rel if rel != "." else root
    (job_dir / "config.d").mkdir(parents=True, exist_ok=True)
    (job_dir / "config.d" / "config.yaml").write_text(text, encoding="utf-8")
    if script is not None:
        (job_dir / script).write_text("true\n")
    return job_dir


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    return tmp_path


def ids(catalog: Catalog) -> list[str]:
    return [job.id for job in catalog.jobs]


def test_nested_ids_are_dotted_paths(workspace: Path) -> None:
    scripts = workspace / "scripts"
    write_job(scripts, "demo")
    write_job(scripts, "hello/world")
    write_job(scripts, "a/b/c")
    catalog = discover(scripts)
    assert ids(catalog) == ["a.b.c", "demo", "hello.world"]
    assert catalog.errors == [] and catalog.warnings == []
    job = catalog.get("hello.world")
    assert job.name == "hello.world"
    assert job.summary is None
    assert job.rel_dir == "hello/world"
    assert job.dir == scripts / "hello" / "world"
    assert job.dir.is_absolute()
    assert job.config_path == scripts / "hello" / "world" / "config.d" / "config.yaml"
    assert job.config.interpreter == "bash"
    assert job.source is None
    assert job.words == ["hello", "world"]


def test_nested_jobs_inside_a_job(workspace: Path) -> None:
    scripts = workspace / "scripts"
    write_job(scripts, "demo")
    write_job(scripts, "demo/build")
    assert ids(discover(scripts)) == ["demo", "demo.build"]


def test_explicit_id_name_summary(workspace: Path) -> None:
    scripts = workspace / "scripts"
    write_job(scripts, "demo/hello", "job: {id: demo.hi, name: Demo Hello, summary: Say hello}\n")
    [job] = discover(scripts).jobs
    assert (job.id, job.name, job.summary) == ("demo.hi", "Demo Hello", "Say hello")
    assert job.rel_dir == "demo/hello"


def test_config_at_the_root_takes_the_root_name(workspace: Path) -> None:
    scripts = workspace / "scripts"
    write_job(scripts, ".")
    write_job(scripts, "sub")
    catalog = discover(scripts)
    assert ids(catalog) == ["scripts", "sub"]
    assert catalog.get("scripts").rel_dir == "."


def test_namespace_prefixes_ids(workspace: Path) -> None:
    scripts = workspace / "scripts"
    write_job(scripts, "hello/world", "job: {name: Hi}\n")
    write_job(scripts, "plain")
    catalog = discover(scripts, namespace="tools")
    assert ids(catalog) == ["tools/hello.world", "tools/plain"]
    assert catalog.get("TOOLS/Hello.World").name == "Hi"
    assert catalog.get("tools/plain").name == "tools/plain"
    assert all(job.source == "tools" for job in catalog.jobs)
    with pytest.raises(ValueError, match="invalid namespace"):
        discover(scripts, namespace="a/b")


def test_duplicate_ids_name_no_job_and_every_claimant(workspace: Path) -> None:
    # Issue 11 item 13: keeping the config that sorts first let one job run the
    # other's scripts under its name. Now the id names no job at all.
    scripts = workspace / "scripts"
    write_job(scripts, "b", "job: {id: Demo}\n")
    write_job(scripts, "a", "job: {id: demo, name: first}\n")
    write_job(scripts, "demo")
    write_job(scripts, "other")
    catalog = discover(scripts, display_base=workspace)
    assert ids(catalog) == ["other"]
    paths = (
        "scripts/a/config.d/config.yaml",
        "scripts/b/config.d/config.yaml",
        "scripts/demo/config.d/config.yaml",
    )
    assert catalog.ambiguous("DEMO") == DuplicateId("demo", paths)
    assert catalog.find("demo") is None
    assert [issue.to_json() for issue in catalog.errors] == [
        {
            "path": "scripts/a/config.d/config.yaml",
            "error": "duplicate job id 'demo': also claimed by scripts/b/config.d/config.yaml "
            "and scripts/demo/config.d/config.yaml; none of them runs under that id (set a "
            "distinct job.id to tell them apart)",
            "code": "job.id.duplicate",
        },
        {
            "path": "scripts/b/config.d/config.yaml",
            "error": "duplicate job id 'demo': also claimed by scripts/a/config.d/config.yaml "
            "and scripts/demo/config.d/config.yaml; none of them runs under that id (set a "
            "distinct job.id to tell them apart)",
            "code": "job.id.duplicate",
        },
        {
            "path": "scripts/demo/config.d/config.yaml",
            "error": "duplicate job id 'demo': also claimed by scripts/a/config.d/config.yaml "
            "and scripts/b/config.d/config.yaml; none of them runs under that id (set a "
            "distinct job.id to tell them apart)",
            "code": "job.id.duplicate",
        },
    ]
    for lookup in (lambda: catalog.get("Demo"), lambda: catalog.resolve(["demo", "--x", "1"])):
        with pytest.raises(JobIdDuplicate) as raised:
            lookup()
        assert raised.value.detail == (
            "job id 'demo' is ambiguous: scripts/a/config.d/config.yaml, "
            "scripts/b/config.d/config.yaml and scripts/demo/config.d/config.yaml all claim it, "
            "so none of them runs under it"
        )
        assert raised.value.extensions["paths"] == list(paths)
        assert raised.value.problem.code == "job.id.duplicate"
        assert raised.value.problem.exit_status == 2


def test_an_ambiguous_longest_prefix_is_not_shadowed_by_a_shorter_job(workspace: Path) -> None:
    scripts = workspace / "scripts"
    write_job(scripts, "ops")
    write_job(scripts, "ops/backup")
    write_job(scripts, "elsewhere", "job: {id: ops.backup}\n")
    catalog = discover(scripts)
    with pytest.raises(JobIdDuplicate):
        catalog.resolve(["ops", "backup"])
    assert catalog.resolve(["ops", "--x"])[0].id == "ops"


def test_a_catalog_built_from_clashing_jobs_keeps_neither(workspace: Path) -> None:
    # The rule holds for any catalog (a merge of sources), not only discovery's.
    scripts = workspace / "scripts"
    write_job(scripts, "a", "job: {id: same}\n")
    write_job(scripts, "b")
    [first] = discover(scripts / "a").jobs
    [second] = discover(scripts / "b").jobs
    clash = Job(**{**vars(second), "id": "SAME"})
    catalog = Catalog(jobs=[first, clash])
    assert catalog.jobs == []
    duplicate = catalog.ambiguous("same")
    assert duplicate is not None
    assert duplicate.paths == (str(first.config_path), str(second.config_path))


def test_broken_config_never_hides_the_others(workspace: Path) -> None:
    scripts = workspace / "scripts"
    write_job(scripts, "good")
    write_job(scripts, "broken", "job: [\n")
    write_job(scripts, "invalid", "argspec: {args: [{name: a, type: strin}]}\ntimeout: 0\n")
    write_job(scripts, "warned", "interpreter: bash\nfoo: 1\n")
    catalog = discover(scripts, display_base=workspace)
    assert ids(catalog) == ["good", "warned"]
    assert [issue.path for issue in catalog.errors] == [
        "scripts/broken/config.d/config.yaml",
        "scripts/invalid/config.d/config.yaml",
    ]
    assert catalog.errors[0].message.startswith("invalid YAML: ")
    assert catalog.errors[1].message == (
        "timeout: must be greater than 0 (got 0); argspec.args[0].type: 'strin' is not a valid "
        "type (string, integer, number, boolean, array, object)"
    )
    assert catalog.errors[0].level == "error"
    assert catalog.warnings == [
        DiscoveryIssue(
            "scripts/warned/config.d/config.yaml", "unknown key 'foo' (ignored)", "warning"
        )
    ]
    assert catalog.warnings[0].to_json() == {
        "path": "scripts/warned/config.d/config.yaml",
        "warning": "unknown key 'foo' (ignored)",
    }


def test_paths_outside_display_base_are_absolute(
    workspace: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    scripts = workspace / "scripts"
    write_job(scripts, "broken", "- a\n")
    other = tmp_path_factory.mktemp("elsewhere")
    catalog = discover(scripts, display_base=other)
    assert catalog.errors[0].path == str(scripts / "broken" / "config.d" / "config.yaml")
    catalog = discover(scripts)
    assert Path(catalog.errors[0].path).is_absolute()


def test_unreadable_config_is_an_error(workspace: Path) -> None:
    scripts = workspace / "scripts"
    job_dir = write_job(scripts, "binary")
    (job_dir / "config.d" / "config.yaml").write_bytes(b"\xff\xfe\x00bad")
    catalog = discover(scripts)
    assert catalog.jobs == []
    assert catalog.errors[0].message.startswith("cannot read config: ")


def test_invalid_ids_are_errors(workspace: Path) -> None:
    scripts = workspace / "scripts"
    write_job(scripts, "my job")
    write_job(scripts, "ok", "job: {id: 'a..b'}\n")
    write_job(scripts, "fine", "job: {id: '-x'}\n")
    write_job(scripts, "good", "job: {id: Good_1.sub-2}\n")
    catalog = discover(scripts, display_base=workspace)
    assert ids(catalog) == ["Good_1.sub-2"]
    messages = {issue.path: issue.message for issue in catalog.errors}
    assert messages["scripts/my job/config.d/config.yaml"].startswith(
        "invalid job id 'my job' (from the directory my job)"
    )
    assert messages["scripts/ok/config.d/config.yaml"].startswith(
        "invalid job id 'a..b' (from job.id)"
    )
    assert "'-x'" in messages["scripts/fine/config.d/config.yaml"]


def test_walk_skips_hidden_vendor_and_config_dirs(workspace: Path) -> None:
    scripts = workspace / "scripts"
    write_job(scripts, "kept")
    write_job(scripts, ".hidden/job")
    write_job(scripts, ".git/job")
    write_job(scripts, "node_modules/pkg")
    write_job(scripts, "__pycache__/x")
    write_job(scripts, "kept/config.d/inner")
    # A config.yaml that is not inside config.d is not a job.
    (scripts / "loose").mkdir()
    (scripts / "loose" / "config.yaml").write_text("interpreter: bash\n")
    # config.d/config.yaml must be a file.
    (scripts / "dirconf" / "config.d" / "config.yaml").mkdir(parents=True)
    assert ids(discover(scripts)) == ["kept"]


def test_symlinked_directories_are_not_followed(
    workspace: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    scripts = workspace / "scripts"
    outside = tmp_path_factory.mktemp("outside")
    write_job(outside, "external")
    write_job(scripts, "inside")
    os.symlink(outside, scripts / "link")
    os.symlink(scripts, scripts / "inside" / "loop")
    assert ids(discover(scripts)) == ["inside"]


def test_scripts_are_nnn_files_sorted(workspace: Path) -> None:
    scripts = workspace / "scripts"
    job_dir = write_job(scripts, "demo")
    for name in ["999_last.sh", "100_main.sh", "000_setup.py", "200_other", "050_mid.ps1"]:
        (job_dir / name).write_text("echo\n")
    for name in ["run.sh", "10_short.sh", "1000_long.sh", "abc_100.sh", "100-dash.sh", "README.md"]:
        (job_dir / name).write_text("echo\n")
    (job_dir / "300_dir").mkdir()
    os.symlink(job_dir / "100_main.sh", job_dir / "400_link.sh")
    os.symlink(job_dir / "missing", job_dir / "500_dangling.sh")
    [job] = discover(scripts).jobs
    assert job.scripts == (
        "000_setup.py",
        "050_mid.ps1",
        "100_main.sh",
        "200_other",
        "400_link.sh",
        "999_last.sh",
    )


def test_missing_or_non_directory_root(workspace: Path) -> None:
    catalog = discover(workspace / "nope", display_base=workspace)
    assert catalog.jobs == []
    assert [issue.to_json() for issue in catalog.errors] == [
        {"path": "nope", "error": "scripts root nope does not exist"}
    ]
    (workspace / "file").write_text("x")
    catalog = discover(workspace / "file", display_base=workspace)
    assert catalog.errors[0].message == "scripts root file is not a directory"


def test_discovery_is_deterministic(workspace: Path) -> None:
    scripts = workspace / "scripts"
    for rel in ["zeta", "Alpha", "mid/x", "mid-x", "b"]:
        write_job(scripts, rel)
    first = discover(scripts)
    assert ids(first) == ["Alpha", "b", "mid-x", "mid.x", "zeta"]
    assert ids(discover(scripts)) == ids(first)


# -- lookup ----------------------------------------------------------------------------------


@pytest.fixture
def catalog(workspace: Path) -> Catalog:
    scripts = workspace / "scripts"
    for rel in ["demo", "demo/build", "hello/world", "a/b/c", "deploy"]:
        write_job(scripts, rel)
    return discover(scripts)


def test_get_is_case_insensitive(catalog: Catalog) -> None:
    assert catalog.get("Hello.World").id == "hello.world"
    assert catalog.find("DEMO") is not None
    assert catalog.find("nope") is None


def test_get_unknown_has_did_you_mean(catalog: Catalog) -> None:
    with pytest.raises(JobNotFound) as info:
        catalog.get("dmeo")
    assert info.value.detail == "unknown job 'dmeo'"
    assert info.value.hint == "did you mean 'demo'?"
    with pytest.raises(JobNotFound) as info:
        catalog.get("zzzzzz")
    assert info.value.hint == "run 'flwd :jobs' to list jobs"


@pytest.mark.parametrize(
    ("tokens", "job_id", "rest"),
    [
        (["demo"], "demo", []),
        (["demo", "--name", "x"], "demo", ["--name", "x"]),
        (["demo", "build"], "demo.build", []),
        (["demo.build", "--x"], "demo.build", ["--x"]),
        (["DEMO", "Build"], "demo.build", []),
        (["demo", "other", "--x"], "demo", ["other", "--x"]),
        (["hello", "world", "--loud"], "hello.world", ["--loud"]),
        (["hello.world"], "hello.world", []),
        (["a", "b.c"], "a.b.c", []),
        (["a.b", "c", "-v"], "a.b.c", ["-v"]),
        (["demo", "--", "build"], "demo", ["--", "build"]),
    ],
)
def test_resolve_words(catalog: Catalog, tokens: list[str], job_id: str, rest: list[str]) -> None:
    job, remaining = catalog.resolve(tokens)
    assert isinstance(job, Job)
    assert job.id == job_id
    assert remaining == rest


def test_resolve_unknown(catalog: Catalog) -> None:
    with pytest.raises(JobNotFound) as info:
        catalog.resolve(["hello", "wrld", "--x"])
    assert info.value.detail == "unknown job 'hello.wrld'"
    assert info.value.hint == "did you mean 'hello.world'?"
    with pytest.raises(JobNotFound) as info:
        catalog.resolve(["depoy"])
    assert info.value.hint == "did you mean 'deploy'?"
    with pytest.raises(JobNotFound) as info:
        catalog.resolve(["qqqqqq"])
    assert info.value.detail == "unknown job 'qqqqqq'"
    assert info.value.hint == "run 'flwd :jobs' to list jobs"


def test_resolve_without_words(catalog: Catalog) -> None:
    with pytest.raises(UsageError, match="no job given"):
        catalog.resolve([])
    with pytest.raises(UsageError):
        catalog.resolve(["--json"])


def test_several_close_matches_are_all_offered(workspace: Path) -> None:
    scripts = workspace / "scripts"
    for rel in ["job1", "job2", "job3", "job4"]:
        write_job(scripts, rel)
    with pytest.raises(JobNotFound) as info:
        discover(scripts).get("jobx")
    assert info.value.hint == "did you mean 'job1', 'job2' or 'job3'?"


def test_jobs_are_hashable_and_relative_roots_work(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_job(workspace / "scripts", ".")
    monkeypatch.chdir(workspace)
    [job] = discover(Path("scripts")).jobs
    assert job.id == "scripts"
    assert job.dir == workspace / "scripts"
    assert {job: 1}[job] == 1


def test_completion_never_offers_an_ambiguous_id_or_an_alias_to_it(workspace: Path) -> None:
    from flwd.complete import complete
    from flwd.complete._build import build_index

    scripts = workspace / "scripts"
    write_job(scripts, "demo")
    write_job(scripts, "bad/dup", "job: {id: demo}\n")
    write_job(scripts, "good")
    (scripts / "flwd.yaml").write_text("aliases:\n  - {from: demo, to: hello-demo}\n")
    index = build_index(str(scripts))
    offered = [insert for insert, _, _ in complete(index, [""])]
    assert "good" in offered
    assert not {"demo", "hello-demo"} & set(offered)
    assert "demo" not in index["jobs"]


def warned(catalog: Catalog, rel: str) -> str:
    """The one warning of the config of ``rel``: its message, checked to be the only one."""
    [issue] = [issue for issue in catalog.warnings
               if issue.path == f"scripts/{rel}/config.d/config.yaml"]
    assert issue.level == "warning"
    assert issue.code == "job.nothing.to.run"
    return issue.message


def test_a_job_with_nothing_to_run_is_a_job_with_a_warning(workspace: Path) -> None:
    """No NNN_ script and no composition: steps: listed (as in the reference, whose runs of
    it complete with zero steps), never a discovery error, with a warning naming the fix."""
    scripts = workspace / "scripts"
    write_job(scripts, "empty", "job: {name: Empty, summary: Does nothing yet}\n", script=None)
    write_job(scripts, "dag", "interpreter: bash\ncomposition: steps\n"
              "steps: [{id: a, script: a.sh}]\n", script="a.sh")
    write_job(scripts, "scripted")
    catalog = discover(scripts, display_base=workspace)
    assert ids(catalog) == ["dag", "empty", "scripted"]
    assert catalog.errors == []
    empty = catalog.get("empty")
    assert (empty.name, empty.summary, empty.scripts) == ("Empty", "Does nothing yet", ())
    assert warned(catalog, "empty") == (
        "job 'empty' has nothing to run (its runs complete with zero steps): no file next to "
        "config.d/ is named NNN_* (three digits and '_'); add a script such as 100_main.sh "
        "next to config.d/, or set 'composition: steps' and list the steps")
    assert empty.nothing_to_run == warned(catalog, "empty")
    # A DAG runs its steps, a job with an NNN_ file runs it: no warning.
    assert [issue.path for issue in catalog.warnings] == ["scripts/empty/config.d/config.yaml"]
    assert catalog.get("dag").nothing_to_run is None
    assert catalog.get("scripted").nothing_to_run is None


@pytest.mark.parametrize(("files", "cause", "fix"), [
    (["run.sh"], "run.sh is not named NNN_* (three digits and '_'), so it never runs",
     "rename run.sh to 100_run.sh"),
    (["10_build.sh"], "10_build.sh is not named", "rename 10_build.sh to 010_build.sh"),
    (["100-build.sh"], "100-build.sh is not named", "rename 100-build.sh to 100_build.sh"),
    (["1000_x.sh"], "1000_x.sh is not named", "rename 1000_x.sh to 100_x.sh"),
    (["20.py"], "20.py is not named", "rename 20.py to 020_main.py"),
    (["deploy"], "deploy is not named", "rename deploy to 100_deploy"),  # executable
    (["b.py", "a.sh", "README.md", "data.csv", ".hidden.sh"],
     "a.sh and b.py are not named NNN_* (three digits and '_'), so they never run",
     "rename a.sh to 100_a.sh (and the others alike)"),
    ([f"{n}.sh" for n in "abcdefg"], "a.sh, b.sh, c.sh, d.sh, e.sh and 2 more are not named",
     "rename a.sh to 100_a.sh (and the others alike)"),
])
def test_the_warning_names_the_misnamed_scripts_and_the_rename(
        workspace: Path, files: list[str], cause: str, fix: str) -> None:
    """What a typo'd script looks like (no NNN_ prefix, two or four digits, '-' for '_')
    is called out by name, with the rename that makes it run; README.md and data files
    are not scripts, and hidden files are not listed."""
    scripts = workspace / "scripts"
    job_dir = write_job(scripts, "job", script=None)
    for name in files:
        (job_dir / name).write_text("true\n")
    if "deploy" in files:
        (job_dir / "deploy").chmod(0o755)
    (job_dir / "notes").mkdir()  # a directory is never a script
    message = warned(discover(scripts, display_base=workspace), "job")
    assert message.startswith("job 'job' has nothing to run (its runs complete with zero steps): ")
    assert cause in message
    assert message.endswith(f"; {fix}")


def test_steps_without_composition_are_one_warning_saying_to_add_it(workspace: Path) -> None:
    """The reference's own fixture (§17 test 2): a hello.sh and 'steps:' without
    'composition: steps'. One warning, which says both why and how (not also the generic
    "steps: ignored", which a job with scripts still gets)."""
    scripts = workspace / "scripts"
    job_dir = write_job(scripts, "demo", "job: {id: demo, name: Demo Job}\n"
                        "steps: [{id: greet, script: scripts/demo/hello.sh}]\n", script=None)
    (job_dir / "hello.sh").write_text("echo hello\n")
    write_job(scripts, "scripted", "steps: [{id: a, script: a.sh}]\n")
    catalog = discover(scripts, display_base=workspace)
    assert ids(catalog) == ["demo", "scripted"]
    assert warned(catalog, "demo") == (
        "job 'demo' has nothing to run (its runs complete with zero steps): hello.sh is not "
        "named NNN_* (three digits and '_'), so it never runs, and its 1 step in 'steps:' is "
        "ignored without 'composition: steps'; add 'composition: steps' to run the steps, or "
        "rename hello.sh to 100_hello.sh")
    [other] = [issue for issue in catalog.warnings if "scripted" in issue.path]
    assert other.message == "steps: ignored without 'composition: steps'"


def test_composition_without_steps_runs_the_scripts_or_warns_once(workspace: Path) -> None:
    """'composition: steps' without steps is no DAG (as in the reference): a job with an
    NNN_ file runs it (a warning about the key), one without gets the one warning."""
    scripts = workspace / "scripts"
    write_job(scripts, "scripted", "composition: steps\n")
    write_job(scripts, "bare", "composition: steps\n", script=None)
    catalog = discover(scripts, display_base=workspace)
    assert ids(catalog) == ["bare", "scripted"] and catalog.errors == []
    assert catalog.get("scripted").scripts == ("100_main.sh",)
    [scripted] = [issue for issue in catalog.warnings if "scripted" in issue.path]
    assert scripted.message == (
        "composition: steps lists no steps, so the job runs its NNN_ scripts instead")
    assert warned(catalog, "bare") == (
        "job 'bare' has nothing to run (its runs complete with zero steps): no file next to "
        "config.d/ is named NNN_* (three digits and '_'), and 'composition: steps' lists no "
        "steps; list the steps under 'steps:'")


def test_a_job_with_nothing_to_run_claims_its_id(workspace: Path) -> None:
    """It is a job like any other: a second config with its id makes the id ambiguous."""
    scripts = workspace / "scripts"
    write_job(scripts, "empty", "job: {id: shared}\n", script=None)
    write_job(scripts, "other", "job: {id: shared}\n")
    catalog = discover(scripts, display_base=workspace)
    assert ids(catalog) == []
    assert catalog.ambiguous("shared") is not None
    assert sorted(issue.code for issue in catalog.errors) == ["job.id.duplicate"] * 2


def test_a_source_job_with_nothing_to_run_is_warned_under_its_namespaced_id(
        workspace: Path) -> None:
    scripts = workspace / "scripts"
    write_job(scripts, "lint", script=None)
    catalog = discover(scripts, namespace="tools", display_base=workspace)
    assert ids(catalog) == ["tools/lint"]
    assert warned(catalog, "lint").startswith("job 'tools/lint' has nothing to run")
