"""The reference's canonical JSON (flwd/http/_canonical.py), byte for byte.

The expected spellings are what Go's encoding/json (1.22 and later) decodes and
writes: a reference client hashes these bytes for ``Idempotency-SHA256``.
"""

from __future__ import annotations

import hashlib

import pytest

from flwd.http._canonical import canonical_json, canonical_sha256


@pytest.mark.parametrize(("raw", "expected"), [
    # Whitespace goes, keys are sorted, nesting is kept.
    (b' { "job_id" : "demo" ,\n "args" : { "name" : "Alice", "b": [1, 2 ,{"z":0,"a":null}] } } ',
     b'{"args":{"b":[1,2,{"a":null,"z":0}],"name":"Alice"},"job_id":"demo"}'),
    (b'{}', b'{}'),
    (b'[]', b'[]'),
    (b'{"a":[],"b":{},"c":[[]]}', b'{"a":[],"b":{},"c":[[]]}'),
    (b'[true,false,null]', b'[true,false,null]'),
    # Numbers exactly as written: Go keeps json.Number literals.
    (b'{"a":1.0,"b":1e3,"c":-0,"d":1E+3,"e":0.10,"f":123456789012345678901234567890,'
     b'"g":-1.5e-7}',
     b'{"a":1.0,"b":1e3,"c":-0,"d":1E+3,"e":0.10,"f":123456789012345678901234567890,'
     b'"g":-1.5e-7}'),
])
def test_structure_and_numbers(raw: bytes, expected: bytes) -> None:
    assert canonical_json(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    # UTF-8 stays UTF-8, whether sent raw or as an escape.
    ('{"n":"Zoë 東京 😀"}'.encode(), '{"n":"Zoë 東京 😀"}'.encode()),
    (b'{"n":"Zo\\u00eb \\ud83d\\ude00"}', '{"n":"Zoë 😀"}'.encode()),
    (b'{"n":"\\/"}', b'{"n":"/"}'),
    # What Go escapes: quote and backslash, control characters (short forms for
    # \b \f \n \r \t since Go 1.22, lower-case \u00XX for the rest), < > &, U+2028/9.
    (b'{"s":"\\"\\\\"}', b'{"s":"\\"\\\\"}'),
    (b'{"s":"\\b\\f\\n\\r\\t"}', b'{"s":"\\b\\f\\n\\r\\t"}'),
    (b'{"s":"\\u0000\\u0001\\u001f\\u000B"}', b'{"s":"\\u0000\\u0001\\u001f\\u000b"}'),
    (b'{"s":"<a href=\'x\'>&amp;</a>"}',
     b'{"s":"\\u003ca href=\'x\'\\u003e\\u0026amp;\\u003c/a\\u003e"}'),
    ('{"s":"a\u2028b\u2029c"}'.encode(), b'{"s":"a\\u2028b\\u2029c"}'),
    # Not escaped by Go: DEL, U+0085, U+FEFF inside a string, plain non-BMP.
    ('{"s":"\x7f\u0085\ufeff"}'.encode(), '{"s":"\x7f\u0085\ufeff"}'.encode()),
    # Keys are strings like any other.
    (b'{"<k>\\n":1}', b'{"\\u003ck\\u003e\\n":1}'),
])
def test_strings_as_go_writes_them(raw: bytes, expected: bytes) -> None:
    assert canonical_json(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    # A lone surrogate escape decodes to U+FFFD in Go (high, low, or a pair in the
    # wrong order: each one alone).
    (b'{"s":"\\ud800"}', '{"s":"\ufffd"}'.encode()),
    (b'{"s":"\\udc00x"}', '{"s":"\ufffdx"}'.encode()),
    (b'{"s":"\\ude00\\ud83d"}', '{"s":"\ufffd\ufffd"}'.encode()),
    (b'{"s":"\\ud83dA"}', '{"s":"\ufffdA"}'.encode()),
    # A byte that is not UTF-8 inside a string: one U+FFFD per byte, as Go.
    (b'{"s":"a\xed\xa0\x80b"}', '{"s":"a\ufffd\ufffd\ufffdb"}'.encode()),
    (b'{"s":"\xf0\x9f\x98"}', '{"s":"\ufffd\ufffd\ufffd"}'.encode()),
])
def test_what_is_not_unicode_becomes_the_replacement_character(raw: bytes,
                                                                  expected: bytes) -> None:
    assert canonical_json(raw) == expected


def test_keys_sort_by_utf8_bytes_not_utf16_units() -> None:
    # U+FF5E (EF BD 9E) before U+1F600 (F0 9F 98 80) in UTF-8; in UTF-16 (and so
    # in JavaScript's sort) it is the other way round; ASCII and upper case first.
    raw = '{"😀":1,"～":2,"é":3,"a":4,"B":5,"":6,'.encode() + b'"\\ud83d\\ude01":7}'
    expected = '{"":6,"B":5,"a":4,"é":3,"～":2,"😀":1,"😁":7}'.encode()
    assert canonical_json(raw) == expected
    keys = ["", "B", "a", "é", "～", "😀", "😁"]
    assert sorted(keys, key=lambda k: k.encode()) == keys
    assert sorted(keys, key=lambda k: k.encode("utf-16-be")) != keys


def test_a_repeated_key_keeps_its_last_value_as_go_does() -> None:
    assert canonical_json(b'{"a":1,"b":2,"a":{"x":3}}') == b'{"a":{"x":3},"b":2}'
    # Keys that differ only in what is not Unicode are one key to Go.
    assert canonical_json(b'{"\\ud800":1,"\\udc00":2}') == '{"\ufffd":2}'.encode()


def test_a_leading_bom_is_skipped_as_flwd_skips_it() -> None:
    assert canonical_json(b'\xef\xbb\xbf{"a":1}') == b'{"a":1}'


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a":1} x', "{}".encode("utf-16"),
                                 b'{"a":"\xff"', b"\xff{}"])
def test_what_is_not_one_json_document_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        canonical_json(raw)


def test_deep_nesting_is_encoded_or_refused_without_a_crash() -> None:
    deep = b"[" * 900 + b"]" * 900
    assert canonical_json(deep) == deep
    with pytest.raises(ValueError):
        canonical_json(b"[" * 200_000 + b"]" * 200_000)


def test_the_hash_is_the_lower_case_sha256_of_the_canonical_bytes() -> None:
    raw = b'{"job_id":"demo", "args":{"name":"Alice"}}'
    assert canonical_sha256(raw) == hashlib.sha256(canonical_json(raw)).hexdigest()
    # printf '%s' '{"args":{"name":"Alice"},"job_id":"demo"}' | sha256sum
    assert canonical_sha256(raw) == (
        "043b75f827ff8933d17d67023924d77b73c62fa6509753e7fcd0bc287a3d053b")
