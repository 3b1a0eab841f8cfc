"""The client against the recorded answers of a real Kyoto Tycoon 0.9.56b.

Each case's script makes the API calls of that recorded situation; the
replay server answers each request with what the real server answered to
the same request, and the script checks what the API returns for it.
"""

from __future__ import annotations

import datetime as dt

import pytest
from conformance_data import case
from replay_server import ReplayServer

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon
from kyototycoon.errors import (
    InvalidParameters,
    LogicalInconsistency,
    NoRecord,
    NoSuchDatabase,
    NotImplementedByServer,
    RecordExists,
    ServerError,
    ServerTimeout,
)

Y2100 = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
NEVER = 4102444800


def _void(kt):
    assert kt.void() is True


def _echo_plain(kt):
    assert kt.echo({"a": b"1", "b": b"two"}) == {"a": b"1", "b": b"two"}


def _echo_binary(kt):
    assert kt.echo({"k": bytes([0, 1, 2, 255]) * 8}) == {"k": bytes([0, 1, 2, 255]) * 8}
    assert kt.echo({"k": b"mostly ascii\twith a tab"}) == {"k": b"mostly ascii\twith a tab"}
    assert kt.echo({"k": "テキスト".encode()}) == {"k": "テキスト".encode()}


def _status(kt):
    assert kt.status()["count"] == "0"
    assert kt.status(1)["path"] == "%"
    with pytest.raises(NoSuchDatabase) as err:
        kt.status(7)
    assert (err.value.status, err.value.message) == (400, "no such database")
    with pytest.raises(NoSuchDatabase):
        kt.status("nosuch.kch")


def _set_get(kt):
    assert kt.set("japan", b"tokyo") is True
    assert kt.get_with_expire("japan") == (b"tokyo", None)
    assert kt.get_with_expire("missing") == (None, None)


def _set_get_u(kt):
    assert kt.set(b"k\te\ny", b"v\x00\x01\xff") is True
    assert kt.get_with_expire(b"k\te\ny") == (b"v\x00\x01\xff", None)


def _set_get_b(kt):
    assert kt.set(b"bin\x00key", bytes(range(256))) is True
    assert kt.get_with_expire(b"bin\x00key")[0] == bytes(range(256))


def _set_get_q(kt):
    assert kt.set("q=key", "café!".encode()) is True
    assert kt.get_with_expire("q=key")[0] == "café!".encode()


def _set_xt(kt):
    assert kt.set("x", b"1", expire=Y2100) is True
    assert kt.get_with_expire("x") == (b"1", NEVER)
    assert kt.check_with_expire("x") == (1, NEVER)


def _set_xt_relative(kt):
    assert kt.set("x", b"1", expire=dt.timedelta(hours=1)) is True
    value, xt = kt.get_with_expire("x")
    assert value == b"1" and isinstance(xt, int)


def _set_missing_arg(kt):
    with pytest.raises(InvalidParameters) as err:
        kt.rpc("set", {"key": "only"})
    assert err.value.status == 400


def _unknown_procedure(kt):
    with pytest.raises(NotImplementedByServer) as err:
        kt.rpc("nosuch")
    assert err.value.message == "not implemented: nosuch"


def _add(kt):
    assert kt.add("a", b"1") is True
    with pytest.raises(RecordExists) as err:
        kt.add("a", b"2")
    assert err.value.status == 450
    assert err.value.message == "DB: 6: record duplication: record duplication"
    assert kt.get_with_expire("a")[0] == b"1"


def _replace(kt):
    assert kt.replace("r", b"1") is False
    assert kt.set("r", b"1") is True
    assert kt.replace("r", b"2") is True
    assert kt.get_with_expire("r")[0] == b"2"


def _append(kt):
    assert kt.append("ap", b"abc") is True
    assert kt.append("ap", "def") is True
    assert kt.get_with_expire("ap")[0] == b"abcdef"


def _increment(kt):
    assert kt.increment("n", 5) == 5
    assert kt.increment("n", -7) == -2
    assert kt.get_with_expire("n")[0] == (-2).to_bytes(8, "big", signed=True)
    assert kt.set("s", b"not a number") is True
    with pytest.raises(LogicalInconsistency):
        kt.increment("s", 1)


def _increment_double(kt):
    assert kt.increment_double("d", 1.5) == 1.5
    assert kt.increment_double("d", -0.25) == 1.25


def _cas(kt):
    assert kt.cas("c", new_val=b"v1") is True
    assert kt.cas("c", b"v1", b"v2") is True
    with pytest.raises(LogicalInconsistency) as err:
        kt.cas("c", b"wrong", b"v3")
    assert err.value.message == "DB: 8: logical inconsistency: status conflict"
    assert kt.get_with_expire("c")[0] == b"v2"
    assert kt.cas("c", old_val=b"v2") is True
    assert kt.get_with_expire("c") == (None, None)
    with pytest.raises(LogicalInconsistency):
        kt.cas("c", b"v2", b"v4")


def _check_seize(kt):
    assert kt.set("cs", b"12345") is True
    assert kt.check("cs") is True
    assert kt.seize("cs") == b"12345"
    assert kt.check("cs") is False
    assert kt.seize("cs") is None


def _bulk(kt):
    assert kt.set_bulk({"a": b"1", "b": b"2", "c\td": b"3\n"}, atomic=False) == 3
    assert kt.set_bulk({"e": b"5"}, expire=Y2100) == 1
    assert kt.get_bulk(["a", "c\td", "e", "zz"], atomic=False) == {"a": b"1", "c\td": b"3\n", "e": b"5"}
    assert kt.get_bulk(["zz"]) == {}
    assert kt.remove_bulk(["a", "zz", "e"], atomic=False) == 2
    assert kt.remove_bulk(["b"]) == 1
    assert kt.count() == 1


def _db_name_index(kt):
    assert kt.set("k", b"in db 1", db=1) is True
    assert kt.get_with_expire("k", db=1)[0] == b"in db 1"
    assert kt.get_with_expire("k") == (None, None)
    assert kt.set("k2", b"v", db=1) is True
    with pytest.raises(NoSuchDatabase):
        kt.get_with_expire("k", db=9)
    with pytest.raises(NoSuchDatabase):
        kt.set("k", b"v", db="nosuch")


def _vacuum_clear_sync(kt):
    assert kt.set("v", b"1") is True
    assert kt.vacuum() is True
    assert kt.vacuum(step=10) is True
    assert kt.synchronize() is True
    assert kt.clear() is True
    assert kt.get_with_expire("v") == (None, None)


def _match(kt):
    words = {"apple": b"1", "apricot": b"2", "banana": b"3", "applesauce": b"4", "日本": b"5", "日木": b"6"}
    assert kt.set_bulk(words, atomic=False) == 6
    assert kt.match_prefix("ap") == ["apple", "applesauce", "apricot"]
    assert kt.match_prefix("ap", 2) == ["apple", "applesauce"]
    assert kt.match_prefix("zz") == []
    assert kt.match_regex("^a.*e$") == ["apple", "applesauce"]
    assert kt.match_regex("an+") == ["banana"]
    with pytest.raises(LogicalInconsistency):
        kt.match_regex("(")
    assert kt.match_similar("日本", 1) == ["日木", "日本"]  # key order, as python-kyototycoon-ng


def _cursor(kt):
    assert kt.set_bulk({"a": b"1", "b": b"2", "c": b"3", "d": b"4"}, atomic=False) == 4
    c1 = kt.cursor()
    assert c1.jump() is True
    assert c1.get() == ("a", b"1")
    assert c1.get_key(step=True) == "a"
    assert c1.get_value() == b"2"
    assert c1.step() is True
    assert c1.set_value(b"three", expire=Y2100) is True
    assert c1.get(step=True) == ("c", b"three")
    assert c1.remove() is True
    with pytest.raises(NoRecord):  # past the last record (python-kyototycoon-ng raised too)
        c1.get()
    assert c1.step() is False
    with pytest.raises(NoRecord):
        c1.get()
    c2 = kt.cursor()
    assert c2.jump_back() is True
    assert c2.get_key() == "c"
    assert c2.step_back() is True
    assert c2.get_key() == "b"
    c3 = kt.cursor()
    assert c3.jump("b") is True
    assert c3.seize() == {"key": "b", "value": b"2"}
    assert c3.get_key() == "c"
    c4 = kt.cursor()
    assert c4.jump_back("bb") is True
    assert c4.get_key() == "a"
    assert c1.delete() is True
    with pytest.raises(NoRecord):  # a new, unpositioned cursor
        c1.get()
    assert kt.cursor().jump("zzz") is False


def _play_script(kt):
    assert kt.play_script("echo", {"x": b"1", "y": b"\x00\xff"}) == {"x": b"1", "y": b"\x00\xff"}
    assert kt.play_script("set", {"key": b"sk", "value": b"sv"}) == {}
    assert kt.play_script("get", {"key": b"sk"}) == {"value": b"sv", "xt": b"1099511627775"}
    with pytest.raises(LogicalInconsistency) as err:
        kt.play_script("get", {"key": b"nope"})
    assert err.value.message == "the scripting procedure failed"
    with pytest.raises(InvalidParameters):
        kt.play_script("get")
    with pytest.raises(NotImplementedByServer):
        kt.play_script("nosuch")


def _signal(kt):
    assert kt.rpc("set", {"SIGNAL": "sig", "key": "s", "value": "1"}) == {b"SIGNALED": b"0"}


def _wait_timeout(kt):
    with pytest.raises(ServerTimeout) as err:
        kt.rpc("get", {"WAIT": "never", "WAITTIME": "0.2", "key": "s"})
    assert (err.value.status, err.value.message) == (503, "the condition timed out")


def _rest(kt):
    assert kt.get("r k") == b"hello"
    assert kt.get("r k") == b"world"
    assert kt.remove("r k") is True
    assert kt.remove("r k") is False
    assert kt.get("r k") is None


def _rest_db_path(kt):
    assert kt.get("k", db=1) == b"one"
    assert kt.get("k") is None
    with pytest.raises(NoSuchDatabase):
        kt.get("k", db=9)
    assert kt.get(b"\x00\xff/k") == b"bin"


def _rest_int(kt):
    assert kt.increment("cnt", 258) == 258
    assert kt.get_int("cnt") == 258


def _bin_no_reply(kb):
    assert kb.set("nr", b"v", no_reply=True) is True
    assert kb.get("nr") == b"v"
    assert kb.remove("nr", no_reply=True) is True
    assert kb.get("nr") is None


def _bin_bad_db(kb):
    assert kb.set("k", b"v", db=9) is False
    assert kb.get("k", db=9) is None
    assert kb.remove("k", db=9) is False


def _bin_play_script(kb):
    assert kb.play_script("echo", {"a": b"1", "b": b"\x00\x01"}) == {"a": b"1", "b": b"\x00\x01"}
    assert kb.play_script("set", {"key": b"k", "value": b"v"}) == {}
    assert kb.play_script("get", {"key": b"k"}) == {"value": b"v", "xt": b"1099511627775"}
    with pytest.raises(ServerError) as err:
        kb.play_script("get", {"key": b"nope"})
    assert err.value.status is None
    with pytest.raises(ServerError):
        kb.play_script("nosuch")


def _bin_mixed(kb):
    assert kb.set("mix", b"v") is True


# case -> (binary?, script, how many of its steps the script replays)
SCRIPTS = {
    "rpc/void": (False, _void, 1),
    "rpc/echo/plain": (False, _echo_plain, 1),
    "rpc/echo/binary-values": (False, _echo_binary, 3),
    "rpc/status": (False, _status, 4),
    "rpc/set-get": (False, _set_get, 3),
    "rpc/set-get/colenc-U": (False, _set_get_u, 2),
    "rpc/set-get/colenc-B": (False, _set_get_b, 2),
    "rpc/set-get/colenc-Q": (False, _set_get_q, 2),
    "rpc/set/xt": (False, _set_xt, 3),
    "rpc/set/xt-relative": (False, _set_xt_relative, 2),
    "rpc/set/missing-arg": (False, _set_missing_arg, 1),
    "rpc/unknown-procedure": (False, _unknown_procedure, 1),
    "rpc/add": (False, _add, 3),
    "rpc/replace": (False, _replace, 4),
    "rpc/append": (False, _append, 3),
    "rpc/increment": (False, _increment, 5),
    "rpc/increment_double": (False, _increment_double, 2),
    "rpc/cas": (False, _cas, 7),
    "rpc/check-seize": (False, _check_seize, 5),
    "rpc/bulk": (False, _bulk, 7),
    "rpc/db-by-name-and-index": (False, _db_name_index, 6),
    "rpc/vacuum-clear-sync": (False, _vacuum_clear_sync, 6),
    "rpc/match": (False, _match, 8),
    "rpc/cursor": (False, _cursor, 24),
    "rpc/play_script": (False, _play_script, 6),
    "rpc/signal": (False, _signal, 1),
    "rpc/wait-timeout": (False, _wait_timeout, 1),
    "rest/put-get-delete": (False, _rest, 5),
    "rest/db-path": (False, _rest_db_path, 4),
    "rest/int": (False, _rest_int, 2),
    "bin/no-reply": (True, _bin_no_reply, 4),
    "bin/empty-and-bad-db": (True, _bin_bad_db, 3),
    "bin/play_script": (True, _bin_play_script, 5),
    "bin/mixed-with-http": (True, _bin_mixed, 1),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_replayed_case(name):
    binary, script, replayed = SCRIPTS[name]
    with ReplayServer(case(name).steps) as server:
        kt = KyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES)
        kt.open("127.0.0.1", server.port, timeout=5)
        try:
            script(kt)
        finally:
            kt.close()
    assert server.mismatches == []
    assert server.answered == replayed
