"""The Rule-Y KV through the Engine façade: a real engine on a real Core DB file.

What the HTTP blueprint and a job's ``flwd :kv`` rely on: the allow-list and its
quotas, the reference's order of checks, and the variables every host step gets
to reach the same data dir without a token.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from flwd.engine import open_engine
from flwd.errors import (
    KvKeyNotFound,
    KvKeyNotText,
    KvKeyRequired,
    KvKeyTooLong,
    KvNamespaceForbidden,
    KvQuotaExceeded,
    KvValueTooLong,
)
from flwd.kv import KvNamespaces
from tests.conftest import write_job
from tests.engine.test_engine import collect, make_plan, settings_for


async def test_put_get_list_delete_in_an_allowed_namespace(workspace: Path, data_dir: Path
                                                           ) -> None:
    settings = settings_for(workspace, data_dir)
    async with open_engine(settings) as engine:
        await engine.kv_put("core_triggers", "app:one", b"1")
        await engine.kv_put("CORE_Triggers", "app:two", b"\x00\xff")  # any case
        await engine.kv_put("core_triggers", "bee", b"b")
        item = await engine.kv_get("core_triggers", "app:two")
        assert (item.key, item.value) == (b"app:two", b"\x00\xff")
        page = await engine.kv_list("core_triggers", prefix="app:", limit=1)
        assert [i.key for i in page.items] == [b"app:one"] and page.next_cursor == b"app:one"
        rest = await engine.kv_list("core_triggers", prefix="app:", cursor=page.next_cursor)
        assert [i.key for i in rest.items] == [b"app:two"] and rest.next_cursor is None
        assert rest.document() == {"items": [{
            "key": "app:two", "value": "AP8=", "timestamp": rest.document()["items"][0][
                "timestamp"]}]}
        await engine.kv_delete("core_triggers", "bee")
        with pytest.raises(KvKeyNotFound):
            await engine.kv_get("core_triggers", "bee")
        with pytest.raises(KvKeyNotFound):
            await engine.kv_delete("core_triggers", "bee")
        # Namespaces are apart.
        with pytest.raises(KvKeyNotFound):
            await engine.kv_get("core_invocation_state", "app:one")


async def test_refusals_in_the_reference_order(workspace: Path, data_dir: Path) -> None:
    settings = settings_for(workspace, data_dir)
    async with open_engine(settings, kv_namespaces=KvNamespaces({"small": 9})) as engine:
        # The namespace first: even a bad key in a forbidden namespace is a 403.
        for call in (engine.kv_get("core_triggers", ""), engine.kv_put("nope", "k" * 300, b""),
                     engine.kv_list("../etc"), engine.kv_delete("", "k")):
            with pytest.raises(KvNamespaceForbidden):
                await call
        with pytest.raises(KvKeyRequired):
            await engine.kv_get("small", "")
        with pytest.raises(KvKeyTooLong):
            await engine.kv_delete("small", "é" * 129)  # 258 bytes
        with pytest.raises(KvKeyNotText):
            await engine.kv_put("small", "\udcff", b"")
        with pytest.raises(KvKeyNotText):
            await engine.kv_list("small", prefix="\udcff")
        with pytest.raises(KvValueTooLong):
            await engine.kv_put("small", "k", b"v" * 8193)
        # The reference's own quota test: 9 bytes hold one 1+4 entry, not two.
        await engine.kv_put("small", "a", b"1234")
        with pytest.raises(KvQuotaExceeded):
            await engine.kv_put("small", "b", b"1234")
        assert engine.store.kv_usage("small") == 5


async def test_a_job_gets_the_data_dir_and_the_namespaces_to_reach_the_kv(
        workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "peek", "interpreter: bash\n", {
        "100_peek.sh": 'echo "dir=$FLWD_DATA_DIR"\necho "ns=$FLWD_KV_NAMESPACES"\n'})
    settings = settings_for(workspace, data_dir)
    allowed = KvNamespaces.parse(["counters=1KiB", "core_triggers"])
    async with open_engine(settings, kv_namespaces=allowed) as engine:
        run = await engine.start_run(make_plan(settings, "peek"))
        with trio.fail_after(60):
            events = await collect(engine, run.id)
    lines = [e["data"]["message"] for e in events if e["type"] == "step.log"]
    assert lines == [f"dir={data_dir}", f"ns=counters=1024,core_triggers={32 << 20}"]
    assert events[-1]["data"]["status"] == "completed"
