"""The bounded YAML loader (flwd.jobs._yaml) and the bounded messages of what uses it.

Every hostile document here is refused by what it *is* (its expansion, its depth,
its size), measured before anything walks it: on the code before the loader the
billion-laughs cases took minutes and gigabytes (issue 11 item 3), so these
tests would not finish, rather than fail on a clock.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flwd.errors import AddonManifestInvalid, ConfigInvalid, ConfigTooLarge, PolicyBundleInvalid
from flwd.jobs import (
    CONFIG_LIMITS,
    YamlLimits,
    YamlRefused,
    clip,
    discover,
    load_yaml,
    parse_config,
    read_yaml_file,
)
from flwd.jobs._argspec import plain, show
from flwd.policy import load_bundle, parse_bundle
from flwd.sources import parse_manifest

PATH = "scripts/bomb/config.d/config.yaml"


def laughs(levels: int = 9, width: int = 9, *, under: str = "") -> str:
    """The billion-laughs document: each level a list of ``width`` aliases of the last."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    if under:
        lines.append(under.replace("BOMB", f"*l{levels - 1}"))
    return "\n".join(lines) + "\n"


def refused(text: str, limits: YamlLimits = CONFIG_LIMITS) -> YamlRefused:
    with pytest.raises(YamlRefused) as raised:
        load_yaml(text, limits)
    assert len(str(raised.value)) < 300 and "\n" not in str(raised.value)
    return raised.value


# -- expansion -----------------------------------------------------------------------------


def test_billion_laughs_is_refused_by_its_expanded_node_count() -> None:
    assert len(laughs()) < 700
    error = refused(laughs())
    assert error.limit
    assert str(error) == (
        "the document expands to more than 100,000 nodes (anchors and aliases included)"
    )


def test_a_small_expansion_within_the_budget_loads() -> None:
    data = load_yaml(laughs(levels=3, width=3))
    assert data["l2"] == [[["lol"] * 3] * 3] * 3


def test_the_budget_is_counted_exactly() -> None:
    # l1 holds 10 nodes expanded (itself and 9 scalars), the mapping around it 1 + 2
    # keys + the values: a budget one short of the total refuses, the total loads.
    text = "l0: &l0 [a, b, c]\nl1: [*l0, *l0, *l0]\n"
    total = 1 + (1 + 4) + (1 + 1 + 3 * 4)  # mapping, l0 entry, l1 entry
    assert load_yaml(text, YamlLimits(max_nodes=total))["l1"] == [["a", "b", "c"]] * 3
    assert refused(text, YamlLimits(max_nodes=total - 1)).limit


def test_a_huge_flat_list_is_refused_like_an_aliased_one() -> None:
    text = "[" + ",".join(["1"] * (CONFIG_LIMITS.max_nodes + 1)) + "]"
    assert len(text) < CONFIG_LIMITS.max_bytes  # under the size limit: the node budget says no
    assert "100,000 nodes" in str(refused(text))


def test_one_long_string_aliased_many_times_is_refused_by_its_text() -> None:
    text = f"s: &s {'x' * 60_000}\nl: [{', '.join(['*s'] * 20)}]\n"
    error = refused(text)
    assert error.limit and "KiB of text" in str(error)


def test_merge_keys_count_as_the_aliases_they_are() -> None:
    lines = ["m0: &m0 {a: 1, b: 2, c: 3}"]
    for level in range(1, 12):
        refs = ", ".join(f"k{n}: *m{level - 1}" for n in range(8))
        lines.append(f"m{level}: &m{level} {{<<: *m{level - 1}, {refs}}}")
    error = refused("\n".join(lines) + "\n")
    assert error.limit and "nodes" in str(error)


def test_merge_keys_still_work() -> None:
    data = load_yaml("base: &b {x: 1, y: 2}\njob: {<<: *b, y: 3, z: 4}\n")
    assert data["job"] == {"x": 1, "y": 3, "z": 4}


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: {c: *a}}\n",
                                  "a: &a {<<: *a}\n"])
def test_recursive_aliases_are_refused(text: str) -> None:
    error = refused(text)
    assert error.limit and "recursive alias" in str(error)


# -- depth -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "[" * 65 + "]" * 65,                                        # flow
    "".join(" " * level + "-\n" for level in range(65)),        # block
    "{a: " * 65 + "1" + "}" * 65,
    "[" * 5000 + "]" * 5000,                                    # beyond libyaml's own limit
])
def test_nesting_deeper_than_the_limit_is_refused(text: str) -> None:
    error = refused(text)
    assert error.limit or "depth" in str(error)


def test_depth_through_aliases_is_the_expanded_depth() -> None:
    # Each anchor is shallow; the value they stand for is 8 * 10 levels deep.
    lines = ["d0: &d0 [[[[[[[[[[x]]]]]]]]]]"]
    lines += [f"d{n}: &d{n} [[[[[[[[[[*d{n - 1}]]]]]]]]]]" for n in range(1, 8)]
    error = refused("\n".join(lines) + "\n")
    assert "nested more than 64 levels deep" in str(error)


def test_nesting_at_the_limit_loads() -> None:
    text = "[" * 63 + "1" + "]" * 63  # 63 sequences and a scalar: 64 levels
    assert load_yaml(text) is not None


# -- size --------------------------------------------------------------------------------------


def test_a_big_text_is_refused_before_parsing() -> None:
    error = refused("x: '" + "y" * CONFIG_LIMITS.max_bytes + "'\n")
    assert error.limit and "larger than 256 KiB" in str(error)
    # Counted in UTF-8 bytes, not in characters.
    error = refused("x: " + "é" * (CONFIG_LIMITS.max_bytes // 2 + 1))
    assert error.limit


def test_a_huge_file_is_read_no_further_than_the_limit(tmp_path: Path) -> None:
    # 64 GiB, sparse: reading it whole would exhaust the machine.
    path = tmp_path / "config.yaml"
    with path.open("wb") as file:
        file.truncate(64 << 30)
    with pytest.raises(YamlRefused, match="larger than 256 KiB") as raised:
        read_yaml_file(path)
    assert raised.value.limit
    path.write_text("a: 1\n")
    assert load_yaml(read_yaml_file(path)) == {"a": 1}


def test_a_fifo_in_place_of_a_file_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "flwd.yaml"
    os.mkfifo(fifo)
    assert read_yaml_file(fifo) == ""  # no writer: end of file at once, never a block


# -- messages -------------------------------------------------------------------------------


def test_syntax_errors_name_the_line_and_stay_short() -> None:
    error = refused("a: 1\nb: [\n")
    assert not error.limit
    assert str(error).startswith("invalid YAML: ") and "(line 3, column 1)" in str(error)
    long_alias = refused("a: *" + "n" * 100_000 + "\n")
    assert not long_alias.limit


def test_impossible_values_are_syntax_errors_not_crashes() -> None:
    assert "digits" in str(refused("x: " + "1" * 5000 + "\n"))
    assert not refused("d: 2024-13-45\n").limit
    assert not refused("? [a]\n: 1\n").limit  # an unhashable key


def test_clip_keeps_one_short_line() -> None:
    assert clip("short") == "short"
    assert clip("a\nb\r\nc") == "a b c"
    assert clip("x" * 1000) == "x" * 79 + "…"
    assert len(clip("x\n" * 10_000, 200)) == 200


def test_show_renders_only_what_it_shows() -> None:
    big = list(range(2_000_000))
    assert show(big) == plain(big[:30])[:79] + "…"
    assert show("x" * 10**7) == "'" + "x" * 78 + "…"
    nested: list[object] = []
    nested.append(nested)
    assert show(nested) == "list"


# -- the loaders that use it -----------------------------------------------------------------


def test_a_config_bomb_is_one_short_config_too_large_error() -> None:
    # On the old code pydantic's "must be a string (got …)" serialised the
    # whole expansion: 49 s and 5.5 GB for this file.
    with pytest.raises(ConfigTooLarge) as raised:
        parse_config(laughs(under="job: {name: BOMB}"), path=PATH)
    error = raised.value
    assert error.problem.code == "config.too.large" and error.problem.status == 422
    assert error.detail == (f"{PATH}: the document expands to more than 100,000 nodes "
                            "(anchors and aliases included)")
    assert error.extensions["path"] == PATH


def test_validation_messages_quote_values_clipped() -> None:
    # Within the budget, a value a message quotes is still cut (pydantic's input,
    # an invalid step id, an unknown key).
    text = (f"job: {{name: [{', '.join(['x' * 50] * 1000)}]}}\n"
            f"composition: steps\nsteps: [{{id: '{'!' * 5000}', script: a.sh}}]\n")
    with pytest.raises(ConfigInvalid) as raised:
        parse_config(text, path=PATH)
    assert len(raised.value.detail) < 300
    assert [(e["arg"], len(e["message"]) < 150, e["message"][-2:])
            for e in raised.value.errors] == [("job.name", True, "…)"),
                                              ("steps[0].id", True, "')")]
    parsed = parse_config(f"? {'k' * 5000}\n: 1\n" * 2 + "interpreter: bash\n", path=PATH)
    assert [len(warning) < 150 for warning in parsed.warnings] == [True]


def test_discovery_reports_the_bomb_and_keeps_the_other_jobs(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    for name, text in {"good": "job: {name: Good}\n", "bomb": laughs(under="env: {A: BOMB}"),
                       "big": "x: 1\n" + "#" * CONFIG_LIMITS.max_bytes + "\n"}.items():
        (scripts / name / "config.d").mkdir(parents=True)
        (scripts / name / "config.d" / "config.yaml").write_text(text)
        (scripts / name / "100_main.sh").write_text("true\n")
    catalog = discover(scripts, display_base=tmp_path)
    assert [job.id for job in catalog.jobs] == ["good"]
    assert [issue.to_json() for issue in catalog.errors] == [
        {"path": "scripts/big/config.d/config.yaml", "code": "config.too.large",
         "error": f"the file is larger than 256 KiB ({CONFIG_LIMITS.max_bytes + 1} bytes or "
                  "more)"},
        {"path": "scripts/bomb/config.d/config.yaml", "code": "config.too.large",
         "error": "the document expands to more than 100,000 nodes (anchors and aliases "
                  "included)"},
    ]


def test_aliases_file_bomb_is_a_discovery_error(tmp_path: Path) -> None:
    from flwd.jobs import load_aliases

    (tmp_path / "flwd.yaml").write_text(laughs(under="aliases: BOMB"))
    index = load_aliases(tmp_path, discover(tmp_path / "nothing"))
    assert [(issue.code, issue.message) for issue in index.errors] == [
        ("config.too.large",
         "the document expands to more than 100,000 nodes (anchors and aliases included)")]


def test_policy_bundle_bomb_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyBundleInvalid, match="is refused: the document expands"):
        parse_bundle(laughs(under="allowed_registries: BOMB"), origin="bundle.yaml")
    path = tmp_path / "flwd.policy.yaml"
    path.write_text("verify_signatures: " + "x" * CONFIG_LIMITS.max_bytes)
    with pytest.raises(PolicyBundleInvalid, match="larger than 256 KiB"):
        load_bundle(path)
    with pytest.raises(PolicyBundleInvalid) as raised:
        parse_bundle("verify_signatures: " + "v" * 100_000, origin="b.yaml")
    assert len(raised.value.detail) < 400


def test_manifest_bomb_is_refused() -> None:
    with pytest.raises(AddonManifestInvalid) as raised:
        parse_manifest(laughs(under="jobs: BOMB").encode())
    assert raised.value.errors == [{
        "arg": "manifest", "message": "the manifest is refused: the document expands to more "
                                      "than 100,000 nodes (anchors and aliases included)"}]
    with pytest.raises(AddonManifestInvalid) as raised:
        parse_manifest(("apiVersion: " + "v" * 200_000).encode())
    assert all(len(error["message"]) <= 300 for error in raised.value.errors)
