"""Rule-Y KV, sans-IO: the namespace allow-list and its flag, and the wire forms
(base64 values and cursors, list limits, RFC 3339 times) the reference uses."""

from __future__ import annotations

import pytest

from flwd.errors import (
    KvCursorInvalid,
    KvKeyNotText,
    KvLimitInvalid,
    KvNamespaceForbidden,
    KvValueNotBase64,
    KvValueTooLong,
    UsageError,
)
from flwd.kv import (
    DEFAULT_LIMIT,
    KvNamespaces,
    decode_cursor,
    decode_value,
    format_timestamp,
    item_document,
    key_text,
    parse_limit,
)
from flwd.store import KvItem


def test_the_default_namespaces_are_the_references() -> None:
    # Its TestConfigNormalizeRuleYDefaults: two namespaces, 32 MiB each.
    assert dict(KvNamespaces().limits) == {"core_triggers": 32 << 20,
                                           "core_invocation_state": 32 << 20}
    assert KvNamespaces.from_env({}) == KvNamespaces()
    assert KvNamespaces().resolve("Core_Triggers") == ("core_triggers", DEFAULT_LIMIT)


@pytest.mark.parametrize(("spec", "limit"), [
    ("jobs", 32 << 20), ("jobs=8MiB", 8 << 20), ("jobs=512kib", 512 << 10), ("jobs=100", 100),
    ("jobs=1 GiB", 1 << 30), ("jobs=2m", 2 << 20), ("JOBS=7b", 7)])
def test_a_namespace_flag_names_a_limit_in_bytes_or_with_a_unit(spec: str, limit: int) -> None:
    assert dict(KvNamespaces.parse([spec]).limits) == {"jobs": limit}


@pytest.mark.parametrize("spec", [
    "", "=5", "a-b", "a/b", "ns=0", "ns=-1", "ns=1.5MiB", "ns=10TiB", "ns=2048GiB", "ns=",
    "x" * 65, "ns=1e9", "é"])
def test_a_bad_namespace_flag_is_one_usage_line(spec: str) -> None:
    with pytest.raises(UsageError) as refused:
        KvNamespaces.parse([spec])
    assert refused.value.detail.startswith("--kv-namespace")
    assert "\n" not in refused.value.one_line()


def test_a_namespace_given_twice_in_any_case_is_refused() -> None:
    with pytest.raises(UsageError, match="given twice"):
        KvNamespaces.parse(["Jobs", "jobs=1KiB"])


def test_the_environment_round_trips_the_list() -> None:
    allowed = KvNamespaces.parse(["a=1KiB", "b"])
    assert allowed.to_env() == f"a=1024,b={32 << 20}"
    assert KvNamespaces.from_env({"FLWD_KV_NAMESPACES": allowed.to_env()}) == allowed
    assert KvNamespaces.from_env({"FLWD_KV_NAMESPACES": " a , ,b=3 "}).limits == {
        "a": 32 << 20, "b": 3}
    with pytest.raises(UsageError, match="FLWD_KV_NAMESPACES"):
        KvNamespaces.from_env({"FLWD_KV_NAMESPACES": "a;b"})


def test_an_unknown_namespace_is_forbidden_and_named_cut_short() -> None:
    with pytest.raises(KvNamespaceForbidden) as refused:
        KvNamespaces().resolve("x" * 5000)
    assert len(refused.value.detail) < 200
    assert "core_triggers, core_invocation_state" in refused.value.detail
    with pytest.raises(KvNamespaceForbidden):
        KvNamespaces({}).resolve("core_triggers")


def test_values_are_standard_padded_base64() -> None:
    assert decode_value("YmFy") == b"bar"
    assert decode_value("") == b""
    assert decode_value("AP8=") == b"\x00\xff"
    for bad in ("YmF", "Ym Fy", "YmFy\n", "_-8=", "é", "YQ==YQ==x", None, 12, [], {}, True):
        with pytest.raises(KvValueNotBase64):
            decode_value(bad)
    with pytest.raises(KvValueTooLong):
        decode_value("A" * 10928)  # refused on its length, before decoding
    # The store refuses what decodes to more than 8 KiB (decode_value is only the wire).
    assert len(decode_value("A" * 10924)) == 8193


def test_cursors_are_base64_keys() -> None:
    assert decode_cursor("YXBwOm9uZQ==") == b"app:one"
    for bad in ("%%%", "YXBw\n", "é"):
        with pytest.raises(KvCursorInvalid):
            decode_cursor(bad)
    with pytest.raises(KvCursorInvalid, match="257 bytes"):
        decode_cursor("QUFB" * 85 + "QUE=")  # 257 bytes


@pytest.mark.parametrize(("text", "limit"), [
    (None, 256), ("", 256), ("1", 1), ("256", 256), ("257", 256), ("100000", 256), (" 3 ", 3),
    ("007", 7), ("9" * 40, 256), ("9" * 5000, 256)])
def test_a_list_limit_is_clamped_to_the_page_size(text: str | None, limit: int) -> None:
    assert parse_limit(text) == limit


@pytest.mark.parametrize("text", ["0", "000", "-1", "abc", "1.5", "+5", "١", "0x10", " "])
def test_a_bad_list_limit_is_refused(text: str) -> None:
    with pytest.raises(KvLimitInvalid):
        parse_limit(text)


def test_keys_are_utf8_text() -> None:
    assert key_text("é/x") == "é/x".encode()
    with pytest.raises(KvKeyNotText):
        key_text("a\udcffb")


@pytest.mark.parametrize(("ms", "text"), [
    (0, "1970-01-01T00:00:00Z"), (1_700_000_000_000, "2023-11-14T22:13:20Z"),
    (1_700_000_000_120, "2023-11-14T22:13:20.12Z"), (1_700_000_000_001, "2023-11-14T22:13:20.001Z")])
def test_times_print_as_go_rfc3339nano(ms: int, text: str) -> None:
    assert format_timestamp(ms) == text


def test_an_item_document_is_the_references() -> None:
    assert item_document(KvItem(b"foo", b"bar", 1_700_000_000_500)) == {
        "key": "foo", "value": "YmFy", "timestamp": "2023-11-14T22:13:20.5Z"}
