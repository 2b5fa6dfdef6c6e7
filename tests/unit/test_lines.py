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


def test_an_unterminated_line_is_cut_once_it_exceeds_max_line():
    splitter = LineSplitter()
    assert splitter.feed(b"x" * MAX_LINE) == (b"", 0)
    body, count = splitter.feed(b"yz")
    assert (body, count) == (b"x" * MAX_LINE, 1)
    # the rest of the line follows as its own fragment
    assert splitter.feed(b"!\n") == (b"yz!", 1)
    assert splitter.flush() == (b"", 0)


def test_max_line_bounds_the_buffer():
    splitter = LineSplitter(max_line=10)
    emitted = []
    for _ in range(25):
        body, count = splitter.feed(b"ab")
        emitted += lines_of((body, count))
        assert len(splitter._rest) <= 10
    assert b"".join(emitted) + splitter.flush()[0] == b"ab" * 25
    assert all(len(piece) == 10 for piece in emitted)


def test_a_trailing_cr_is_not_cut_from_its_lf():
    # "\r" at the end of what is known may be half of "\r\n": it does not count
    # towards the cut, so the line does not end in an empty fragment.
    splitter = LineSplitter(max_line=4)
    assert splitter.feed(b"abcd\r") == (b"", 0)
    assert splitter.feed(b"\n") == (b"abcd", 1)
    assert splitter.feed(b"abcde\r") == (b"abcd", 1)
    assert splitter.feed(b"\n") == (b"e", 1)


# -- secrets ------------------------------------------------------------------

def test_secret_is_masked_in_every_line():
    splitter = LineSplitter([b"hunter2"])
    assert splitter.feed(b"pw=hunter2\nagain hunter2hunter2\nclean\n") == (
        b"pw=[secret]\nagain [secret][secret]\nclean", 3)


def test_secret_split_across_reads_is_masked():
    splitter = LineSplitter([b"hunter2"])
    assert splitter.feed(b"token: hun") == (b"", 0)
    assert splitter.feed(b"ter2 ok\n") == (b"token: [secret] ok", 1)


def test_secret_in_flushed_tail_and_in_max_line_piece_is_masked():
    splitter = LineSplitter([b"s3cr3t"])
    splitter.feed(b"end s3cr3t")
    assert splitter.flush() == (b"end [secret]", 1)
    splitter = LineSplitter([b"s3cr3t"], max_line=10)
    assert splitter.feed(b"0123456789s3cr3t!!!!!") == (b"0123456789", 1)
    assert splitter.flush() == (b"[secret]!!!!!", 1)


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


# -- masking before cutting ------------------------------------------------------

def test_a_secret_straddling_the_max_line_cut_is_masked_whole() -> None:
    # Reads of 64 KiB reach the cut exactly at MAX_LINE, in the middle of the secret.
    stream = b"x" * (MAX_LINE - 3) + b"hunter2" + b"y" * 10 + b"\n"
    splitter = LineSplitter([b"hunter2"])
    emitted = feed_all(splitter, [stream[i:i + (1 << 16)] for i in range(0, len(stream), 1 << 16)])
    assert emitted == [b"x" * (MAX_LINE - 3) + b"[secret]", b"y" * 10]


def test_a_secret_longer_than_max_line_is_masked_whole() -> None:
    splitter = LineSplitter([b"abcdefghij"], max_line=4)
    assert feed_all(splitter, [b"xxabcdefghijyy\n"]) == [b"xx[secret]", b"yy"]
    splitter = LineSplitter([b"abcdefghij"], max_line=4)
    assert feed_all(splitter, [bytes([byte]) for byte in b"xxabcdefghijyy"]) == [
        b"xx[secret]", b"yy"]


def test_the_held_back_rest_is_bounded_by_max_line_plus_the_longest_secret() -> None:
    splitter = LineSplitter([b"k" * 7], max_line=10)
    for _ in range(100):
        splitter.feed(b"ab")
        assert len(splitter._rest) <= 10 + 7 + 2


def test_overlapping_secrets_leave_neither_whole() -> None:
    splitter = LineSplitter([b"abc", b"cde"])
    assert splitter.feed(b"abcde cde\n") == (b"[secret]de [secret]", 1)


def test_every_line_of_a_multiline_secret_is_masked_also_with_crlf() -> None:
    splitter = LineSplitter([b"-----BEGIN-----\r\nZm9vYmFy\r\n-----END-----\r\n"])
    body, count = splitter.feed(b"-----BEGIN-----\r\nZm9vYmFy\r\n-----END-----\r\n")
    assert (body, count) == (b"[secret]\n[secret]\n[secret]", 3)


# A test alphabet that shares no byte with "[secret]": a secret found in the
# output can only be the job's own bytes, never the mask next to them.
ALPHABET = [b"a", b"b", b"0", b"1", b"\r", b"\n"]


def reference_lines(stream: bytes, secrets: list[bytes]) -> list[bytes]:
    """Each line of ``stream`` masked as a whole, the naive way (no cutting)."""
    pieces = _lines.secret_pieces(secrets)
    lines = stream.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    out = []
    for line in lines:
        line = line[:-1] if line.endswith(b"\r") else line
        masked, i = b"", 0
        while i < len(line):
            piece = next((p for p in pieces if line.startswith(p, i)), None)
            if piece is None:
                masked += line[i:i + 1]
                i += 1
            else:
                masked += REDACTED
                i += len(piece)
        out.append(masked)
    return out


@given(data=st.data(), max_line=st.integers(1, 12),
       secrets=st.lists(st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=6)
                        .map(b"".join), min_size=1, max_size=3))
def test_no_secret_survives_any_reads_and_any_cut(data: st.DataObject, max_line: int,
                                                  secrets: list[bytes]) -> None:
    # Streams made of the alphabet and whole secrets, so that secrets (and
    # secrets overlapping each other) are frequent, split into arbitrary reads.
    stream = b"".join(data.draw(st.lists(st.sampled_from(ALPHABET + secrets), max_size=50)))
    reads = data.draw(split_points(stream))
    emitted = feed_all(LineSplitter(secrets, max_line=max_line), reads)
    # the same lines whichever way the stream was read
    assert emitted == feed_all(LineSplitter(secrets, max_line=max_line), [stream])
    # nothing of a secret in any emitted line (fragment) ...
    for line in emitted:
        for piece in _lines.secret_pieces(secrets):
            assert piece not in line, (piece, line)
    # ... nor across fragments: together they are each line masked as a whole
    assert b"".join(emitted) == b"".join(reference_lines(stream, secrets))
    longest = max(len(piece) for piece in _lines.secret_pieces(secrets) or [b""])
    assert len(emitted) >= len(reference_lines(stream, secrets))
    for line in emitted:  # a fragment holds at most max_line + longest - 1 raw bytes
        assert len(line) <= (max_line + longest) * len(REDACTED)
