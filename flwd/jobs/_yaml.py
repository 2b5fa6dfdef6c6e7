"""The one way flwd reads YAML: bounded in size, in expansion and in depth (sans-IO but
for :func:`read_yaml_file`).

Every document flwd loads — a job's ``config.d/config.yaml``, ``flwd.yaml``, an
add-on manifest, the policy bundle — goes through :func:`load_yaml`, which
enforces :class:`YamlLimits`:

- **size**: a document longer than ``max_bytes`` is refused unread (files are
  read with at most ``max_bytes + 1`` bytes, so a 10 GB file costs 256 KiB);
- **expansion**: YAML aliases let a 700-byte document stand for a billion nodes
  ("billion laughs"). PyYAML builds the *shared* graph cheaply, and every later
  walk of it (unknown-key pruning, pydantic, an error message quoting a value)
  pays for the expansion — minutes and gigabytes. So the composed node graph is
  measured *before* anything is constructed: the number of nodes and of scalar
  characters it holds once every alias is expanded (merge keys ``<<`` included,
  as they are aliases too), in time proportional to the distinct nodes;
- **depth**: nesting deeper than ``max_depth`` (a recursive alias, ``&a [*a]``,
  is infinitely deep).

What follows the load is then bounded by the budget whatever the document does.
A refusal is a :class:`YamlRefused` whose message is one short line (a value is
never quoted in it beyond :data:`CLIP` characters).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import yaml
    from yaml.nodes import Node

__all__ = ["CLIP", "CONFIG_LIMITS", "YamlLimits", "YamlRefused", "clip", "load_yaml",
           "read_yaml_file"]

#: Quoted values and foreign messages are cut to this many characters.
CLIP: Final = 80


@dataclass(frozen=True, slots=True)
class YamlLimits:
    """What one document may hold. The defaults (:data:`CONFIG_LIMITS`) are far
    above any real config — the biggest in the test suite and examples is a few
    hundred nodes, 8 levels deep and 4 KiB long — and far below what costs time:
    a document at every limit loads and validates in well under a second."""

    #: The document's size in bytes (UTF-8).
    max_bytes: int = 256 * 1024
    #: Nodes (scalars, sequences, mappings; a mapping entry is two) once every
    #: alias is expanded. 100,000 is about what 256 KiB of plain YAML can hold
    #: (``[1,1,1,…]``): aliases cannot make a document much bigger than its size
    #: limit already allows.
    max_nodes: int = 100_000
    #: Characters of scalar text once every alias is expanded (4 × max_bytes):
    #: one long string aliased a thousand times is as costly as a thousand copies.
    max_chars: int = 1024 * 1024
    #: Nesting levels (``{a: {b: 1}}`` is 3 deep). Real configs stay under 10.
    max_depth: int = 64


CONFIG_LIMITS: Final = YamlLimits()


class YamlRefused(ValueError):
    """The document is not YAML, or is over one of its :class:`YamlLimits`.

    ``str()`` is one line of at most a few hundred characters (``invalid YAML:
    …`` for a syntax error); ``reason`` is the same without that prefix;
    ``limit`` tells a refused-by-limit document (``True``) from a syntax error.
    """

    def __init__(self, reason: str, *, limit: bool) -> None:
        super().__init__(reason if limit else f"invalid YAML: {reason}")
        self.reason = reason
        self.limit = limit


def clip(text: str, limit: int = CLIP) -> str:
    """``text`` on one line and at most ``limit`` characters (``…`` marks a cut)."""
    line = " ".join(text[: limit * 4].splitlines())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _over(size: int, limits: YamlLimits) -> YamlRefused:
    return YamlRefused(f"the file is larger than {limits.max_bytes // 1024} KiB "
                       f"({size} bytes or more)", limit=True)


def read_yaml_file(path: Path, limits: YamlLimits = CONFIG_LIMITS) -> str:
    """The text of ``path``, reading at most ``limits.max_bytes + 1`` bytes (blocking).

    Raises:
        YamlRefused: the file is larger than ``limits.max_bytes`` (``limit=True``).
        OSError: unreadable (``FileNotFoundError`` for a missing file).
        UnicodeDecodeError: not UTF-8.
    """
    # O_NONBLOCK: a FIFO in place of a config must not hang discovery.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as file:
        data = file.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise _over(len(data), limits)
    return data.decode("utf-8")


def load_yaml(text: str, limits: YamlLimits = CONFIG_LIMITS) -> Any:
    """The data of one YAML document (safe tags only), within ``limits``.

    Raises:
        YamlRefused: malformed YAML, an impossible value (``2024-13-45``, an
            integer of 5,000 digits), or a document over a limit; the message
            names the line where there is one.
    """
    if len(text) > limits.max_bytes or (
            len(text) * 4 > limits.max_bytes
            and len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes):
        raise _over(len(text), limits)
    # Loaded by the first document (~10 ms of a start-up: a run from the run index parses
    # none).
    import yaml

    # libyaml's parser is ~10x faster than the pure-Python one, with the same
    # semantics; it also refuses nesting beyond 1000 levels on its own.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # the pure-Python composer recurses per level
            raise _too_deep(limits) from None
        if node is None:
            return None
        _measure(node, limits)
        return loader.construct_document(node)
    except YamlRefused:
        raise
    except yaml.MarkedYAMLError as exc:
        raise YamlRefused(_marked(exc), limit=False) from None
    except (yaml.YAMLError, ValueError, OverflowError, TypeError) as exc:
        # ValueError: 2024-13-45, or an int beyond Python's digit limit;
        # TypeError: an unhashable key the constructor did not catch.
        raise YamlRefused(clip(str(exc), 200), limit=False) from None
    finally:
        loader.dispose()


def _marked(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    # libyaml's problems are fixed phrases; PyYAML's may quote a token (an alias name).
    reason = clip(exc.problem or exc.context or "syntax error", 120)
    return f"{reason}{where}"


def _too_deep(limits: YamlLimits) -> YamlRefused:
    return YamlRefused(f"the document is nested more than {limits.max_depth} levels deep",
                       limit=True)


def _measure(root: Node, limits: YamlLimits) -> None:
    """Refuse ``root`` if its expansion is over ``limits``.

    A post-order walk without recursion: each distinct node is measured once
    (an alias is the *same* node object as its anchor), so the cost is that of
    the document, not of its expansion. A node met again while it is still on
    the walk's path is a recursive alias.
    """
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    def _children(node: Node) -> list[Node]:
        if isinstance(node, MappingNode):
            return [part for pair in node.value for part in pair]
        if isinstance(node, SequenceNode):
            return list(node.value)
        return []

    measured: dict[int, tuple[int, int, int]] = {}  # id → (nodes, chars, depth)
    on_path: set[int] = {id(root)}
    stack: list[tuple[Node, list[Node]]] = [(root, _children(root))]
    while stack:
        node, pending = stack[-1]
        if pending:
            child = pending.pop()
            key = id(child)
            if key in measured:
                continue
            if key in on_path:
                raise YamlRefused("a recursive alias (an anchor used inside itself, "
                                  f"line {child.start_mark.line + 1})", limit=True)
            if len(stack) >= limits.max_depth:
                raise _too_deep(limits)
            on_path.add(key)
            stack.append((child, _children(child)))
            continue
        stack.pop()
        on_path.discard(id(node))
        nodes, chars, depth = 1, 0, 0
        if isinstance(node, ScalarNode):
            chars = len(node.value)
        for child in _children(node):
            more_nodes, more_chars, child_depth = measured[id(child)]
            nodes += more_nodes
            chars += more_chars
            depth = max(depth, child_depth)
        depth += 1
        if nodes > limits.max_nodes:
            raise YamlRefused(f"the document expands to more than {limits.max_nodes:,} "
                              "nodes (anchors and aliases included)", limit=True)
        if chars > limits.max_chars:
            raise YamlRefused(f"the document expands to more than {limits.max_chars // 1024} "
                              "KiB of text (anchors and aliases included)", limit=True)
        if depth > limits.max_depth:
            raise _too_deep(limits)
        measured[id(node)] = (nodes, chars, depth)
