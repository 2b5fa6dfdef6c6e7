"""The completion engine in-process (sans-IO): an index built once, then ``complete()``."""

from __future__ import annotations

import inspect
import json
import marshal
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from flwd.complete import complete, encode
from flwd.complete._build import build_index, segments
from flwd.complete._index import empty_index
from flwd.complete._scripts import SHELLS as SCRIPT_SHELLS
from flwd.complete._verbs import GLOBAL_FLAGS, SHELLS, SUBCOMMANDS, VERBS
from tests.complete.conftest import make_contract_workspace
from tests.conftest import write_job

if TYPE_CHECKING:
    from flwd.complete._index import Index

TOOLS = """\
job: {summary: All the tools}
argspec:
  args:
    - {name: fix, type: boolean}
"""
LINT = """\
argspec:
  args:
    - {name: level, type: integer, enum: [1, 2, 3]}
    - {name: rules, type: array, items_enum: [style, bugs]}
    - {name: secret_token, type: string, format: secret}
    - {name: meta, type: object}
    - {name: quiet, type: boolean, description: Say less}
"""


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    root = make_contract_workspace(tmp_path_factory.mktemp("resolver"))
    write_job(root, "tools", TOOLS, {})
    write_job(root, "tools/lint", LINT, {})
    (root / "scripts" / "flwd.yaml").write_text(
        "aliases:\n"
        "  - {from: alpha/deploy, to: ship, description: Ship it}\n"
        "  - {from: alpha.build, to: my.build}\n"
        "  - {from: alpha/build, to: alpha}\n"      # a group's name: the group wins
        "  - {from: nowhere, to: lost}\n")          # invalid: never offered
    return build_index(str(root / "scripts"))


def inserts(index: Index | None, *tokens: str) -> list[str]:
    return [insert for insert, _, _ in complete(index, list(tokens))]


def test_root_lists_jobs_groups_aliases_and_plain_verbs(index: Index) -> None:
    found = complete(index, [""])
    assert [c[0] for c in found] == ["alpha", "completion", "init", "my.build", "ship", "tools"]
    displays = {insert: display for insert, display, _ in found}
    assert displays["alpha"] == "group of 2 jobs"
    assert displays["ship"] == "ship (alias -> alpha/deploy, Ship it)"
    assert displays["my.build"] == "my.build (alias -> alpha/build)"
    assert displays["tools"] == "All the tools"
    assert {kind for _, _, kind in found} == {"segment"}
    assert complete(index, []) == found  # `__complete 1`: no token at all


def test_colon_verbs_only_after_a_colon(index: Index) -> None:
    assert inserts(index, ":") == sorted(name for name in VERBS if name.startswith(":"))
    assert inserts(index, ":P") == [":plan"]
    assert not [i for i in inserts(index, "") if i.startswith(":")]


def test_matching_is_case_insensitive_and_keeps_the_names_case(index: Index) -> None:
    assert inserts(index, "SH") == ["ship"]
    assert inserts(index, "ALPHA", "B") == ["build"]


def test_dotted_words_complete_in_place(index: Index) -> None:
    assert inserts(index, "alpha.") == ["alpha.build", "alpha.deploy"]
    assert inserts(index, "tools.l") == ["tools.lint"]
    assert inserts(index, "my.b") == ["my.build"]  # an alias with a dot is matched whole
    assert inserts(index, "alpha.deploy", "--s") == ["--strategy"]
    assert inserts(index, "nowhere.x") == []


def test_a_job_that_is_also_a_group(index: Index) -> None:
    assert inserts(index, "tools", "") == ["lint"]
    assert inserts(index, "tools", "--f") == ["--fix"]
    # Once a flag was typed, the job's flags (--fix is given already).
    assert inserts(index, "tools", "--fix=true", "") == ["--debug", "--help", "--json",
                                                         "--profile"]
    assert inserts(index, "tools", "--fix", "--j") == ["--json"]  # not a value of --fix


def test_flags_of_a_leaf_job_include_the_common_ones(index: Index) -> None:
    found = complete(index, ["tools", "lint", ""])
    assert [c[0] for c in found] == ["--debug", "--help", "--json", "--level", "--meta",
                                     "--profile", "--quiet", "--rules", "--secret_token",
                                     "--secret_token-file"]
    assert {kind for _, _, kind in found} == {"flag"}
    assert dict((c[0], c[1]) for c in found)["--quiet"] == "boolean — Say less"


def test_a_secret_offers_its_file_form_and_a_file_path_after_it(index: Index) -> None:
    found = dict((c[0], c[1]) for c in complete(index, ["tools", "lint", "--sec"]))
    assert found == {"--secret_token": "string, secret (--secret_token - reads stdin)",
                     "--secret_token-file": "--secret_token read from the file PATH"}
    # After the flag (either spelling), the shell's own file completion takes over.
    for spelling in ("--secret_token-file", "--secret-token-file", "--SECRET-TOKEN-FILE"):
        assert complete(index, ["tools", "lint", spelling, "no"]) == [
            ("no", "a file path", "file")]
    assert complete(index, ["tools", "lint", "--secret-token-file=~/t"]) == [
        ("--secret-token-file=~/t", "a file path", "file")]
    # One value, two forms: once one is given, neither is offered again.
    for given in ("--secret_token-file=t", "--secret-token", "--secret_token=-"):
        after = inserts(index, "tools", "lint", given, "x", "--s")
        assert after == [], given


def test_a_flag_given_once_is_not_offered_again_unless_it_repeats(index: Index) -> None:
    after = inserts(index, "tools", "lint", "--json", "--level", "2", "--rules", "bugs", "")
    assert "--level" not in after and "--json" not in after
    assert "--rules" in after and "--meta" in after
    assert "--secret_token" not in inserts(index, "tools", "lint", "--secret-token=x", "")


def test_values_of_pending_flags(index: Index) -> None:
    assert inserts(index, "tools", "lint", "--level", "") == ["1", "2", "3"]
    assert inserts(index, "tools", "lint", "--rules", "") == ["style", "bugs"]
    assert inserts(index, "tools", "lint", "--quiet", "") == ["true", "false"]
    assert inserts(index, "tools", "lint", "--profile", "p") == ["permissive"]
    assert inserts(index, "tools", "lint", "--secret-token", "") == []
    assert inserts(index, "tools", "lint", "--meta", "") == []
    assert inserts(index, "tools", "lint", "--nope", "") == []
    assert inserts(index, "tools", "lint", "-h", "") == ["true", "false"]
    found = complete(index, ["alpha", "deploy", "--env", "S"])
    assert found == [("staging", "staging", "value")]


def test_a_value_already_given_ends_the_pending_flag(index: Index) -> None:
    assert "--strategy" in inserts(index, "alpha", "deploy", "--env", "prod", "")
    assert inserts(index, "alpha", "deploy", "--env=prod", "--s") == ["--strategy"]


def test_flag_equals_value_completes_in_place(index: Index) -> None:
    assert complete(index, ["alpha", "deploy", "--env=s"]) == [
        ("--env=staging", "staging", "value")]
    assert inserts(index, "ship", "--strategy=") == ["--strategy=rolling",
                                                     "--strategy=blue-green"]


def test_standalone_double_dash_is_dropped(index: Index) -> None:
    assert inserts(index, "alpha", "deploy", "--", "--env", "") == ["prod", "staging"]
    assert inserts(index, "alpha", "deploy", "--", "--e") == ["--env"]


def test_global_options_in_front(index: Index) -> None:
    assert inserts(index, "--") == [f"--{name}" for name, *_ in GLOBAL_FLAGS]
    assert inserts(index, "--debug", "--scripts", "x", "sh") == ["ship"]
    assert inserts(index, "--scripts", "") == []  # a directory: nothing to offer
    assert inserts(index, "--debug", "--deb") == []  # already given
    assert inserts(index, "--scripts=x", "--data") == ["--data-dir"]


def test_verbs_operands_and_flags(index: Index) -> None:
    assert inserts(index, "completion", "") == list(SHELLS)
    assert inserts(index, "completion", "z") == ["zsh"]
    assert inserts(index, "completion", "bash", "") == []
    assert inserts(index, "init", "p") == ["python", "pwsh"]  # values keep their order
    assert inserts(index, "init", "bash", "tools/x", "--") == ["--force"]
    assert inserts(index, ":runs", "--status", "c") == ["completed", "canceled"]
    assert inserts(index, ":runs", "--job", "alpha") == ["alpha.build", "alpha.deploy"]
    assert inserts(index, ":runs", "") == ["--all", "--arg", "--job", "--json", "--limit", "--since",
                                         "--status", "--until"]
    assert inserts(index, ":logs", "--f") == ["--follow"]
    assert inserts(index, ":serve", "--log=") == ["--log=text", "--log=json"]
    assert inserts(index, ":tokens", "") == ["create", "import", "list", "revoke"]
    assert inserts(index, ":tokens", "create", "--scope", "jobs") == ["jobs:read", "jobs:write"]
    assert inserts(index, ":tokens", "create", "--") == [
        "--expires", "--name", "--scope", "--tokens"]
    assert inserts(index, ":tokens", "list", "--") == ["--json", "--tokens"]
    assert inserts(index, ":tokens", "revoke", "ci", "--") == ["--tokens"]
    assert inserts(index, ":serve", "--tok") == ["--tokens"]
    assert inserts(index, ":sources", "") == ["add", "list", "refresh", "remove"]
    assert inserts(index, ":sources", "add", "--type", "") == ["local", "git", "oci"]
    assert inserts(index, ":sources", "add", "--expose=r") == ["--expose=read",
                                                               "--expose=readwrite"]
    assert inserts(index, ":sources", "list", "") == ["--json"]
    assert inserts(index, ":sources", "nope", "") == []


def test_plan_completes_a_job_and_its_flags(index: Index) -> None:
    assert inserts(index, ":plan", "") == ["alpha", "my.build", "ship", "tools"]
    assert inserts(index, ":plan", "alpha", "deploy", "--") == [
        "--env", "--json", "--profile", "--strategy"]
    assert inserts(index, ":plan", "ship", "--env", "") == ["prod", "staging"]


def test_without_an_index_only_flwds_own_words(index: Index) -> None:
    assert inserts(None, "") == ["completion", "init"]
    assert inserts(empty_index("/x"), ":c") == [":cancel"]
    assert inserts(None, "alpha", "") == []


def test_unknown_words_stop_the_walk(index: Index) -> None:
    # Reference §14.1 step 1: the context is what was resolved before the unknown word.
    assert inserts(index, "alpha", "zzz", "b") == ["build"]
    assert inserts(index, "alpha", "deploy", "extra", "--e") == ["--env"]


def test_invalid_aliases_are_never_offered(index: Index) -> None:
    assert inserts(index, "lo") == []
    assert inserts(index, "alpha", "") == ["build", "deploy"]  # the group, not the alias


def test_source_namespaces_become_a_first_segment() -> None:
    assert segments("alpha.deploy") == ["alpha", "deploy"]
    assert segments("tools/lint.go") == ["tools", "lint", "go"]


def test_encode_is_ndjson_that_round_trips_any_text() -> None:
    weird = 'a "quoted" \\ back\nslash\té ✓ \x01'
    text = encode([(weird, "d", "value"), ("x", weird, "flag")])
    lines = text.splitlines()
    assert len(lines) == 2 and text.endswith("\n")
    assert json.loads(lines[0]) == {"insert": weird, "display": "d", "type": "value"}
    assert lines[1].startswith('{"insert": "x", "display": "')
    assert encode([]) == ""


def test_shells_agree() -> None:
    assert SCRIPT_SHELLS == SHELLS


def test_the_verb_table_knows_every_cyclopts_command_and_flag() -> None:
    # A new verb or flag in flwd.cli._app must be added to flwd.complete._verbs.
    from cyclopts import Parameter

    from flwd.cli._app import app

    def flag_names(function: Any) -> set[str]:
        hints = typing.get_type_hints(function, include_extras=True)
        names = set()
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
                continue
            name = parameter.name.replace("_", "-")
            hidden = False
            for extra in getattr(hints[parameter.name], "__metadata__", ()):
                if isinstance(extra, Parameter) and extra.name:
                    name = str(extra.name[0]).removeprefix("--")
                # An old spelling kept working but unlisted is not offered either.
                hidden = hidden or (isinstance(extra, Parameter) and extra.show is False)
            if not hidden:
                names.add(name)
        return names

    commands = {name for name in app if not name.startswith("-")}
    assert commands <= set(VERBS), commands - set(VERBS)
    checked = 0
    for name in commands:
        sub = app[name]
        if sub.default_command is not None:
            assert flag_names(sub.default_command) <= {f[0] for f in VERBS[name][1]}, name
            checked += 1
            continue
        children = {child for child in sub if not child.startswith("-")}
        assert children == set(SUBCOMMANDS[name]), name
        assert VERBS[name][2] == (tuple(sorted(children)),)
        for child in children:
            function = sub[child].default_command
            own = {f[0] for f in SUBCOMMANDS[name][child][1]}
            assert flag_names(function) <= own, (name, child, flag_names(function) - own)
            checked += 1
    assert checked >= 10


def test_reference_job_index_has_the_contract_workspace(tmp_path: Path) -> None:
    built = build_index(str(make_contract_workspace(tmp_path) / "scripts"))
    assert set(built["jobs"]) == {"alpha.build", "alpha.deploy"}
    assert built["tree"]["kids"]["ship"]["job"] == "alpha.deploy"
    flags = marshal.loads(built["jobs"]["alpha.deploy"])["flags"]
    assert [flag[0] for flag in flags] == ["env", "strategy"]


def test_a_job_named_like_a_verb_is_shadowed_as_on_the_command_line() -> None:
    # A hand-made index (sans-IO): a top-level job `init` and a job `initial`.
    index = empty_index("/ws/scripts")
    tree = index["tree"]
    for name in ("init", "initial"):
        tree["kids"][name] = {"kind": "job", "job": name, "kids": {}, "listing": []}
        tree["listing"].append((name, name, f"the {name} job"))
    assert complete(index, ["ini"]) == [
        ("init", "scaffold a job under scripts/", "segment"),
        ("initial", "the initial job", "segment")]
    assert inserts(index, "init", "") == ["bash", "sh", "python", "pwsh"]  # the verb's operand


def test_the_slash_form_completes_a_sources_jobs(tmp_path: Path) -> None:
    """`flwd tools/<TAB>` (the README's form for a source's jobs) offers `tools/JOB`, deeper
    words dotted; before a local group the slash completes to the job id's dots."""
    from tests.conftest import run_cli

    root = make_contract_workspace(tmp_path / "ws")
    extras = tmp_path / "extras"
    write_job(extras, "lint/go", LINT, {})
    write_job(extras, "fmt", TOOLS, {})
    data = tmp_path / "data"
    added = run_cli([":sources", "add", "--type", "local", "--name", "Tools", "--ref",
                     str(extras / "scripts"), "--allow-path", str(extras)], cwd=root,
                    data_dir=data)
    assert added.returncode == 0, added.stderr
    index = build_index(str(root / "scripts"), str(data))
    assert inserts(index, "Tools/") == ["Tools/fmt", "Tools/lint"]
    assert inserts(index, "tools/f") == ["Tools/fmt"]
    assert inserts(index, "tools/lint.") == ["Tools/lint.go"]
    assert inserts(index, "tools/lint/g") == ["Tools/lint.go"]
    assert inserts(index, ":plan", "tools/") == ["Tools/fmt", "Tools/lint"]
    assert inserts(index, "tools/lint.go", "--le") == ["--level"]
    assert inserts(index, "alpha/") == ["alpha.build", "alpha.deploy"]
    assert inserts(index, "alpha/d") == ["alpha.deploy"]
    assert inserts(index, "ship/") == []  # an alias is a whole word
    assert inserts(index, "nope/") == []
