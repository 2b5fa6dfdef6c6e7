"""Every marked example in docs/*.md, executed for real (see docs/README.md, "Examples are tested").

A fenced block runs when the line right above its opening fence is a marker::

    <!-- doctest -->                       run it
    <!-- doctest: server="--dev" -->       run it against a fresh `flwd :serve --dev`
    <!-- doctest: file=scripts/x/config.d/config.yaml -->   write it into the workspace
    <!-- doctest: skip="why it cannot run here" -->        illustrative (a reason is required)

Options (``shlex`` words, ``key=value`` or ``key``):

- ``file=PATH`` writes the block's text to PATH (relative to the workspace; ``~/`` is the
  example's own HOME); ``mode=0755`` sets its mode.
- ``server[=FLAGS]`` starts ``flwd :serve --bind 127.0.0.1:0 --log json --no-containers FLAGS``
  on the page's workspace and data dir (kept for the next blocks asking for the same flags)
  and replaces ``http://127.0.0.1:8080`` in the block with its URL.
- ``needs="jq sqlite3"`` skips the page when a tool is missing; ``podman`` prepares the test
  containers.conf and the local busybox image (tests/containers/conftest.py).
- ``env="K=V K2=V2"`` adds variables to the example's environment.

Block kinds: ``console`` blocks are sessions — ``$ command`` lines (continued by a trailing
``\\`` or a here-document), each followed by the output it must print (stdout and stderr
together, as a terminal shows them). Output lines are compared with runs of blanks collapsed
(column widths vary); ``...`` on a line of its own stands for any number of lines, inside a
line for any text. A command without output lines is not checked. A command that exits
non-zero must be followed by ``$ echo $?`` showing its status. ``bash``/``sh`` blocks run
as one script under ``set -eo pipefail`` and must succeed; ``python`` blocks run with the
project's interpreter. All blocks of a page share one workspace (a copy of scripts/), one
data dir and one HOME, in order, with ``flwd`` on PATH — like a reader following the page.

Pages in :data:`STRICT` must mark every block; every page must execute at least one.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Server, flwd_env
from tests.containers.conftest import podman_env  # noqa: F401 (a fixture; blocks marked podman)

DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
#: Pages whose every fenced block is executed, written to a file, or skipped with a reason.
STRICT = {"README.md", "getting-started.md", "jobs.md", "cli.md", "operations.md", "api.md"}
#: Pages allowed (for now, and saying why) to execute no example.
PENDING = {"README.md": "the index",
           "reliability.md": "written alongside the reliability suites, which run its commands"}
PLACEHOLDER_URL = "http://127.0.0.1:8080"
BIN = Path(sys.executable).parent

_MARKER = re.compile(r"^<!--\s*doctest(?::\s*(?P<options>.*?))?\s*-->\s*$")
_FENCE = re.compile(r"^(?P<fence>```+)(?P<info>[^`]*)$")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    options: dict[str, str] | None  # None: not marked

    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, with the doctest options of the line above."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        fence = match["fence"]
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].startswith(fence):
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence
        options = None
        if start > 0 and (marker := _MARKER.match(lines[start - 1])):
            options = {}
            for word in shlex.split(marker["options"] or ""):
                key, _, value = word.partition("=")
                options[key] = value
        info = match["info"].strip().split()
        blocks.append(Block(path.name, start + 1, info[0] if info else "",
                            "\n".join(body) + "\n", options))
    return blocks


# -- console sessions ---------------------------------------------------------------------


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)


def parse_session(text: str) -> list[Command]:
    """``$ command`` lines (with ``\\`` continuations and here-documents) and their output."""
    commands: list[Command] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.startswith("$ "):
            if not commands:
                raise AssertionError(f"output before the first '$ ' command: {line!r}")
            commands[-1].expected.append(line)
            continue
        command = [line[2:]]
        while command[-1].endswith("\\") and index < len(lines):
            command.append(lines[index])
            index += 1
        heredoc = re.search(r"<<-?\s*'?\"?(\w+)", "\n".join(command))
        if heredoc:
            while index < len(lines):
                command.append(lines[index])
                index += 1
                if command[-1].strip() == heredoc[1]:
                    break
        commands.append(Command("\n".join(command)))
    return commands


def _norm(line: str) -> str:
    return " ".join(line.split())


def _trim(lines: list[str]) -> list[str]:
    lines = list(lines)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _line_matches(expected: str, actual: str) -> bool:
    parts = [re.escape(part) for part in _norm(expected).split("...")]
    return re.fullmatch(".*?".join(parts), _norm(actual), flags=re.S) is not None


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Line-by-line match; an expected line ``...`` swallows any number of lines."""
    expected, actual = _trim(expected), _trim(actual)

    def match(e: int, a: int) -> bool:
        if e == len(expected):
            return a == len(actual)
        if expected[e].strip() == "...":
            return any(match(e + 1, k) for k in range(a, len(actual) + 1))
        return a < len(actual) and _line_matches(expected[e], actual[a]) and match(e + 1, a + 1)

    return match(0, 0)


_SEP = "@@doctest-{n}-rc="


def run_bash(argv: list[str], cwd: Path, env: dict[str, str], *, stdin: str = ""
             ) -> tuple[int, str]:
    """Run bash in a process group of its own; its stdout+stderr go to a file, so a background
    process left by an example can neither hang the test nor outlive it (the group is
    killed once bash exits)."""
    import signal
    import tempfile

    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=out,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            process.communicate(stdin, timeout=120)
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        out.seek(0)
        return process.returncode, out.read()


def run_session(block: Block, text: str, cwd: Path, env: dict[str, str]) -> None:
    commands = parse_session(text)
    assert commands, f"{block.where()}: a console block without '$ ' commands"
    script = ["exec 2>&1"]
    for n, command in enumerate(commands):
        script += [command.text, f"__rc=$?; printf '\\n{_SEP.format(n=n)}%d@@\\n' $__rc; "
                                 "(exit $__rc)"]
    _, output = run_bash(["bash", "--noprofile", "--norc"], cwd, env,
                         stdin="\n".join(script) + "\n")
    whole = output
    for n, command in enumerate(commands):
        head, sep, output = output.partition(_SEP.format(n=n))
        assert sep, (f"{block.where()}: the session stopped before its end at\n"
                     f"$ {command.text}\n{head}\n--- whole output\n{whole}")
        status_text, _, output = output.partition("@@\n")
        status = int(status_text)
        actual = head.splitlines()
        if command.expected and not output_matches(command.expected, actual):
            raise AssertionError(
                f"{block.where()}: $ {command.text}\n--- expected\n" + "\n".join(command.expected)
                + "\n--- actual\n" + "\n".join(_trim(actual)))
        following = commands[n + 1].text.strip() if n + 1 < len(commands) else ""
        if status != 0 and following != "echo $?":
            raise AssertionError(f"{block.where()}: $ {command.text}\nexited {status} "
                                 "(show it with '$ echo $?' if that is the point):\n" + head)


# -- a page -------------------------------------------------------------------------------


class Page:
    """What the blocks of one page share: workspace, data dir, HOME, environment, server."""

    def __init__(self, workspace: Path, data_dir: Path, home: Path, request: Any) -> None:
        self.workspace = workspace
        self.data_dir = data_dir
        self.home = home
        self.request = request
        self.server: Server | None = None
        self.server_flags: str | None = None
        self.extra_env: dict[str, str] = {}

    def env(self, block: Block) -> dict[str, str]:
        env = flwd_env(self.data_dir, HOME=str(self.home), **self.extra_env)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}"
        env.pop("VIRTUAL_ENV", None)
        for pair in shlex.split((block.options or {}).get("env", "")):
            key, _, value = pair.partition("=")
            env[key] = value
        return env

    def ensure_server(self, flags: str) -> Server:
        if self.server is not None and self.server_flags == flags:
            return self.server
        if self.server is not None:
            self.server.stop()
        factory = self.request.getfixturevalue("server_factory")
        self.server = factory(*shlex.split(flags))
        self.server_flags = flags
        return self.server

    def run(self, block: Block) -> None:
        options = block.options or {}
        text = block.text
        for tool in options.get("needs", "").split():
            if shutil.which(tool) is None:
                pytest.skip(f"{block.where()} needs {tool}, which is not installed")
        if "podman" in options:
            if shutil.which("podman") is None:
                pytest.skip(f"{block.where()} needs podman")
            self.extra_env.update(self.request.getfixturevalue("podman_env"))
        if "server" in options:
            server = self.ensure_server(options["server"])
            text = text.replace(PLACEHOLDER_URL, server.url)
        if "file" in options:
            target = options["file"]
            path = (self.home / target[2:]) if target.startswith("~/") else self.workspace / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if "mode" in options:
                path.chmod(int(options["mode"], 8))
            return
        env = self.env(block)
        if block.lang == "console":
            run_session(block, text, self.workspace, env)
        elif block.lang in ("bash", "sh"):
            status, output = run_bash(["bash", "--noprofile", "--norc", "-eo", "pipefail",
                                       "-c", text], self.workspace, env)
            assert status == 0, f"{block.where()} exited {status}:\n{output}"
        elif block.lang == "python":
            done = subprocess.run([sys.executable, "-c", text], cwd=self.workspace, env=env,
                                  capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, (f"{block.where()} failed:\n"
                                          f"{done.stdout}{done.stderr}")
        else:
            raise AssertionError(f"{block.where()}: cannot run a '{block.lang}' block; "
                                 "use file=PATH or skip=\"reason\"")


# -- tests ----------------------------------------------------------------------------------


def _runnable(block: Block) -> bool:
    return block.options is not None and "skip" not in block.options


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_page_examples_run_as_written(page: Path, workspace: Path, data_dir: Path,
                                      tmp_path: Path, request: pytest.FixtureRequest) -> None:
    blocks = parse_blocks(page)
    for block in blocks:
        if block.options is not None and "skip" in block.options:
            assert block.options["skip"].strip(), f"{block.where()}: skip needs a reason"
    runnable = [block for block in blocks if _runnable(block)]
    assert page.name in PENDING or any("file" not in block.options for block in runnable
                                           if block.options is not None), \
        f"docs/{page.name} executes no example: mark one with <!-- doctest -->"
    if page.name in STRICT:
        unmarked = [block.where() for block in blocks if block.options is None]
        assert not unmarked, f"unmarked blocks in a page tested in full: {unmarked}"
    home = tmp_path / "home"
    home.mkdir()
    state = Page(workspace, data_dir, home, request)
    for block in runnable:
        state.run(block)


def test_the_index_links_every_page() -> None:
    index = (DOCS / "README.md").read_text()
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", index))
    assert {page.name for page in PAGES} - {"README.md"} <= linked
    assert all((DOCS / name).exists() for name in linked)


def _unit(name: str) -> tuple[Block, configparser.ConfigParser]:
    [block] = [b for b in parse_blocks(DOCS / "operations.md")
               if (b.options or {}).get("file", "").endswith(name)]
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(block.text)
    return block, parser


def test_the_systemd_unit_starts_a_real_flwd_command(tmp_path: Path, data_dir: Path) -> None:
    """docs/operations.md's unit: valid for systemd (when systemd-analyze is here), and its
    ExecStart is a `flwd :serve` command line that flwd's own parser accepts."""
    block, unit = _unit("flwd.service")
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    words = shlex.split(unit["Service"]["ExecStart"].replace("%h", str(tmp_path)))
    assert Path(words[0]).name == "flwd" and ":serve" in words
    serve_flags = words[words.index(":serve") + 1:]
    # Every flag of the unit is one `flwd :serve --help` documents.
    done = subprocess.run([str(BIN / "flwd"), ":serve", "--help"], capture_output=True,
                          text=True, env=flwd_env(data_dir), check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    for word in serve_flags:
        if word.startswith("--"):
            assert word.split("=")[0] in done.stdout, f"{word} is not a flag of :serve"
    if shutil.which("systemd-analyze") is not None:
        path = tmp_path / "flwd.service"
        path.write_text(block.text.replace("%h/.local/bin/flwd", str(BIN / "flwd")))
        runtime = tmp_path / "run"
        runtime.mkdir(mode=0o700)
        verify = subprocess.run(["systemd-analyze", "verify", "--user", str(path)],
                                capture_output=True, text=True, check=False, timeout=60,
                                env={**os.environ, "HOME": str(tmp_path),
                                     "XDG_RUNTIME_DIR": str(runtime)})
        # Unknown keys and bad values are warnings naming the file; the status stays 0.
        problems = [line for line in verify.stderr.splitlines() if "flwd.service" in line]
        assert verify.returncode == 0, verify.stderr
        assert not problems, verify.stderr
