"""LineSplitter: arbitrary reads → chunks of complete, redacted lines."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flwd.execute import _lines
from flwd.execute._lines import MAX_LINE, REDACTED, LineSplitter


def lines_of(result: tuple[bytes, int]) -> list[bytes]:
    body, count = result
    if count == 0:
        assert body == b""
        return []
    lines = body.split(b"\n")
    assert len(lines) == count, f"count {count} does not match {lines!r}"
    return lines


def feed_all(splitter: LineSplitter, pieces: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for piece in pieces:
        out += lines_of(splitter.feed(piece))
    out += lines_of(splitter.flush())
    return out


def test_nothing_to_emit_without_a_newline():
    splitter = LineSplitter()
    assert splitter.feed(b"partial") == (b"", 0)
    assert splitter.feed(b"") == (b"", 0)
    assert splitter.flush() == (b"partial", 1)
    assert splitter.flush() == (b"", 0)


def test_complete_lines_are_joined_without_trailing_newline():
    splitter = LineSplitter()
    assert splitter.feed(b"a\nbb\nccc\n") == (b"a\nbb\nccc", 3)
    assert splitter.flush() == (b"", 0)


def test_partial_line_is_carried_across_feeds():
    splitter = LineSplitter()
    assert splitter.feed(b"hel") == (b"", 0)
    assert splitter.feed(b"lo\nwor") == (b"hello", 1)
    assert splitter.feed(b"ld") == (b"", 0)
    assert splitter.feed(b"\n") == (b"world", 1)
    assert splitter.flush() == (b"", 0)


def test_empty_lines_are_lines():
    splitter = LineSplitter()
    assert splitter.feed(b"\n") == (b"", 1)
    assert splitter.feed(b"\n\nx\n") == (b"\n\nx", 3)


def test_crlf_is_normalised_and_one_trailing_cr_dropped():
    splitter = LineSplitter()
    assert splitter.feed(b"a\r\nb\r\nc\r\n") == (b"a\nb\nc", 3)
    # a lone \r inside a line (progress bars) is kept
    assert splitter.feed(b"10%\r20%\n") == (b"10%\r20%", 1)


def test_crlf_split_between_feeds():
    splitter = LineSplitter()
    assert splitter.feed(b"line\r") == (b"", 0)
    assert splitter.feed(b"\nnext\r") == (b"line", 1)
    assert splitter.feed(b"\n") == (b"next", 1)


def test_flush_drops_trailing_cr():
    splitter = LineSplitter()
    splitter.feed(b"tail\r")
    assert splitter.flush() == (b"tail", 1)


def test_an_unterminated_line_is_emitted_once_it_reaches_max_line():
    splitter = LineSplitter()
    assert splitter.feed(b"x" * (MAX_LINE - 1)) == (b"", 0)
    body, count = splitter.feed(b"y")
    assert count == 1
    assert body == b"x" * (MAX_LINE - 1) + b"y"
    # the buffer was handed out: what follows starts a fresh line
    assert splitter.feed(b"z\n") == (b"z", 1)
    assert splitter.flush() == (b"", 0)


def test_max_line_bounds_the_buffer(monkeypatch):
    monkeypatch.setattr(_lines, "MAX_LINE", 10)
    splitter = LineSplitter()
    emitted = []
    for _ in range(25):
        body, count = splitter.feed(b"ab")
        emitted += lines_of((body, count))
        assert len(splitter._partial) < 10
    assert b"".join(emitted) + splitter.flush()[0] == b"ab" * 25
    assert all(len(piece) == 10 for piece in emitted)


# -- secrets ------------------------------------------------------------------

def test_secret_is_masked_in_every_line():
    splitter = LineSplitter([b"hunter2"])
    assert splitter.feed(b"pw=hunter2\nagain hunter2hunter2\nclean\n") == (
        b"pw=[secret]\nagain [secret][secret]\nclean", 3)


def test_secret_split_across_reads_is_masked():
    splitter = LineSplitter([b"hunter2"])
    assert splitter.feed(b"token: hun") == (b"", 0)
    assert splitter.feed(b"ter2 ok\n") == (b"token: [secret] ok", 1)


def test_secret_in_flushed_tail_and_in_max_line_piece_is_masked(monkeypatch):
    splitter = LineSplitter([b"s3cr3t"])
    splitter.feed(b"end s3cr3t")
    assert splitter.flush() == (b"end [secret]", 1)
    monkeypatch.setattr(_lines, "MAX_LINE", 16)
    splitter = LineSplitter([b"s3cr3t"])
    assert splitter.feed(b"0123456789s3cr3t") == (b"0123456789[secret]", 1)


def test_longest_secret_is_masked_first():
    # "abc" is inside "abcdef": masking the short one first would leak "def".
    for order in ([b"abc", b"abcdef"], [b"abcdef", b"abc"]):
        splitter = LineSplitter(order)
        assert splitter.feed(b"x abcdef y abc\n") == (b"x [secret] y [secret]", 1)


def test_empty_secrets_are_ignored():
    splitter = LineSplitter([b"", b"k"])
    assert splitter.feed(b"key\n") == (b"[secret]ey", 1)
    assert LineSplitter([b""]).feed(b"abc\n") == (b"abc", 1)
    assert LineSplitter(None).feed(b"abc\n") == (b"abc", 1)


def test_secret_masking_does_not_cross_lines():
    # a secret spread over two lines is not one line's content
    splitter = LineSplitter([b"ab"])
    assert splitter.feed(b"a\nb\n") == (b"a\nb", 2)


def test_count_matches_lines_when_a_masked_secret_contains_a_newline():
    splitter = LineSplitter([b"line1\nline2"])
    body, count = splitter.feed(b"key: line1\nline2 end\n")
    assert b"line1" not in body
    assert body.count(b"\n") + 1 == count


# -- properties ----------------------------------------------------------------

@st.composite
def split_points(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    return pieces


stream_bytes = st.lists(st.sampled_from([b"a", b"b", b"\n", b"\r", b"\r\n", b"xy", b"\xff", b"S3"]),
                        max_size=60).map(b"".join)


@given(data=st.data(), stream=stream_bytes)
def test_any_split_yields_the_same_lines_as_one_feed(data, stream):
    whole = feed_all(LineSplitter([b"S3", b"ab"]), [stream])
    pieces = data.draw(split_points(stream))
    assert b"".join(pieces) == stream
    assert feed_all(LineSplitter([b"S3", b"ab"]), pieces) == whole


@given(stream=st.binary(max_size=200))
def test_lines_reassemble_the_stream(stream):
    # Without secrets or \r, joining the lines gives back the stream (modulo a final newline).
    stream = stream.replace(b"\r", b"")
    lines = feed_all(LineSplitter(), [stream])
    expected = stream[:-1] if stream.endswith(b"\n") else stream
    assert b"\n".join(lines) == expected
    assert len(lines) == stream.count(b"\n") + (0 if stream.endswith(b"\n") or not stream else 1)


@given(stream=stream_bytes)
def test_no_secret_survives(stream):
    for line in feed_all(LineSplitter([b"S3"]), [stream]):
        assert b"S3" not in line
    assert REDACTED == b"[secret]"


def test_secret_split_across_reads_is_still_masked() -> None:
    splitter = LineSplitter([b"hunter2"])
    first = splitter.feed(b"pass: hun")
    second = splitter.feed(b"ter2 ok\n")
    assert first == (b"", 0)
    assert second == (b"pass: [secret] ok", 1)


def test_each_line_of_a_multiline_secret_is_masked_in_separate_reads() -> None:
    splitter = LineSplitter([b"line-one\nline-two"])
    assert splitter.feed(b"line-one\n") == (b"[secret]", 1)
    assert splitter.feed(b"x line-two\n") == (b"x [secret]", 1)


def test_a_secret_inside_the_mask_is_not_masked_twice() -> None:
    assert LineSplitter([b"secret"]).feed(b"my secret\n") == (b"my [secret]", 1)
