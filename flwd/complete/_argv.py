"""flwd's global options in front of a command (``--scripts DIR``, ``--data-dir DIR``,
``--db URL``, ``--server URL``, ``--debug``), read without importing the CLI.

The completion fast path needs them twice: in front of ``__complete`` (where the
shell scripts put nothing, but a user may) and at the start of the completed
command line itself (``flwd --scripts ../other de<TAB>``). This is a lenient
mirror of ``flwd.cli._split_globals``: it never raises, it only stops.
"""

from __future__ import annotations

#: Global options that take a value, and those that do not.
VALUED_GLOBALS = ("--scripts", "--data-dir", "--db", "--server")
FLAG_GLOBALS = ("--debug",)


def split_globals(tokens: list[str]) -> tuple[dict[str, str], int, str | None]:
    """The leading global options of ``tokens``.

    Returns:
        ``(values, end, pending)``: the values given (``{"--scripts": "x"}``; the
        last one wins, like the CLI; ``--debug`` maps to ``""``), the index of the first token after them,
        and the option whose value is still missing at the end of ``tokens``
        (``["--scripts"]`` → ``"--scripts"``), else None.
    """
    values: dict[str, str] = {}
    index = 0
    while index < len(tokens):
        name, equals, value = tokens[index].partition("=")
        if name in VALUED_GLOBALS:
            if not equals:
                if index + 1 >= len(tokens):
                    return values, len(tokens), name
                index += 1
                value = tokens[index]
            values[name] = value
        elif tokens[index] in FLAG_GLOBALS:
            values[tokens[index]] = ""
        else:
            break
        index += 1
    return values, index, None
