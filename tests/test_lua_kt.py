"""Lua scripts on the embedded server: the kt module against the real ktserver's recorded answers,
and what a script must not do to the server (run long, sleep, raise, recurse, not compile)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lua_cases import RECORDING, SCRIPT, answer

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon
from kyototycoon.errors import ServerError
from kyototycoon.server import EmbeddedServer
from kyototycoon.server.lua import LuaError, runtime

pytest.importorskip("lupa")

RECORDED = json.loads(Path(RECORDING).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def server():
    with EmbeddedServer(RECORDED["databases"], script=SCRIPT) as srv:
        yield srv


def client(srv: EmbeddedServer, binary: bool, timeout: float = 10) -> KyotoTycoon:
    kt = KyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES)
    kt.open(srv.host, srv.port, timeout=timeout)
    return kt


@pytest.mark.parametrize("case", RECORDED["results"],
                         ids=[f"{r['protocol']}-{r['procedure']}-{i}"
                              for i, r in enumerate(RECORDED["results"])])
def test_same_answer_as_real_ktserver(server, case):
    """Every kt function and class, over HTTP and binary, answers what ktserver 0.9.56b answered."""
    kt = client(server, case["protocol"] == "binary")
    try:
        assert answer(kt, case["procedure"], case["inmap"]) == case["answer"]
    finally:
        kt.close()


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.binary(max_size=20), st.binary(max_size=50), max_size=8))
def test_binary_safe_echo(server, inmap):
    for binary in (False, True):
        kt = client(server, binary)
        try:
            out = kt.play_script("echo", inmap)
            assert {(k.encode("utf-8") if isinstance(k, str) else k): v for k, v in out.items()} == inmap
        finally:
            kt.close()


def test_script_writes_go_through_the_update_log(server):
    kt = client(server, True)
    kt.play_script("dbops", {})
    kt.close()
    log = server.call(lambda: server.store.read_log(0))
    assert any(rec.key == b"k\x00\t\xff" for rec in log)


def test_file_operations_answer_not_implemented(server):
    kt = client(server, False)
    out = kt.play_script("fileops", {})
    kt.close()
    assert out == {"open#": b"2", "open1": b"false", "open2": b"1", "copy#": b"2", "copy1": b"false",
                   "copy2": b"1"}


LONG = b"""
function spin(inmap, outmap) while true do end end
function catchall(inmap, outmap) while true do pcall(function() while true do end end) end end
function nap(inmap, outmap) kt.sleep(tonumber(inmap.s)) outmap.slept = inmap.s return kt.RVSUCCESS end
function rec(inmap, outmap) return rec(inmap, outmap) + 1 end
function get(inmap, outmap) outmap.v = kt.db:get(inmap.k) return kt.RVSUCCESS end
"""


@pytest.fixture(scope="module")
def long_server(tmp_path_factory):
    path = tmp_path_factory.mktemp("lua") / "long.lua"
    path.write_bytes(LONG)
    with EmbeddedServer(script=str(path), script_timeout=0.5, script_threads=4) as srv:
        yield srv


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("proc", ["spin", "catchall"])
def test_runaway_script_ends_at_the_timeout(long_server, binary, proc):
    kt = client(long_server, binary)
    start = time.monotonic()
    with pytest.raises(ServerError) as info:
        kt.play_script(proc, {})
    assert time.monotonic() - start < 5
    if not binary:
        assert info.value.status == 503
    kt.set_bulk({"alive": b"yes"}) if binary else kt.set("alive", b"yes")
    kt.close()


def test_sleep_blocks_only_its_connection(long_server):
    sleeper = client(long_server, True)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (sleeper.play_script("nap", {"s": b"0.4"}), done.set()))
    thread.start()
    other = client(long_server, False)
    start = time.monotonic()
    for i in range(20):
        other.set(f"k{i}", b"v")
    assert time.monotonic() - start < 0.4 and not done.is_set()
    thread.join(5)
    assert done.is_set()
    other.close()
    sleeper.close()


def test_endless_recursion_is_an_internal_error(long_server):
    kt = client(long_server, False)
    with pytest.raises(ServerError) as info:
        kt.play_script("rec", {})
    assert info.value.status == 500
    kt.set("x", b"1")
    assert kt.play_script("get", {"k": b"x"}) == {"v": b"1"}
    kt.close()


def test_names_over_rpc_must_be_alphanumeric_binary_not(tmp_path):
    path = tmp_path / "names.lua"
    path.write_bytes(b"function with_underscore(i, o) o.ok = 1 end\n")
    with EmbeddedServer(script=str(path)) as srv:
        http, binary = client(srv, False), client(srv, True)
        with pytest.raises(ServerError) as info:
            http.play_script("with_underscore", {})
        assert info.value.status == 400
        assert binary.play_script("with_underscore", {}) == {"ok": b"1"}
        assert http.play_script("echo", {"py": b"1"}) == {"py": b"1"}  # Python callables stay
        http.close()
        binary.close()


def test_syntax_error_is_one_line(tmp_path):
    path = tmp_path / "bad.lua"
    path.write_bytes(b"function broken(\n")
    with pytest.raises(LuaError) as info:
        EmbeddedServer(script=str(path))
    assert "bad.lua:2:" in str(info.value) and "\n" not in str(info.value)


def test_missing_lua_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime, "LUA_MODULES", ("no_such_lupa_module",))
    with pytest.raises(LuaError, match=r"pip install 'kyototycoon\[server\]'"):
        runtime.lua_module()
