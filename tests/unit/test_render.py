"""Human renderings: tables aligned on visible width, plan previews, run lists, colour rules."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from flwd.cli._init import scaffold
from flwd.cli._render import Style, duration, render_plan, render_runs, table, use_color
from flwd.events import RunRow
from flwd.jobs import bind_cli, discover, parse_cli_tokens
from flwd.plan import build_plan

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def visible(text: str) -> str:
    return ANSI.sub("", text)


def column_starts(line: str, cells: list[str]) -> list[int]:
    starts, position = [], 0
    for cell in cells:
        position = line.index(cell, position)
        starts.append(position)
        position += len(cell)
    return starts


# -- table -------------------------------------------------------------------------------------


def test_table_pads_to_the_widest_cell_plus_two_spaces():
    out = table(["ID", "NAME", "SUMMARY"], [["a", "Alpha job", "first"], ["bbbb", "B", "second"]])
    assert out.split("\n") == [
        "ID    NAME       SUMMARY",
        "a     Alpha job  first",
        "bbbb  B          second",
    ]


def test_table_without_rows_is_the_header():
    assert table(["A", "B"], []) == "A  B"


def test_table_strips_trailing_blanks_of_empty_last_cells():
    out = table(["A", "B", ""], [["x", "y", ""], ["long", "", ""]])
    assert out.split("\n") == ["A     B", "x     y", "long"]


def test_coloured_cells_are_aligned_on_visible_width():
    style = Style(True)
    rows = [
        ["run-01", style.status("completed"), "3.20s"],
        ["run-0002", style.status("failed"), "1m05s"],
        ["r", style.status("running"), "running"],
        ["run-x", "queued", "-"],
    ]
    out = table(["RUN", "STATUS", "DURATION"], rows)
    assert "\x1b[32mcompleted\x1b[0m" in out
    assert "\x1b[31mfailed\x1b[0m" in out
    lines = [visible(line) for line in out.split("\n")]
    assert lines == [
        "RUN       STATUS     DURATION",
        "run-01    completed  3.20s",
        "run-0002  failed     1m05s",
        "r         running    running",
        "run-x     queued     -",
    ]
    starts = {tuple(column_starts(line, line.split())) for line in lines}
    assert starts == {(0, 10, 21)}


def test_coloured_header_and_last_column():
    style = Style(True)
    out = table([style.bold("A"), style.bold("B")], [["xyz", style.red("bad")]])
    assert [visible(line) for line in out.split("\n")] == ["A    B", "xyz  bad"]
    assert out.split("\n")[1].endswith("\x1b[31mbad\x1b[0m")


# -- style and colour rules -----------------------------------------------------------------------


def test_style_disabled_is_plain_text():
    style = Style(False)
    for method in (style.bold, style.dim, style.red, style.green, style.yellow, style.status):
        assert method("failed") == "failed"


def test_status_colours():
    style = Style(True)
    assert style.status("completed") == "\x1b[32mcompleted\x1b[0m"
    assert style.status("failed") == "\x1b[31mfailed\x1b[0m"
    assert style.status("canceled") == "\x1b[33mcanceled\x1b[0m"
    assert style.status("interrupted") == "\x1b[33minterrupted\x1b[0m"
    assert style.status("running") == "\x1b[1mrunning\x1b[0m"
    assert style.status("queued") == "queued"


@pytest.mark.parametrize("text", ["a\nb", "a\n", "\nb", "one\n\nthree"])
def test_a_colour_is_reset_before_every_newline(text: str) -> None:
    style = Style(True)
    for method, code in ((style.red, "31"), (style.yellow, "33"), (style.bold, "1")):
        coloured = method(text)
        assert coloured.split("\n") == [f"\x1b[{code}m{line}\x1b[0m" if line else ""
                                        for line in text.split("\n")]


class FakeStream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("tty", "env", "expected"),
    [
        (True, {}, True),
        (False, {}, False),
        (True, {"NO_COLOR": "1"}, False),
        (True, {"NO_COLOR": ""}, True),  # no-color.org: only a non-empty value disables
        (True, {"TERM": "dumb"}, False),
        (True, {"TERM": "xterm-256color"}, True),
    ],
)
def test_use_color(monkeypatch, tty, env, expected):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert use_color(FakeStream(tty)) is expected


# -- plans ----------------------------------------------------------------------------------------------


SAMPLE_PLAN: dict[str, Any] = {
    "job_id": "demo",
    "name": "Demo",
    "summary": "Greets people",
    "effective_argspec": {"args": [
        {"name": "name", "type": "string", "required": True},
        {"name": "secret_token", "type": "string", "format": "secret"},
        {"name": "api_key", "type": "string", "secret": True},
        {"name": "tags", "type": "array"},
        {"name": "loud", "type": "boolean"},
        {"name": "meta", "type": "object"},
        {"name": "count", "type": "integer"},
    ]},
    "executor_preview": {"executor": "proc", "interpreter": "bash"},
    "steps": [
        {"id": "fetch", "script": "scripts/demo/fetch.sh", "command": "bash scripts/demo/fetch.sh"},
        {"id": "build", "script": "scripts/demo/build.sh", "command": "bash scripts/demo/build.sh",
         "needs": ["fetch", "lint"]},
    ],
    "resolved_args": {"name": "alice", "secret_token": "[secret]", "api_key": "[secret]",
                      "tags": ["a", "b"], "loud": False, "meta": {"k": "v", "n": 2}},
    "security_profile": "permissive",
    "policy_findings": [{"code": "policy.override.allowed", "level": "info",
                         "message": "environment inheritance allowed by policy"}],
    "timeout_seconds": 90.0,
    "error_handling": {"policy": "retry", "retries": 2, "retry_backoff": 1.0},
    "provenance": {"source": {"name": "workspace", "type": "local", "ref": "scripts/demo"}},
}


def test_render_plan_plain():
    assert render_plan(SAMPLE_PLAN, Style(False)).split("\n") == [
        "Job:       demo  (Demo)",
        "Summary:   Greets people",
        "Source:    scripts/demo (local)",
        "Executor:  proc, interpreter bash",
        "Profile:   permissive",
        "Timeout:   90s",
        "On error:  retry (2 retries)",
        "Steps:",
        "  1. fetch: bash scripts/demo/fetch.sh",
        "  2. build: bash scripts/demo/build.sh  needs fetch, lint",
        "Args:",
        "  NAME          TYPE     VALUE",
        "  name          string   alice       required",
        "  secret_token  string   [secret]    secret",
        "  api_key       string   [secret]    secret",
        "  tags          array    [a, b]",
        "  loud          boolean  false",
        "  meta          object   {k=v, n=2}",
        "  count         integer  (unset)",
        "policy: environment inheritance allowed by policy",
    ]


def test_render_plan_coloured_has_the_same_visible_text():
    coloured = render_plan(SAMPLE_PLAN, Style(True))
    assert "\x1b[" in coloured
    assert visible(coloured) == render_plan(SAMPLE_PLAN, Style(False))


def test_render_plan_minimal():
    plan = {"job_id": "hello", "name": "hello", "security_profile": "secure",
            "error_handling": {"policy": "abort", "retries": 0}, "steps": [],
            "effective_argspec": {"args": []}, "resolved_args": {}}
    assert render_plan(plan, Style(False)).split("\n") == [
        "Job:       hello",
        "Executor:  proc",
        "Profile:   secure",
        "Steps:",
        "  (none)",
        "Args:",
        "  (none)",
    ]


def test_render_plan_continue_without_retries_and_fractional_timeout():
    plan = {"job_id": "j", "name": "j", "security_profile": "secure", "timeout_seconds": 1.5,
            "error_handling": {"policy": "continue", "retries": 0}}
    lines = render_plan(plan, Style(False)).split("\n")
    assert "Timeout:   1.5s" in lines
    assert "On error:  continue" in lines


def test_render_plan_of_a_real_plan(tmp_path: Path) -> None:
    root = tmp_path / "scripts"
    root.mkdir()
    scaffold(root, "bash", "tools/greet")
    job = discover(root).get("tools.greet")
    binding = bind_cli(job.config.args, parse_cli_tokens(job.config.args, ["--who", "Dana"],
                                                          job_id=job.id), job_id=job.id)
    plan = build_plan(job, binding, profile="secure", workspace=tmp_path, scripts_root=root)
    text = render_plan(plan.to_json(), Style(False))
    assert text.split("\n") == [
        "Job:       tools.greet  (Tools Greet)",
        "Summary:   Describe what this job does",
        "Source:    scripts/tools/greet (local)",
        "Executor:  proc, interpreter bash",
        "Profile:   secure",
        "Steps:",
        "  1. 100_main.sh: bash scripts/tools/greet/100_main.sh",
        "Args:",
        "  NAME  TYPE    VALUE",
        "  who   string  Dana",
    ]


def test_render_plan_of_a_job_with_nothing_to_run(tmp_path: Path) -> None:
    """No NNN_ script: zero steps, and the job's warning as a warning, not as policy."""
    root = tmp_path / "scripts"
    (root / "greet" / "config.d").mkdir(parents=True)
    (root / "greet" / "config.d" / "config.yaml").write_text("interpreter: bash\n")
    (root / "greet" / "run.sh").write_text("echo hi\n")
    job = discover(root).get("greet")
    binding = bind_cli(job.config.args, parse_cli_tokens(job.config.args, [], job_id=job.id),
                       job_id=job.id)
    plan = build_plan(job, binding, profile="secure", workspace=tmp_path, scripts_root=root)
    lines = render_plan(plan.to_json(), Style(False)).split("\n")
    assert lines[lines.index("Steps:") + 1] == "  (none)"
    assert lines[-1] == (
        "warning: job 'greet' has nothing to run (its runs complete with zero steps): run.sh "
        "is not named NNN_* (three digits and '_'), so it never runs; rename run.sh to "
        "100_run.sh")


# -- runs -------------------------------------------------------------------------------------------------


T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("started", "finished", "expected"),
    [
        (None, None, "-"),
        (T0, None, "running"),
        (T0, T0 + 1.234, "1.23s"),
        (T0, T0 + 59.994, "59.99s"),
        (T0, T0 + 65, "1m05s"),
        (T0, T0 + 3599, "59m59s"),
        (T0, T0 + 3723, "1h02m03s"),
    ],
)
def test_duration(started, finished, expected):
    run = RunRow(id="r", job_id="j", status="x", created_at=T0, started_at=started,
                 finished_at=finished)
    assert duration(run) == expected


def test_render_runs():
    runs = [
        RunRow(id="run-01B", job_id="hello.world", status="failed", created_at=T0 + 60,
               started_at=T0 + 60, finished_at=T0 + 62.5),
        RunRow(id="run-01A", job_id="j", status="queued", created_at=T0),
    ]
    assert render_runs([], Style(False)) == "(no runs yet)"
    plain = render_runs(runs, Style(False))
    assert plain.split("\n") == [
        "RUN      JOB          STATUS  CREATED               DURATION",
        "run-01B  hello.world  failed  2023-11-14T22:14:20Z  2.50s",
        "run-01A  j            queued  2023-11-14T22:13:20Z  -",
    ]
    assert visible(render_runs(runs, Style(True))) == plain
