"""The generated scripts in the real shells: bash, zsh and fish load what
``flwd completion SHELL`` prints and complete through the real ``flwd __complete``.

Two ways per shell: calling the registered completion function with the shell's
completion variables set (every candidate checked), and — for bash and zsh — a
real interactive shell on a pseudo-terminal where TAB is pressed and the edited
line is read back (what a person gets, word breaks and quoting included).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.complete._terminal import Terminal
from tests.complete.conftest import FLWD_SCRIPT
from tests.conftest import flwd_env, run_cli, write_job

DEMO = """\
job: {id: demo, name: Demo job, summary: Prints a greeting}
argspec:
  args:
    - {name: name, type: string, required: true}
    - {name: loud, type: boolean, default: false}
    - {name: api_key, type: string, format: secret}
"""
FAIL = """\
job: {summary: Exits with a non-zero status}
argspec:
  args:
    - {name: code, type: integer, default: 3}
"""
RELEASE = """\
job: {summary: Release a build}
argspec:
  args:
    - {name: env, type: string, enum: [prod, staging]}
    - {name: region, type: string, enum: [eu west, us-east]}
"""

#: What is typed → every candidate flwd offers (in the workspace of :func:`shell_ws`).
LISTS = [
    ("flwd de", ["demo"]),
    ("flwd examples f", ["fail"]),
    ("flwd examples.f", ["examples.fail"]),
    ("flwd hello", ["hello-demo"]),
    ("flwd demo --lo", ["--loud"]),
    ("flwd demo --api", ["--api_key", "--api_key-file"]),
    ("flwd release --env ", ["prod", "staging"]),
    ("flwd release --env s", ["staging"]),
    ("flwd release --env=", ["--env=prod", "--env=staging"]),
    ("flwd :pl", [":plan"]),
    ("flwd ", ["completion", "demo", "examples", "hello-demo", "init", "release", "tools"]),
    # The slash form of the README: a source's jobs, and a local job path (which
    # the command line takes with dots).
    ("flwd tools/", ["tools/hello"]),
    ("flwd :plan tools/h", ["tools/hello"]),
    ("flwd examples/f", ["examples.fail"]),
    ("flwd examples ", ["fail", "long"]),
    ("flwd nothing", []),
]

#: What is typed → the paths offered by the shell's own file completion (the workspace
#: holds token.txt and secrets/), after a secret's --NAME-file.
FILES = [
    ("flwd demo --api_key-file tok", ["token.txt"]),
    ("flwd demo --api-key-file=tok", ["--api-key-file=token.txt"]),
    ("flwd demo --api_key-file sec", ["secrets/"]),
]

#: Lines whose candidates rewrite the typed word (``/`` → ``.``), which fish filters out.
FISH_FILTERED = {"flwd examples/f"}

#: What is typed → the line after one TAB.
TABS = [
    ("flwd de", "flwd demo "),
    ("flwd examples f", "flwd examples fail "),
    ("flwd examples.f", "flwd examples.fail "),
    ("flwd hello", "flwd hello-demo "),
    ("flwd demo --lo", "flwd demo --loud "),
    ("flwd release --env s", "flwd release --env staging "),
    ("flwd release --env=p", "flwd release --env=prod "),
    ("flwd release --region eu", "flwd release --region eu\\ west "),
    ("flwd :pl", "flwd :plan "),
    ("flwd :plan rel", "flwd :plan release "),
    ("flwd tools/", "flwd tools/hello "),
    ("flwd examples/f", "flwd examples.fail "),
    ("flwd demo --api_key-f", "flwd demo --api_key-file "),
    ("flwd demo --api_key-file tok", "flwd demo --api_key-file token.txt "),
    ("flwd demo --api_key-file=tok", "flwd demo --api_key-file=token.txt "),
    ("flwd demo --api_key-file sec", "flwd demo --api_key-file secrets/"),
]


@pytest.fixture(scope="module")
def shell_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for the module: the job index is built once, then read from cache."""
    return tmp_path_factory.mktemp("shells")


@pytest.fixture(scope="module")
def workspace(shell_tmp: Path) -> Path:
    """Like the repository's scripts/ (demo, examples, the alias hello-demo), plus `release`
    and the local source `tools` (its job: `tools/hello`)."""
    root = shell_tmp / "ws"
    write_job(root, "demo", DEMO, {})
    write_job(root, "examples/fail", FAIL, {})
    write_job(root, "examples/long", "interpreter: bash\n", {})
    write_job(root, "release", RELEASE, {})
    (root / "token.txt").write_text("s3cr3t\n")  # for the paths after --api_key-file
    (root / "secrets").mkdir()
    (root / "scripts" / "flwd.yaml").write_text(
        "aliases:\n  - {from: demo, to: hello-demo, description: Shortcut for demo job}\n")
    extras = shell_tmp / "extras"
    write_job(extras, "hello", "job: {summary: Says hello}\ninterpreter: bash\n", {})
    added = run_cli([":sources", "add", "--type", "local", "--name", "tools",
                     "--ref", str(extras / "scripts"), "--allow-path", str(extras)],
                    cwd=root, data_dir=shell_tmp / "data")
    assert added.returncode == 0, added.stderr
    return root


@pytest.fixture(scope="module")
def shell_env(shell_tmp: Path) -> dict[str, str]:
    """The environment of the shells: ``flwd`` on PATH, a private HOME and data dir."""
    home = shell_tmp / "home"
    home.mkdir()
    return flwd_env(shell_tmp / "data",
                    PATH=f"{FLWD_SCRIPT.parent}{os.pathsep}{os.environ['PATH']}",
                    HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), TERM="xterm",
                    PS1="$ ", PROMPT="$ ")


@pytest.fixture(scope="module")
def scripts(shell_tmp: Path, shell_env: dict[str, str]) -> dict[str, Path]:
    """Each shell's script, as ``flwd completion SHELL`` prints it."""
    found = {}
    for shell in ("bash", "zsh", "fish", "powershell"):
        done = subprocess.run([str(FLWD_SCRIPT), "completion", shell], env=shell_env,
                              cwd=shell_tmp, capture_output=True, text=True, check=True)
        path = shell_tmp / f"flwd.{shell}"
        path.write_text(done.stdout)
        found[shell] = path
    return found


def run_shell(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- bash ----------------------------------------------------------------------------------


def bash_words(line: str) -> tuple[list[str], str]:
    """COMP_WORDS as bash makes them (``:`` and ``=`` are word breaks) and ``$2``, the
    text readline replaces."""
    words: list[str] = []
    for chunk in line.split(" "):
        words += re.findall(r"[:=]|[^:=]+", chunk) or [""]
    replaced = "" if words[-1] in (":", "=") else words[-1]
    return words, replaced


@pytest.mark.parametrize(("line", "expected"), LISTS + FILES)
def test_bash_function(line: str, expected: list[str], scripts: dict[str, Path],
                       shell_env: dict[str, str], workspace: Path) -> None:
    words, replaced = bash_words(line)
    program = f"""
        source {shlex.quote(str(scripts["bash"]))}
        spec=$(complete -p flwd)
        function=${{spec#*-F }}; function=${{function%% *}}
        COMP_WORDS=({" ".join(shlex.quote(word) for word in words)})
        COMP_CWORD={len(words) - 1}
        COMP_LINE={shlex.quote(line)}
        COMP_POINT=${{#COMP_LINE}}
        "$function" flwd {shlex.quote(replaced)} {shlex.quote(words[-2])}
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    output = run_shell(["bash", "--norc", "--noprofile", "-c", program], shell_env, workspace)
    # COMPREPLY holds what replaces readline's word: after a ':' or '=' break, the rest.
    kept = line.split(" ")[-1][: len(line.split(" ")[-1]) - len(replaced)]
    if (line, expected) in FILES:  # readline adds a directory's '/' itself (-o filenames)
        expected = [path.rstrip("/") for path in expected]
    assert [kept + reply for reply in output.splitlines() if reply] == expected


# -- zsh -----------------------------------------------------------------------------------

ZSH_COMPADD = r"""
compadd() {  # prints what the script offers instead of offering it
    local name
    while [[ $1 != -- ]]; do
        [[ $1 == -d ]] && { name=$2; shift; }
        shift
    done
    shift
    print -rl -- "$@"
    print -r -- "--- displays"
    print -rl -- "${(@P)name}"
}
"""


@pytest.mark.parametrize(("line", "expected"), LISTS)
def test_zsh_function(line: str, expected: list[str], scripts: dict[str, Path],
                      shell_env: dict[str, str], workspace: Path) -> None:
    words = line.split(" ")
    program = f"""
        autoload -U compinit && compinit -u -D
        source {shlex.quote(str(scripts["zsh"]))}
        {ZSH_COMPADD}
        words=({" ".join(shlex.quote(word) for word in words)})
        CURRENT={len(words)}
        PREFIX={shlex.quote(words[-1])}
        SUFFIX=
        $_comps[flwd]
        print -r -- "--- status $?"
    """
    output = run_shell(["zsh", "-f", "-c", program], shell_env, workspace)
    offered, _, rest = output.partition("--- displays\n")
    if not expected:
        assert offered.strip() == "--- status 1"
        return
    assert offered.splitlines() == expected
    displays = rest.splitlines()[:-1]
    assert rest.splitlines()[-1] == "--- status 0"
    assert len(displays) == len(expected)
    if line == "flwd de":
        assert displays == ["demo  -- Prints a greeting"]
    if line == "flwd hello":
        assert displays == ["hello-demo (alias -> demo, Shortcut for demo job)"]


# -- fish ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), LISTS + FILES)
def test_fish(line: str, expected: list[str], scripts: dict[str, Path],
              shell_env: dict[str, str], workspace: Path) -> None:
    command = f"source {shlex.quote(str(scripts['fish']))}; complete -C {shlex.quote(line)}"
    output = run_shell(["fish", "--no-config", "-c", command], shell_env, workspace)
    rows = [row.split("\t") for row in output.splitlines()]
    if line in FISH_FILTERED:
        expected = []  # fish drops a candidate that does not match the typed word
    assert [row[0] for row in rows] == expected
    described = {row[0]: row[1] for row in rows if len(row) > 1}
    if line == "flwd de":
        assert described == {"demo": "Prints a greeting"}
    if line == "flwd hello":
        assert described == {"hello-demo": "alias -> demo, Shortcut for demo job"}


# -- a real TAB ----------------------------------------------------------------------------

#: Commands that load the script and bind Ctrl-T to print the line being edited.
INTERACTIVE = {
    "bash": (["bash", "--norc", "--noprofile", "-i"],
             'source {script}; bind -x \'"\\C-t": printf "LINE=[%s]\\n" "$READLINE_LINE"\''),
    "zsh": (["zsh", "-f", "-i"],
            "autoload -U compinit && compinit -u -D; source {script}; "
            '_flwd_line() {{ print -r -- "LINE=[$BUFFER]" }}; zle -N _flwd_line; '
            "bindkey '^T' _flwd_line"),
}


@pytest.mark.parametrize("shell", sorted(INTERACTIVE))
def test_tab_in_an_interactive_shell(shell: str, scripts: dict[str, Path],
                                     shell_env: dict[str, str], workspace: Path) -> None:
    argv, setup = INTERACTIVE[shell]
    terminal = Terminal(argv, env=shell_env, cwd=workspace)
    try:
        terminal.send(setup.format(script=shlex.quote(str(scripts[shell]))) + "; echo RE''ADY\n")
        terminal.expect(r"READY\r?\n")
        for typed, expected in TABS:
            # Keys are read in order: Ctrl-T runs once the completion of TAB is done.
            terminal.send(f"{typed}\t\x14")
            line = terminal.expect(r"LINE=\[([^\]\r\n]*)\]").group(1).decode()
            assert line == expected, typed
            terminal.send("\x15")  # clear the line
    finally:
        terminal.close()


# -- PowerShell ----------------------------------------------------------------------------


def test_powershell_script_calls_the_protocol(scripts: dict[str, Path]) -> None:
    text = scripts["powershell"].read_text()
    assert "Register-ArgumentCompleter -Native -CommandName 'flwd'" in text
    assert "& flwd @arguments" in text and "'__complete'" in text
    assert "ConvertFrom-Json" in text and "CompletionResult]::new(" in text
    assert "$candidate.insert" in text and "$candidate.display" in text


@pytest.mark.skipif(shutil.which("pwsh") is None, reason="PowerShell (pwsh) is not installed")
def test_powershell(scripts: dict[str, Path], shell_env: dict[str, str],
                    workspace: Path) -> None:  # pragma: no cover - no pwsh on CI
    command = (f". {scripts['powershell']}; "
               "(TabExpansion2 -inputScript 'flwd de' -cursorColumn 7).CompletionMatches | "
               "ForEach-Object { $_.CompletionText }")
    output = run_shell(["pwsh", "-NoProfile", "-Command", command], shell_env, workspace)
    assert output.split() == ["demo"]
