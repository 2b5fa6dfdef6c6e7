"""Property tests: the alias index, the sources request parser and SSE framing.

- ``flwd.yaml`` of any content gives entries and issues (never an exception),
  and indexing any entries gives an index whose aliases all resolve to a job;
- any ``POST /sources`` body is a ``SourceSpec`` or ``SourceInvalid``;
- any event, framed by the server (``frames``) and cut anywhere on the way,
  decodes (``SSEDecoder``) back to exactly the envelopes it carried.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from flwd.cli._sse_client import SSEDecoder
from flwd.errors import SourceInvalid
from flwd.events import EventRecord
from flwd.http._problems import domain_problem
from flwd.http._sse import PREAMBLE, frames
from flwd.jobs import Catalog, discover, index_aliases
from flwd.jobs._aliases import read_alias_entries
from flwd.sources._model import SourceSpec, parse_request

from .strategies import KEYWORDS, nested, scalars

pytestmark = pytest.mark.fuzz

# -- aliases --------------------------------------------------------------------------------

_CATALOG: list[Catalog] = []


def catalog() -> Catalog:
    """Jobs demo, alpha.deploy, alpha.build (built once; discovery reads real files)."""
    if not _CATALOG:
        root = Path(tempfile.mkdtemp(prefix="flwd-fuzz-"))
        for rel in ("demo", "alpha/deploy", "alpha/build"):
            config = root / "scripts" / rel / "config.d" / "config.yaml"
            config.parent.mkdir(parents=True)
            config.write_text("interpreter: bash\n")
        _CATALOG.append(discover(root / "scripts"))
    return _CATALOG[0]


words = st.one_of(st.sampled_from(["demo", "alpha/deploy", "alpha.build", "alpha:build",
                                   " alpha//deploy/ ", "ship", "SHIP", ":jobs", "init",
                                   "a/b", "x y", "", "tools/demo", "tools"]),
                  st.text(max_size=12))
alias_entries = st.lists(st.fixed_dictionaries(
    {"from": words, "to": words},
    optional={"description": st.one_of(scalars, st.text(max_size=10)),
              "source": st.one_of(st.none(), st.sampled_from(["tools", "alpha"]))}),
    max_size=8)


@given(alias_entries, st.lists(st.sampled_from(["run", "gc", "x"]), max_size=2))
def test_any_alias_entries_index_to_aliases_of_real_jobs(entries: list[dict[str, Any]],
                                                         verbs: list[str]) -> None:
    jobs = catalog()
    index = index_aliases(entries, jobs, verbs=verbs)
    for alias in index.listing():
        assert index.find(alias.name) is alias
        assert jobs.find(alias.target_id) is not None
        assert not alias.name.startswith(":")
    json.dumps(index.to_json())
    # A name is an alias, a collision or invalid — never two of them at once.
    assert not set(index.aliases) & set(index.collisions)


@given(st.one_of(st.text(max_size=300),
                 nested().map(lambda data: yaml.safe_dump(data, allow_unicode=True)),
                 st.lists(st.fixed_dictionaries({"from": words, "to": words}), max_size=4)
                 .map(lambda entries: yaml.safe_dump({"aliases": entries}))))
def test_any_flwd_yaml_reads_as_entries_and_issues(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "flwd.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        entries, issues = read_alias_entries(Path(folder), "flwd.yaml")
    for entry in entries:
        assert isinstance(entry["from"], str) and isinstance(entry["to"], str)
    for issue in issues:
        assert issue.path == "flwd.yaml" and "\n" not in issue.message
        json.dumps(issue.to_json())
    index_aliases(entries, catalog())


# -- sources ----------------------------------------------------------------------------------

source_values = st.one_of(
    scalars, nested(),
    st.sampled_from(["local", "git", "oci", "tools", "https://example.invalid/x.git",
                     "/tmp", ".", "..", "main", "v1", "registry.invalid/x:1",
                     "registry.invalid/x@sha256:" + "a" * 64, "on-add", "on-run", "never",
                     "file:///etc", "-x", "a b"]))
source_keys = st.sampled_from(["name", "type", "ref", "url", "expose", "trusted",
                               "pull_policy", "path", *KEYWORDS[:5]])


@given(st.dictionaries(source_keys, source_values, max_size=7))
def test_any_sources_request_is_a_spec_or_source_invalid(body: dict[str, Any]) -> None:
    try:
        spec = parse_request(body)
    except SourceInvalid as exc:
        status, document = domain_problem(exc, "/sources")
        assert status == 422 and exc.errors
        json.dumps(document)
        return
    assert isinstance(spec, SourceSpec)


# -- SSE framing round trip ----------------------------------------------------------------

any_text = st.text(st.characters(codec="utf-8"), max_size=40)
json_data = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), any_text,
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(any_text, children, max_size=4)),
    max_leaves=15)
line_bytes = st.binary(max_size=40).map(lambda raw: raw.replace(b"\n", b""))


@st.composite
def records(draw: st.DrawFn) -> list[EventRecord]:
    out = []
    seq = draw(st.integers(1, 10**12))
    for _ in range(draw(st.integers(1, 4))):
        ts = draw(st.floats(0, 4e9))
        if draw(st.booleans()):
            lines = draw(st.lists(line_bytes, min_size=1, max_size=5))
            record = EventRecord(run_id="run-x", job_id=draw(any_text), type="step.log", ts=ts,
                                 data={"step": draw(any_text),
                                       "channel": draw(st.sampled_from(["stdout", "stderr"]))},
                                 lines=b"\n".join(lines), n=len(lines))
        else:
            record = EventRecord(run_id="run-x", job_id=draw(any_text),
                                 type=draw(st.sampled_from(["run.start", "step.finish",
                                                            "run.finish", "policy.decision"])),
                                 ts=ts, data=draw(st.dictionaries(any_text, json_data,
                                                                  max_size=4)))
        record.seq = seq
        seq += record.n
        out.append(record)
    return out


@given(records(), st.lists(st.integers(0, 4000), max_size=8),
       st.sampled_from([b"", b":keep-alive\n\n", b"\xef\xbb\xbf"]))
def test_sse_frames_decode_back_to_the_same_events(batch: list[EventRecord], cuts: list[int],
                                                    lead: bytes) -> None:
    expected = [json.loads(json.dumps(envelope)) for record in batch
                for envelope in record.iter_events()]
    stream = lead + PREAMBLE + b"".join(frames(record) for record in batch)
    decoder = SSEDecoder()
    got = []
    points = sorted({min(cut, len(stream)) for cut in cuts})
    for start, end in zip([0, *points], [*points, len(stream)], strict=True):
        got += decoder.feed(stream[start:end])
    assert not decoder.close()
    assert [json.loads(frame.data) for frame in got] == expected
    assert [frame.event for frame in got] == [event["type"] for event in expected]
    assert [frame.id for frame in got] == [str(event["seq"]) for event in expected]
    assert decoder.last_event_id == str(batch[-1].last_seq)
