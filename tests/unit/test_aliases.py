"""Alias declarations: every diagnostic code, resolution, and the :jobs JSON shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from flwd.errors import (
    AliasCollision,
    AliasNameConflict,
    AliasNameInvalid,
    AliasReserved,
    AliasTargetInvalid,
)
from flwd.jobs import discover, index_aliases, load_aliases


@pytest.fixture
def catalog(tmp_path: Path):
    for rel in ("demo", "alpha/deploy", "alpha/build"):
        config = tmp_path / "scripts" / rel / "config.d" / "config.yaml"
        config.parent.mkdir(parents=True)
        config.write_text("interpreter: bash\n")
        (config.parent.parent / "100_main.sh").write_text("true\n")
    return discover(tmp_path / "scripts")


def entry(source: str, name: str, description: str | None = None) -> dict:
    out = {"from": source, "to": name}
    if description is not None:
        out["description"] = description
    return out


def test_valid_alias_resolves_to_its_target(catalog) -> None:
    index = index_aliases([entry("alpha/deploy", "ship", "Deploy it")], catalog)
    alias = index.find("SHIP")
    assert alias is not None and alias.target_id == "alpha.deploy"
    assert alias.target_path == "alpha/deploy" and alias.description == "Deploy it"
    assert index.find("unknown") is None
    assert index.to_json()["aliases"] == [{"name": "ship", "target_path": "alpha/deploy",
                                           "target_id": "alpha.deploy",
                                           "description": "Deploy it"}]


@pytest.mark.parametrize("name", [":plan", ":mine", "completion", "init", "help"])
def test_reserved_names(catalog, name: str) -> None:
    index = index_aliases([entry("demo", name)], catalog)
    with pytest.raises(AliasReserved):
        index.find(name)
    assert index.to_json()["alias_invalid"][name.casefold()]["code"] == "alias.reserved"


def test_reserved_verbs_can_be_extended(catalog) -> None:
    index = index_aliases([entry("demo", "serve")], catalog, verbs=["serve"])
    assert index.to_json()["alias_invalid"]["serve"]["code"] == "alias.reserved"


@pytest.mark.parametrize("name", ["a/b", "with space", "-dash"])
def test_invalid_names(catalog, name: str) -> None:
    index = index_aliases([entry("demo", name)], catalog)
    with pytest.raises(AliasNameInvalid):
        index.find(name)


def test_name_conflicting_with_a_job(catalog) -> None:
    index = index_aliases([entry("demo", "alpha.build")], catalog)
    with pytest.raises(AliasNameConflict) as info:
        index.find("alpha.build")
    assert info.value.problem.code == "alias.name.conflict"


def test_target_that_is_not_a_job(catalog) -> None:
    index = index_aliases([entry("nope/job", "go"), entry("ship", "again")], catalog)
    with pytest.raises(AliasTargetInvalid):
        index.find("go")
    with pytest.raises(AliasTargetInvalid):
        index.find("again")  # aliases of aliases are not jobs


def test_collision_lists_every_contender(catalog) -> None:
    index = index_aliases([entry("demo", "x"), entry("alpha/build", "X"),
                           entry("demo", "x")], catalog)
    with pytest.raises(AliasCollision) as info:
        index.find("x")
    assert info.value.problem.status == 409
    targets = {c["target_id"] for c in info.value.extensions["contenders"]}
    assert targets == {"demo", "alpha.build"}
    assert set(index.to_json()["alias_collisions"]) == {"x"}


def test_duplicate_declaration_of_the_same_target_is_fine(catalog) -> None:
    index = index_aliases([entry("demo", "d"), entry("demo", "d")], catalog)
    assert index.find("d") is not None


def test_target_forms_are_normalised(catalog) -> None:
    index = index_aliases([entry(" alpha\\deploy ", "a1"), entry("alpha:deploy", "a2"),
                           entry("alpha.deploy", "a3")], catalog)
    assert {index.find(n).target_id for n in ("a1", "a2", "a3")} == {"alpha.deploy"}


def test_flwd_yaml_problems_are_reported_not_raised(tmp_path: Path, catalog) -> None:
    root = tmp_path / "scripts"
    (root / "flwd.yaml").write_text("aliases:\n  - from: demo\n  - to: x\n  - {from: demo, to: ok}\n"
                                    "extra: 1\n")
    index = load_aliases(root, catalog)
    assert index.find("ok") is not None
    messages = [issue.message for issue in index.errors]
    assert sum("needs 'from'" in m for m in messages) == 2
    assert any("unknown key 'extra'" in m for m in messages)
    (root / "flwd.yaml").write_text("aliases: [unclosed\n")
    broken = load_aliases(root, catalog)
    assert broken.aliases == {} and "invalid YAML" in broken.errors[0].message


def test_missing_file_means_no_aliases(tmp_path: Path, catalog) -> None:
    index = load_aliases(tmp_path / "scripts", catalog)
    assert index.aliases == {} and index.errors == []


def test_an_unusable_alias_is_also_an_error_of_its_file(tmp_path: Path, catalog) -> None:
    # The reference lists a bad alias target in `errors` as well as in `alias_invalid`
    # (its §14.3); so does flwd, for every unusable declaration, once per declaration.
    root = tmp_path / "scripts"
    (root / "flwd.yaml").write_text("aliases:\n  - {from: nope/job, to: lost}\n"
                                    "  - {from: demo, to: ':x'}\n  - {from: demo, to: ok}\n"
                                    "  - {from: demo, to: twice}\n"
                                    "  - {from: alpha/build, to: twice}\n")
    index = load_aliases(root, catalog, display_base=tmp_path)
    assert set(index.invalid) == {"lost", ":x"}
    assert index.errors == []  # the file itself is fine
    issues = [issue.to_json() for issue in index.issues()]
    assert [(i["path"], i["code"]) for i in issues] == [
        ("scripts/flwd.yaml", "alias.target.invalid"), ("scripts/flwd.yaml", "alias.reserved")]
    assert issues[0]["error"].startswith("alias 'lost' targets 'nope/job', which is not a job")
    # A collision is said in alias_collisions only, as the reference does.
    assert set(index.collisions) == {"twice"}
