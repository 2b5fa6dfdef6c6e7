"""One help style for verbs and jobs.

A job's ``--help`` is plain text built by :func:`flwd.cli._render.help_text`: a lower-case
``usage:`` line, the description, then aligned two-column sections. The ``:verbs`` are
cyclopts commands; :class:`VerbHelp` renders their help panels the same way (cyclopts'
default boxes would make the two halves of one CLI look like two programs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cyclopts.help.formatters.plain import PlainFormatter

from ._render import table

if TYPE_CHECKING:
    from cyclopts.help import HelpEntry, HelpPanel
    from rich.console import Console, ConsoleOptions

#: cyclopts' type names → the words a job's help uses for a flag's value.
_METAVARS = {"STR": "VALUE", "STR...": "VALUE...", "INT": "N", "FLOAT": "N"}

#: cyclopts' panel titles → the section names a job's help uses.
_TITLES = {"Parameters": "Flags", "Arguments": "Arguments", "Commands": "Commands"}


class VerbHelp(PlainFormatter):
    """A cyclopts help formatter printing panels as aligned ``form  description`` rows."""

    def __call__(self, console: Console, options: ConsoleOptions, panel: HelpPanel) -> None:
        if not panel.entries:
            return
        rows = [["  " + _form(entry, panel.format), _describe(entry, console)]
                for entry in panel.entries]
        title = _to_plain_text(panel.title, console).strip() if panel.title else ""
        title = _TITLES.get(title, title)
        body = table(["", ""], rows).split("\n", 1)[1]
        self._print_plain(console, f"{title}:\n{body}\n")

    def render_usage(self, console: Console, options: ConsoleOptions, usage: Any) -> None:
        text = _to_plain_text(usage, console).strip() if usage else ""
        if text:
            text = text.removeprefix("Usage:").strip().replace("[OPTIONS]", "[FLAGS]")
            self._print_plain(console, f"usage: {text}\n")

    def render_description(self, console: Console, options: ConsoleOptions,
                           description: Any) -> None:
        text = _to_plain_text(description, console).strip() if description else ""
        if text:
            paragraphs = [" ".join(part.split()) for part in text.split("\n\n")]
            self._print_plain(console, "\n\n".join(paragraphs) + "\n")

    def _print_plain(self, console: Console, text: str) -> None:
        # Rows are long lines; a terminal wraps them (rich's own wrapping would break
        # the columns at 80 characters, and in the middle of a pipe's output).
        console.print(text, highlight=False, markup=False, soft_wrap=True)


def _to_plain_text(renderable: Any, console: Console) -> str:
    """A help text as plain text: a ``str`` as is, rich ``Text`` by its ``plain``, anything
    else (markdown, panels) rendered by the console without styles."""
    if isinstance(renderable, str):
        return renderable
    plain = getattr(renderable, "plain", None)
    if isinstance(plain, str):
        return plain
    with console.capture() as captured:
        console.print(renderable, highlight=False, markup=False, soft_wrap=True)
    return captured.get()


def _form(entry: HelpEntry, kind: str) -> str:
    if kind == "command":
        return ", ".join(entry.positive_names + entry.positive_shorts)
    if entry.positional_label and not entry.positive_names:
        return entry.positional_label
    names = [*entry.positive_names, *entry.positive_shorts]
    form = ", ".join(names)
    if entry.metavar:
        form += f" {_METAVARS.get(entry.metavar, entry.metavar)}"
    negatives = [*entry.negative_names, *entry.negative_shorts]
    return ", ".join([form, *negatives])


def _describe(entry: HelpEntry, console: Console) -> str:
    parts = [" ".join(_to_plain_text(entry.description, console).split())]
    if entry.choices:
        parts.append(f"(one of: {', '.join(entry.choices)})")
    if entry.required:
        parts.append("(required)")
    elif entry.default is not None and entry.default not in ("False", "None", ""):
        parts.append(f"(default: {entry.default})")
    return " ".join(part for part in parts if part)
