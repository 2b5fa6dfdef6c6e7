"""``flwd :sources`` end to end: the real CLI on a real data dir with real git repositories,
then the same verbs through a real ``flwd :serve`` (remote mode)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, git, make_git_repo, run_cli, write_job

HELLO_CONFIG = """\
job: {id: gitjob, summary: From a repository}
interpreter: bash
"""


def job_files(text: str) -> dict[str, str]:
    return {"scripts/gitjob/config.d/config.yaml": HELLO_CONFIG,
            "scripts/gitjob/100_run.sh": f"echo {text}\n"}


@pytest.fixture
def repos(tmp_path: Path) -> Path:
    """The folder sources may come from (``--allow-path``); outside the workspace."""
    path = tmp_path / "repos"
    path.mkdir()
    return path


@pytest.fixture
def repo(repos: Path) -> Path:
    return make_git_repo(repos / "tools", job_files("from-commit-one"), message="one")


class Cli:
    def __init__(self, workspace: Path, data_dir: Path, repos: Path) -> None:
        self.workspace, self.data_dir, self.repos = workspace, data_dir, repos

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), cwd=self.workspace, data_dir=self.data_dir, **env)

    def ok(self, *args: str, **env: str) -> str:
        done = self(*args, **env)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        return done.stdout

    def add_git(self, name: str, ref: str, url: str, *extra: str) -> str:
        return self.ok(":sources", "add", "--type", "git", "--name", name, "--url", url,
                       "--ref", ref, "--allow-path", str(self.repos), *extra)

    def listing(self) -> list[dict[str, Any]]:
        documents: list[dict[str, Any]] = json.loads(self.ok(":sources", "list", "--json"))
        return documents

    def plan_source(self, *words: str) -> dict[str, Any]:
        plan = json.loads(self.ok(":plan", *words, "--json"))
        source: dict[str, Any] = plan["provenance"]["source"]
        return source


@pytest.fixture
def cli(workspace: Path, data_dir: Path, repos: Path) -> Cli:
    return Cli(workspace, data_dir, repos)


def url_of(repo: Path) -> str:
    return f"file://{repo}"


def trees(data_dir: Path, name: str) -> list[str]:
    return sorted(p.name for p in (data_dir / "sources" / name / "trees").iterdir())


# -- local mode: git ---------------------------------------------------------------------


def test_branch_pins_a_commit_that_moves_only_on_refresh(cli: Cli, repo: Path,
                                                         data_dir: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    assert cli.add_git("tools", "main", url_of(repo)) == "Source tools (git) added\n"
    [document] = cli.listing()
    assert (document["name"], document["type"], document["ref"], document["status"],
            document["jobs"], document["resolved_commit"]) == (
        "tools", "git", "main", "ready", 1, first)
    table = cli.ok(":sources", "list").splitlines()
    assert table[0].split() == ["NAME", "TYPE", "REF", "STATUS", "JOBS", "RESOLVED"]
    assert table[1].split() == ["tools", "git", "main", "ready", "1", first[:12]]

    assert cli.ok("tools/gitjob") == "from-commit-one\n"
    assert cli.ok("tools", "gitjob") == "from-commit-one\n"
    source = cli.plan_source("tools/gitjob")
    assert source["resolved_commit"] == first
    assert source["ref"] == "main" and source["url"] == url_of(repo)
    assert source["checkout_path"] == str(data_dir / "sources" / "tools" / "trees" / first)

    make_git_repo(repo, job_files("from-commit-two"), message="two")
    second = git(repo, "rev-parse", "HEAD")
    assert cli.ok("tools/gitjob") == "from-commit-one\n"  # pinned until a refresh
    assert cli.ok(":sources", "refresh", "tools") == \
        f"Source tools (git) refreshed at {second[:12]}\n"
    assert cli.ok("tools/gitjob") == "from-commit-two\n"
    assert cli.plan_source("tools/gitjob")["resolved_commit"] == second
    assert trees(data_dir, "tools") == [second]  # no live run used the old tree

    assert cli.ok(":sources", "remove", "tools") == "Source tools removed\n"
    assert not (data_dir / "sources" / "tools").exists()
    assert cli.ok(":sources", "list") == "(no sources configured)\n"
    jobs = json.loads(cli.ok(":jobs", "--json"))["jobs"]
    assert jobs and not [job for job in jobs if job["id"].startswith("tools/")]
    gone = cli("tools/gitjob")
    assert gone.returncode == 2 and "unknown job" in gone.stderr


def test_no_ref_is_head_the_default_branch(cli: Cli, repo: Path) -> None:
    # As the reference's (§12.2): a git source without --ref follows HEAD.
    head = git(repo, "rev-parse", "HEAD")
    assert cli.ok(":sources", "add", "--type", "git", "--url", url_of(repo), "--allow-path",
                  str(cli.repos)) == "Source tools (git) added\n"
    [document] = cli.listing()
    assert (document["ref"], document["resolved_commit"]) == ("HEAD", head)
    make_git_repo(repo, job_files("from-commit-two"), message="two")
    cli.ok(":sources", "refresh", "tools")
    assert cli.ok("tools/gitjob") == "from-commit-two\n"


def test_tag_and_commit_refs_pin_their_commit(cli: Cli, repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "v1")
    make_git_repo(repo, job_files("from-commit-two"), message="two")
    second = git(repo, "rev-parse", "HEAD")
    cli.add_git("tagged", "v1", url_of(repo))
    cli.add_git("bycommit", first[:10], url_of(repo))
    cli.add_git("head", "main", url_of(repo))
    pinned = {d["name"]: d["resolved_commit"] for d in cli.listing()}
    assert pinned == {"bycommit": first, "head": second, "tagged": first}
    assert cli.ok("tagged/gitjob") == "from-commit-one\n"
    assert cli.ok("bycommit/gitjob") == "from-commit-one\n"
    assert cli.ok("head/gitjob") == "from-commit-two\n"
    assert cli.plan_source("tagged/gitjob")["resolved_commit"] == first

    # A new ref of the same repository updates the source (same name, same url).
    assert cli.add_git("tagged", "main", url_of(repo)) == "Source tagged (git) updated\n"
    assert cli.ok("tagged/gitjob") == "from-commit-two\n"
    # A failed update (a ref the repository lacks) leaves the source as it was.
    bad = cli(":sources", "add", "--type", "git", "--name", "tagged", "--url", url_of(repo),
              "--ref", "nope", "--allow-path", str(cli.repos))
    assert bad.returncode == 1 and "ref 'nope'" in bad.stderr
    assert {d["name"]: (d["ref"], d["resolved_commit"]) for d in cli.listing()}["tagged"] == (
        "main", second)
    assert cli.ok("tagged/gitjob") == "from-commit-two\n"
    # A tag is fixed: refreshing it keeps its commit.
    cli.ok(":sources", "refresh", "bycommit")
    assert {d["name"]: d["resolved_commit"] for d in cli.listing()}["bycommit"] == first

    listed = json.loads(cli.ok(":jobs", "--json"))["jobs"]
    blocks = {job["id"]: job.get("source") for job in listed if "/" in job["id"]}
    assert blocks == {f"{name}/gitjob": {"name": name, "type": "git"}
                      for name in ("bycommit", "head", "tagged")}
    assert all("source" not in job for job in listed if "/" not in job["id"])
    human = cli.ok(":jobs").splitlines()
    assert human[0].split() == ["ID", "NAME", "SUMMARY", "SOURCE"]
    assert any(line.split()[0] == "head/gitjob" and line.split()[-1] == "head"
               for line in human)


def test_branch_ref_and_a_failing_refresh_keep_the_last_good_checkout(cli: Cli,
                                                                      repo: Path) -> None:
    git(repo, "checkout", "--quiet", "-b", "feature")
    make_git_repo(repo, job_files("from-feature"), message="feature")
    feature = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "--quiet", "main")
    cli.add_git("feat", "feature", url_of(repo))
    assert cli.ok("feat/gitjob") == "from-feature\n"

    git(repo, "branch", "--quiet", "-D", "feature")
    failed = cli(":sources", "refresh", "feat")
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.startswith("flwd: error: ref 'feature' is not a branch, tag or commit")
    assert "Traceback" not in failed.stderr
    [document] = cli.listing()
    assert (document["status"], document["resolved_commit"]) == ("ready", feature)
    assert cli.ok("feat/gitjob") == "from-feature\n"


def test_a_checkout_deleted_by_hand_is_reported_and_refresh_restores_it(
        cli: Cli, repo: Path, data_dir: Path) -> None:
    import shutil

    cli.add_git("tools", "main", url_of(repo))
    shutil.rmtree(data_dir / "sources" / "tools" / "trees")
    listed = cli(":jobs")
    assert listed.returncode == 0
    assert "source 'tools': its files are gone" in listed.stderr
    assert "tools/gitjob" not in listed.stdout
    quiet = cli(":jobs", "--json")
    assert quiet.returncode == 0 and quiet.stderr == ""
    cli.ok(":sources", "refresh", "tools")
    assert cli.ok("tools/gitjob") == "from-commit-one\n"


# -- local mode: local folders -----------------------------------------------------------


def test_local_folder_source_jobs_aliases_and_provenance(cli: Cli, repos: Path) -> None:
    extra = repos / "extra-scripts"
    (extra / "hello" / "config.d").mkdir(parents=True)
    (extra / "hello" / "config.d" / "config.yaml").write_text(
        "job: {id: hello, summary: Greets}\ninterpreter: bash\n"
        "argspec:\n  args:\n    - {name: name, type: string, required: true}\n")
    (extra / "hello" / "100_run.sh").write_text('echo "hello $ARG_NAME"\n')
    (extra / "flwd.yaml").write_text("aliases:\n  - {from: hello, to: greet-extra}\n")

    out = cli.ok(":sources", "add", "--type", "local", "--ref", str(extra), "--name", "extras",
                 "--allow-path", str(repos), "--json")
    document = json.loads(out)
    assert document["resolved_ref"] == str(extra) and document["jobs"] == 1
    assert document["aliases"] == [{"from": "hello", "to": "greet-extra"}]

    assert cli.ok("extras/hello", "--name", "Alice") == "hello Alice\n"
    assert cli.ok("extras", "hello", "--name", "Bob") == "hello Bob\n"
    assert cli.ok("greet-extra", "--name", "Eve") == "hello Eve\n"
    source = cli.plan_source("extras/hello", "--name", "A")
    assert (source["name"], source["type"], source["resolved_path"]) == (
        "extras", "local", str(extra))
    # The workspace's own jobs are unchanged.
    assert "alice" in cli.ok("demo", "--name", "alice")

    # A local folder is only referenced: removing the source never touches it.
    cli.ok(":sources", "remove", "extras")
    assert (extra / "hello" / "100_run.sh").is_file()
    assert cli("extras/hello", "--name", "x").returncode == 2


def test_default_name_is_the_folder_name(cli: Cli, workspace: Path) -> None:
    # Relative refs are taken from the scripts root, which is always allowed.
    assert cli.ok(":sources", "add", "--type", "local", "--ref", "examples") == \
        "Source examples (local) added\n"
    [document] = cli.listing()
    assert document["resolved_ref"] == str((workspace / "scripts" / "examples").resolve())
    assert document["jobs"] > 0


# -- bad input: one line naming the problem, nothing half-registered -----------------------


def bad_cases(repos: Path, tmp_path: Path) -> list[tuple[list[str], int, str]]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repos / "escape").symlink_to(outside)
    (repos / "not-a-repo").mkdir()
    url = f"file://{repos / 'tools'}"
    return [
        (["--type", "svn", "--ref", "x"], 2, "type: unknown source type 'svn'"),
        (["--type", "git", "--ref", "main"], 2, "url: required"),
        (["--type", "local"], 2, "ref: required"),
        (["--type", "local", "--ref", "../../../etc", "--name", "up"], 2,
         "is outside the allow-list"),
        (["--type", "local", "--ref", "examples/../../.."], 2, "cannot derive a name"),
        (["--type", "local", "--ref", str(repos / "escape")], 2,
         f"is outside the allow-list (it resolves to {outside})"),
        (["--type", "git", "--url", f"file://{repos / 'missing'}", "--ref", "main"], 2,
         "is not an existing directory"),
        (["--type", "git", "--url", f"file://{repos / 'not-a-repo'}", "--ref", "main"], 1,
         "git clone"),
        (["--type", "git", "--url", url, "--ref", "nope"], 1, "ref 'nope' is not a branch"),
        (["--type", "git", "--url", url, "--ref", "a..b"], 2, "ref: 'a..b' is not a valid"),
        (["--type", "git", "--url", "https://example.com/x.git", "--ref", "main"], 2,
         "git host 'example.com' is not allowed"),
        (["--type", "git", "--url", url, "--ref", "main", "--name", "a/b"], 2,
         "name: invalid name 'a/b'"),
        (["--type", "git", "--url", url, "--ref", "main", "--expose", "all"], 2,
         "expose: must be"),
    ]


def test_bad_input_is_one_line_and_nothing_is_registered(cli: Cli, repo: Path, repos: Path,
                                                         tmp_path: Path,
                                                         data_dir: Path) -> None:
    for args, status, expected in bad_cases(repos, tmp_path):
        done = cli(":sources", "add", *args, "--allow-path", str(repos))
        assert done.returncode == status, (args, done.stderr)
        first = done.stderr.splitlines()[0]
        assert first.startswith("flwd: error: ") and expected in first, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stdout == ""
    assert cli.ok(":sources", "list") == "(no sources configured)\n"
    assert not (data_dir / "sources").exists() or not [
        p for p in (data_dir / "sources").iterdir() if not p.name.startswith(".")]


def test_a_name_is_one_source(cli: Cli, repo: Path, repos: Path, data_dir: Path) -> None:
    other = make_git_repo(repos / "other", job_files("from-other"))
    cli.add_git("tools", "main", url_of(repo))
    for args in (["--type", "git", "--url", url_of(other), "--ref", "main"],
                 ["--type", "local", "--ref", str(repos)]):
        done = cli(":sources", "add", "--name", "TOOLS", *args, "--allow-path", str(repos))
        assert done.returncode == 2
        assert done.stderr.startswith("flwd: error: a git source named 'TOOLS' already exists")
    [document] = cli.listing()
    assert document["url"] == url_of(repo)
    assert cli.ok("tools/gitjob") == "from-commit-one\n"
    assert sorted(p.name for p in (data_dir / "sources").iterdir()
                  if not p.name.startswith(".")) == ["tools"]  # .changed: completion's marker
    for verb in ("remove", "refresh"):
        done = cli(":sources", verb, "nope")
        assert done.returncode == 2
        assert done.stderr.startswith("flwd: error: no source named 'nope'")


# -- remote mode -------------------------------------------------------------------------


def remote(server: Server, cli: Cli, *args: str, cwd: Path | None = None,
           ) -> subprocess.CompletedProcess[str]:
    return run_cli(list(args), cwd=cwd or cli.workspace, data_dir=cli.data_dir,
                   FLWD_SERVER=server.url, FLWD_TOKEN="dev-token")


def test_remote_mode_is_the_same_through_the_api(server_factory: Any, cli: Cli, repo: Path,
                                                 repos: Path, tmp_path: Path) -> None:
    # Added locally, served by a server started on the same data dir afterwards.
    cli.add_git("tools", "main", url_of(repo))
    local_document = cli.listing()[0]
    server = server_factory("--dev", "--allow-path", str(repos))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def far(*args: str) -> subprocess.CompletedProcess[str]:
        return remote(server, cli, *args, cwd=elsewhere)

    listed = far(":sources", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [document] = json.loads(listed.stdout)
    assert set(document) == set(local_document)
    assert document["resolved_commit"] == local_document["resolved_commit"]
    table = far(":sources", "list").stdout.splitlines()
    assert table[1].split()[:5] == ["tools", "git", "main", "ready", "1"]

    added = far(":sources", "add", "--type", "git", "--name", "head", "--url", url_of(repo),
                "--ref", "main")
    assert (added.returncode, added.stdout) == (0, "Source head (git) added\n"), added.stderr
    again = far(":sources", "add", "--type", "git", "--name", "head", "--url", url_of(repo),
                "--ref", "main", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["name"] == "head"
    assert far("head/gitjob").stdout == "from-commit-one\n"

    make_git_repo(repo, job_files("from-commit-two"), message="two")
    second = git(repo, "rev-parse", "HEAD")
    assert far("head/gitjob").stdout == "from-commit-one\n"
    refreshed = far(":sources", "refresh", "head", "--json")
    assert refreshed.returncode == 0, refreshed.stderr
    assert json.loads(refreshed.stdout)["resolved_commit"] == second
    assert far("head/gitjob").stdout == "from-commit-two\n"
    local_jobs = cli.ok(":jobs").splitlines()
    assert far(":jobs").stdout.splitlines()[0].split() == ["ID", "NAME", "SUMMARY", "SOURCE"]
    assert local_jobs[0].split() == ["ID", "NAME", "SUMMARY", "SOURCE"]

    for args, status, expected in [
        (["add", "--type", "git", "--name", "bad", "--url", url_of(repo), "--ref", "nope"], 1,
         "ref 'nope' is not a branch"),
        (["add", "--type", "local", "--ref", "/etc"], 2, "path '/etc' is outside the allow-list"),
        (["add", "--type", "local", "--name", "head", "--ref", str(repos)], 2,
         "already exists"),
        (["add", "--type", "svn", "--ref", "x"], 2, "type: unknown source type"),
        (["add", "--type", "local", "--ref", str(repos), "--allow-path", "/"], 2,
         "apply to local mode only"),
        (["remove", "nope"], 2, "no source named 'nope'"),
        (["refresh", "nope"], 2, "no source named 'nope'"),
    ]:
        done = far(":sources", *args)
        assert done.returncode == status, (args, done.stderr)
        first = done.stderr.splitlines()[0]
        assert first.startswith("flwd: error: ") and expected in first, (args, done.stderr)
        assert "refused the request" not in first and "Traceback" not in done.stderr

    assert far(":sources", "remove", "head").stdout == "Source head removed\n"
    assert far(":sources", "remove", "tools").stdout == "Source tools removed\n"
    assert far(":sources", "list").stdout == "(no sources configured)\n"
    gone = far("head/gitjob")
    assert gone.returncode == 2 and "unknown job" in gone.stderr


# -- the documentation's example ---------------------------------------------------------


def test_the_cli_example_of_docs_sources_md_runs(cli: Cli, tmp_path: Path) -> None:
    """docs/sources.md's CLI session, with /srv in a temp dir: same commands, same output
    (up to column widths and the commit id)."""
    import re
    import shlex

    from tests.conftest import REPO

    text = (REPO / "docs" / "sources.md").read_text()
    session = text.split("## CLI", 1)[1].split("```console\n", 1)[1].split("```", 1)[0]
    srv = tmp_path / "srv"
    extra = srv / "extra-scripts" / "hello"
    (extra / "config.d").mkdir(parents=True)
    (extra / "config.d" / "config.yaml").write_text("job: {id: hello}\ninterpreter: bash\n")
    (extra / "100_run.sh").write_text("echo hello\n")
    repo = make_git_repo(srv / "repos" / "tools", job_files("from-tools"))
    git(repo, "tag", "v1")
    commit = git(repo, "rev-parse", "HEAD")

    def words_of(output: str) -> list[list[str]]:
        return [line.split() for line in output.splitlines()]

    commands = re.split(r"^\$ ", session, flags=re.M)[1:]
    assert len(commands) == 5
    for block in commands:
        command, _, expected = block.partition("\n")
        words = shlex.split(command.replace("/srv", str(srv)))
        assert words[0] == "flwd"
        done = cli(*words[1:])
        assert done.returncode == 0, (command, done.stderr)
        expected = expected.replace("/srv", str(srv)).replace("9c50bd5693e1", commit[:12])
        assert words_of(done.stdout) == words_of(expected), command
    assert cli.ok("tools/gitjob") == "from-tools\n"


def test_a_source_s_schedules_fire_only_when_it_was_added_with_them(cli: Cli, repos: Path
                                                                    ) -> None:
    # A repository added to run its jobs by hand does not start runs on its own.
    extra = repos / "timed"
    write_job(extra, "tick", "schedule:\n  - {name: extra-tick, cron: '*/5 * * * *', "
                             "timezone: UTC}\n", {"100_run.sh": "echo tick\n"})
    added = json.loads(cli.ok(":sources", "add", "--type", "local", "--ref",
                              str(extra / "scripts"), "--name", "timed", "--allow-path",
                              str(repos), "--json"))
    assert added["schedules"] is False
    listed = json.loads(cli.ok(":schedules", "list", "--json"))
    assert [s["name"] for s in listed["schedules"]] == []
    jobs = cli(":jobs")
    assert ("schedule: ignored: source timed was added without schedules (add it again with "
            "--schedules, or \"schedules\": true, to let them fire)") in jobs.stderr
    assert cli.ok("timed/tick") == "tick\n"  # by hand, as ever

    # Added again with --schedules (an update): they fire, and stay allowed on refresh.
    again = json.loads(cli.ok(":sources", "add", "--type", "local", "--ref",
                              str(extra / "scripts"), "--name", "timed", "--allow-path",
                              str(repos), "--schedules", "--json"))
    assert again["schedules"] is True
    cli.ok(":sources", "refresh", "timed")
    listed = json.loads(cli.ok(":schedules", "list", "--json"))
    [schedule] = listed["schedules"]
    assert (schedule["name"], schedule["job_id"], schedule["status"]) == (
        "extra-tick", "timed/tick", "active")
    assert "schedule: ignored" not in cli(":jobs").stderr


@pytest.mark.parametrize(("flags", "message"), [
    (["--type", "oci", "--ref", "127.0.0.1:5000/x/addon:1", "--trusted", "--schedules"],
     "schedules: an oci add-on's jobs have no schedules"),
])
def test_schedules_of_an_add_on_are_refused(cli: Cli, flags: list[str], message: str) -> None:
    done = cli(":sources", "add", *flags)
    assert done.returncode == 2 and message in done.stderr, done.stderr
