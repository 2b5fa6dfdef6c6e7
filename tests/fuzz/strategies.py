"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: Scalars YAML and JSON can both carry (plus the odd ones YAML adds on its own).
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
)
#: Words a config or a request is likely to use, so that deep code paths are reached.
KEYWORDS = ["job", "id", "name", "summary", "interpreter", "timeout", "error_handling",
            "policy", "retries", "retry_backoff", "env", "argspec", "args", "type", "required",
            "default", "enum", "items_enum", "minimum", "maximum", "minLength", "maxLength",
            "pattern", "format", "secret", "composition", "steps", "needs", "run", "executor",
            "container", "image", "resources", "cpu", "memory", "string", "integer", "number",
            "boolean", "array", "object", "abort", "continue", "retry", "bash", "python3",
            "items_type", "value_type", "description", "legacy", "script", "scripts"]
keys = st.one_of(st.sampled_from(KEYWORDS), st.text(max_size=12))


def nested(leaves: st.SearchStrategy[Any] = scalars) -> st.SearchStrategy[Any]:
    """Arbitrary JSON-like structures (dicts keyed by likely and random words, lists)."""
    return st.recursive(
        st.one_of(leaves, st.sampled_from(KEYWORDS)),
        lambda children: st.one_of(st.lists(children, max_size=5),
                                   st.dictionaries(keys, children, max_size=6)),
        max_leaves=30)
