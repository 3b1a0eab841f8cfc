"""The client end to end against a server: every public method, checked on the server too.

One server (two databases, ``first`` and ``second``) serves the whole module:
the embedded one, and a real ktserver when ``KYOTOTYCOON_TEST_KTSERVER`` names
one (``oracle.start_target``). Every test starts with both databases empty.
Answers are checked as the client returns them *and* as the server stored them
(``srv.stored``: the embedded store itself, or a raw TSV-RPC read that is not the
client's code).
"""

from __future__ import annotations

import datetime as dt
import pickle
import struct
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest
from async_facade import BlockingFacade, LoopThread
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import Target, start_target

from kyototycoon import (
    KT_PACKER_BYTES,
    KT_PACKER_CUSTOM,
    KT_PACKER_JSON,
    KT_PACKER_PICKLE,
    KT_PACKER_STRING,
    KyotoTycoon,
    KyotoTycoonException,
)
from kyototycoon.aio import AsyncKyotoTycoon
from kyototycoon.errors import (
    InvalidParameters,
    LogicalInconsistency,
    NoRecord,
    NoSuchDatabase,
    NotImplementedByServer,
    RecordExists,
    ServerError,
)
from kyototycoon.spec.binary import XT_MAX

FIRST, SECOND = "first", "second"
# every byte a TSV field, a URL path or a UTF-8 decoder could trip over
AWKWARD_KEYS = [b"tab\there", b"new\nline", b"nul\x00byte", b"\xff\xfe not utf-8", b"cr\r\n",
                b"%2F/slash?q=1&x", b" spaced ", "ключ".encode(), b"\x00", b"\t\n"]
AWKWARD_VALUES = [b"", b"\x00" * 3, b"\t\n\r", bytes(range(256)), b"\xc3\x28", b"x" * 70_000]
CLOCK_SLACK = 3  # seconds an expiration may drift while a test runs


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def srv(target_kind: str) -> Iterator[Target]:
    with start_target(target_kind, [FIRST, SECOND]) as server:
        yield server


@pytest.fixture(autouse=True)
def empty_databases(srv: Target) -> None:
    srv.clear()


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.stop()


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> str:
    """Every test runs with the blocking client and with the asyncio one (behind a blocking facade)."""
    return request.param


@pytest.fixture
def connect(srv: Target, driver: str, loop_thread: LoopThread) -> Iterator[Callable[..., KyotoTycoon]]:
    """Open clients on the module's server (keyword arguments go to ``KyotoTycoon``); all closed after.

    With the ``async`` driver they are ``AsyncKyotoTycoon`` clients seen through a blocking facade.
    """
    clients: list[Any] = []

    def open_client(**kwargs: Any) -> KyotoTycoon:
        kt: Any
        if driver == "async":
            kt = BlockingFacade(AsyncKyotoTycoon(**kwargs), loop_thread)
        else:
            kt = KyotoTycoon(**kwargs)
        kt.open(srv.host, srv.port, timeout=10)
        clients.append(kt)
        return kt  # type: ignore[no-any-return]

    yield open_client
    for kt in clients:
        kt.close()


@pytest.fixture
def kt(connect: Callable[..., KyotoTycoon]) -> KyotoTycoon:
    """An HTTP client with the default (pickle) packer."""
    return connect()


@pytest.fixture
def raw(connect: Callable[..., KyotoTycoon]) -> KyotoTycoon:
    """An HTTP client that stores bytes as they are."""
    return connect(pack_type=KT_PACKER_BYTES)


@pytest.fixture
def binary(connect: Callable[..., KyotoTycoon]) -> KyotoTycoon:
    """A binary-protocol client that stores bytes as they are."""
    return connect(binary=True, pack_type=KT_PACKER_BYTES)


def stored(srv: Target, key: str | bytes, db: int | str = 0) -> tuple[bytes, int] | None:
    """``(value, absolute xt)`` the server holds for ``key``, or None."""
    return srv.stored(key, db)


def stored_value(srv: Target, key: str | bytes, db: int | str = 0) -> bytes | None:
    return srv.stored_value(key, db)


def stored_keys(srv: Target, db: int | str = 0) -> list[bytes]:
    return srv.keys(db)


def read_back(key: bytes) -> str | bytes:
    """How the client hands a key read from the server back: text when it is UTF-8."""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return key


def assert_xt_near(srv: Target, key: str | bytes, expected: float, db: int | str = 0) -> None:
    rec = stored(srv, key, db)
    assert rec is not None, f"{key!r} is not stored"
    assert abs(rec[1] - expected) <= CLOCK_SLACK, (rec[1], expected)


def signal_until_woken(kt: KyotoTycoon, name: str, waiters: int = 1, broadcast: bool = False) -> int:
    """Signal ``name`` until the server reports ``waiters`` woken (the waiter may not be waiting yet)."""
    deadline = time.monotonic() + 5
    for _ in range(100_000):
        woken = kt.signal(name, broadcast=broadcast)
        if woken >= waiters or time.monotonic() > deadline:
            return woken
    return 0


# ---------------------------------------------------------------- single records over HTTP


def test_set_get_remove_keep_the_pickled_value_on_the_server(srv, kt):
    value = {"n": 1, "items": [1.5, None, "é"]}
    assert kt.set("k", value) is True
    assert stored_value(srv, "k") == pickle.dumps(value, 2)
    assert stored(srv, "k")[1] == XT_MAX
    assert kt.get("k") == value
    assert kt.remove("k") is True
    assert stored(srv, "k") is None
    assert kt.remove("k") is False
    assert kt.get("k") is None


def test_add_stores_a_new_key_and_refuses_an_existing_one(srv, raw):
    assert raw.add("k", b"first") is True
    with pytest.raises(RecordExists) as info:
        raw.add("k", b"second")
    assert isinstance(info.value, KyotoTycoonException)
    assert (info.value.status, info.value.message) == (450, "DB: 6: record duplication: record duplication")
    assert stored_value(srv, "k") == b"first"


def test_replace_only_changes_an_existing_key(srv, raw):
    assert raw.replace("k", b"v") is False
    assert stored(srv, "k") is None
    raw.set("k", b"old")
    assert raw.replace("k", b"new") is True
    assert stored_value(srv, "k") == b"new"


def test_append_with_bytes_packer_concatenates_on_the_server(srv, raw):
    assert raw.append("k", b"ab") is True  # a missing record is created
    assert raw.append("k", "cd") is True  # str is appended as UTF-8
    assert stored_value(srv, "k") == b"abcd"
    with pytest.raises(ValueError):
        raw.append("k", 5)


def test_append_with_pickle_packer_keeps_the_stored_type(srv, kt):
    kt.set("text", "ab")
    assert kt.append("text", b"cd") is True
    assert kt.get("text") == "abcd"
    kt.set("data", b"ab")
    assert kt.append("data", "cd") is True
    assert stored_value(srv, "data") == pickle.dumps(b"abcd", 2)
    assert kt.append("new", "x") is True
    assert kt.get("new") == "x"
    kt.set("number", 5)
    with pytest.raises(KyotoTycoonException):
        kt.append("number", "x")


def test_increment_and_get_int_share_the_8_byte_big_endian_record(srv, kt):
    assert kt.increment("n", 5) == 5
    assert kt.increment("n", -7) == -2
    assert stored_value(srv, "n") == struct.pack(">q", -2)
    assert kt.get_int("n") == -2
    with pytest.raises(NoRecord) as missing:
        kt.get_int("missing")
    assert (missing.value.status, missing.value.message) == (404, "DB: 7: no record: no record")
    kt.set("text", "not a number")
    with pytest.raises(LogicalInconsistency) as info:
        kt.increment("text", 1)
    assert info.value.status == 450
    assert info.value.message == "DB: 8: logical inconsistency: logical inconsistency"


def test_increment_double_adds_decimals(srv, kt):
    assert kt.increment_double("d", 1.25) == 1.25
    assert kt.increment_double("d", -0.5) == 0.75
    assert len(stored_value(srv, "d")) == 16  # the server's fixed-point record
    kt.set("text", "x" * 20)
    with pytest.raises(LogicalInconsistency):
        kt.increment_double("text", 1.0)


def test_cas_swaps_only_the_expected_value(srv, kt):
    kt.set("k", "old")
    assert kt.cas("k", old_val="old", new_val="new") is True
    assert stored_value(srv, "k") == pickle.dumps("new", 2)
    with pytest.raises(LogicalInconsistency) as info:
        kt.cas("k", old_val="old", new_val="other")
    assert (info.value.status, info.value.message) == (450, "DB: 8: logical inconsistency: status conflict")
    assert kt.get("k") == "new"


def test_cas_without_old_value_creates_only_a_missing_record(srv, kt):
    assert kt.cas("k", new_val="v") is True
    assert kt.get("k") == "v"
    with pytest.raises(LogicalInconsistency):
        kt.cas("k", new_val="again")
    assert kt.get("k") == "v"


def test_cas_without_new_value_removes_the_matching_record(srv, kt):
    kt.set("k", "v")
    with pytest.raises(LogicalInconsistency):
        kt.cas("k", old_val="other")
    assert kt.cas("k", old_val="v") is True
    assert stored(srv, "k") is None
    with pytest.raises(ValueError):
        kt.cas("k")


def test_cas_with_expire_sets_the_new_records_xt(srv, kt):
    kt.cas("k", new_val="v", expire=100)
    assert_xt_near(srv, "k", time.time() + 100)


def test_check_seize_and_the_expire_readers(srv, raw):
    assert raw.check("k") is False
    assert raw.get_with_expire("k") == (None, None)
    assert raw.check_with_expire("k") == (None, None)
    raw.set("k", b"value")
    assert raw.check("k") is True
    assert raw.get_with_expire("k") == (b"value", None)
    assert raw.check_with_expire("k") == (5, None)
    raw.set("k", b"value", expire=60)
    xt = stored(srv, "k")[1]
    assert raw.get_with_expire("k") == (b"value", xt)
    assert raw.check_with_expire("k") == (5, xt)
    assert raw.seize("k") == b"value"
    assert stored(srv, "k") is None
    assert raw.seize("k") is None


def test_empty_key_works_like_any_other(srv, raw):
    assert raw.set("", b"v") is True
    assert stored_value(srv, b"") == b"v"
    assert raw.get("") == b"v"
    assert raw.remove("") is True
    assert raw.get("") is None


# ---------------------------------------------------------------- bulk


@pytest.mark.parametrize("atomic", [True, False])
def test_bulk_set_get_remove(srv, raw, atomic):
    data = {"a": b"1", "b": b"2", b"\xffc": b"3"}
    assert raw.set_bulk(data, atomic=atomic) == 3
    assert {k: stored_value(srv, k) for k in data} == data
    assert raw.get_bulk(["a", b"\xffc", "missing"], atomic=atomic) == {"a": b"1", b"\xffc": b"3"}
    assert raw.remove_bulk(["a", "missing"], atomic=atomic) == 1
    assert stored_keys(srv) == [b"b", b"\xffc"]


def test_bulk_with_nothing_to_do_answers_without_asking(raw):
    assert raw.set_bulk({}) == 0
    assert raw.get_bulk([]) == {}
    assert raw.remove_bulk([]) == 0


def test_set_bulk_expire_applies_to_every_record(srv, raw):
    raw.set_bulk({"a": b"1", "b": b"2"}, expire=50)
    for key in "ab":
        assert_xt_near(srv, key, time.time() + 50)


# ---------------------------------------------------------------- matching


def test_match_prefix_regex_and_similar(raw):
    raw.set_bulk({"apple": b"", "apricot": b"", "banana": b"", "apply": b"", b"ap\xff": b""})
    assert raw.match_prefix("ap") == ["apple", "apply", "apricot", b"ap\xff"]
    assert raw.match_prefix("ap", limit=2) == ["apple", "apply"]
    assert raw.match_prefix("zz") == []
    assert raw.match_regex("^ap.*y$") == ["apply"]
    assert raw.match_regex("an", limit=1) == ["banana"]
    assert raw.match_similar("appla", 1) == ["apple", "apply"]
    assert raw.match_similar("banana", 0) == ["banana"]


def test_match_similar_counts_utf8_characters(raw):
    raw.set_bulk({"café": b"", "cafe": b"", "cafés": b""})
    assert sorted(raw.match_similar("café", 0)) == ["café"]
    assert sorted(raw.match_similar("café", 1)) == ["cafe", "café", "cafés"]


# ---------------------------------------------------------------- server-wide procedures


def test_report_status_count_size(srv, raw):
    report = raw.report()
    assert report["db_total_count"] == "0"
    assert "db_1" in report
    empty = raw.size()
    raw.set_bulk({"a": b"12345", "b": b"x"})
    status = raw.status()
    assert status["count"] == "2" == str(raw.count())
    # a B+ tree in memory grows by pages: two small records may fit in the space it already has
    assert raw.size() == int(status["size"]) >= empty
    assert raw.count(db=SECOND) == 0
    assert raw.report()["db_total_count"] == "2"


def test_clear_vacuum_synchronize_echo_void(srv, raw):
    raw.set_bulk({"a": b"1", "b": b"2"}, db=1)
    raw.set("keep", b"x")
    assert raw.clear(db=1) is True
    assert stored_keys(srv, 1) == []
    assert stored_keys(srv, 0) == [b"keep"]
    raw.set("gone", b"x", expire=dt.datetime.now() - dt.timedelta(seconds=30))
    assert raw.vacuum() is True
    assert raw.vacuum(step=10) is True
    assert raw.get("gone") is None
    assert raw.synchronize() is True
    assert raw.synchronize(hard=True) is True
    assert raw.void() is True
    assert raw.echo({"a": b"1", b"\xff\t": b"\x00\n"}) == {"a": b"1", b"\xff\t": b"\x00\n"}
    assert raw.echo() == {}


def test_play_script_over_http_passes_bytes_through(srv, raw):
    assert raw.play_script("echo", {"x": b"\x00\xff", "y": b"1"}) == {"x": b"\x00\xff", "y": b"1"}
    assert raw.play_script("set", {"key": b"sk", "value": b"sv"}) == {}
    assert stored_value(srv, "sk") == b"sv"
    assert raw.play_script("get", {"key": b"sk"}) == {"value": b"sv", "xt": b"%d" % XT_MAX}
    with pytest.raises(ValueError):
        raw.play_script("echo", {"x": "text"})
    with pytest.raises(NotImplementedByServer) as info:
        raw.play_script("nosuch")
    assert (info.value.status, info.value.message) == (501, "no such scripting procedure")
    with pytest.raises(LogicalInconsistency) as missing:
        raw.play_script("get", {"key": b"nope"})
    assert (missing.value.status, missing.value.message) == (450, "the scripting procedure failed")


# ---------------------------------------------------------------- packers


class ReversingPacker:
    """A custom packer whose stored bytes are easy to predict."""

    def pack(self, data: str) -> bytes:
        return data[::-1].encode("utf-8")

    def unpack(self, data: bytes) -> str:
        return data.decode("utf-8")[::-1]


@pytest.mark.parametrize(
    ("options", "value", "on_server"),
    [
        ({"pack_type": KT_PACKER_PICKLE}, {"a": [1, 2.5]}, pickle.dumps({"a": [1, 2.5]}, 2)),
        ({"pack_type": KT_PACKER_JSON}, {"a": [1, "é"]}, b'{"a":[1,"\\u00e9"]}'),
        ({"pack_type": KT_PACKER_STRING}, "naïve\ttext", "naïve\ttext".encode()),
        ({"pack_type": KT_PACKER_BYTES}, b"\x00raw\xff", b"\x00raw\xff"),
        ({"pack_type": KT_PACKER_CUSTOM, "custom_packer": ReversingPacker()}, "abc", b"cba"),
    ],
    ids=["pickle", "json", "string", "bytes", "custom"],
)
@pytest.mark.parametrize("use_binary", [False, True], ids=["http", "binary"])
def test_every_packer_stores_its_bytes_and_reads_them_back(srv, connect, options, value, on_server,
                                                          use_binary):
    client = connect(binary=use_binary, **options)
    assert client.set("k", value) is True
    assert stored_value(srv, "k") == on_server
    assert client.get("k") == value
    assert client.get_bulk(["k"]) == {"k": value}
    assert client.set_bulk({"k2": value}) == 1
    assert stored_value(srv, "k2") == on_server


# ---------------------------------------------------------------- databases


@pytest.mark.parametrize("use_binary", [False, True], ids=["http", "binary"])
def test_db_by_index_reaches_the_second_database(srv, connect, use_binary):
    client = connect(binary=use_binary, pack_type=KT_PACKER_BYTES)
    assert client.set("k", b"in second", db=1) is True
    assert stored_value(srv, "k", 1) == b"in second"
    assert stored(srv, "k", 0) is None
    assert client.get("k") is None
    assert client.get("k", db=1) == b"in second"
    assert client.set_bulk({"a": b"1"}, db=1) == 1
    assert client.get_bulk(["a", "k"], db=1) == {"a": b"1", "k": b"in second"}
    assert client.remove_bulk(["a"], db=1) == 1
    assert client.remove("k", db=1) is True
    assert stored_keys(srv, 1) == []


def test_db_by_name_over_http(srv, raw):
    raw.set("k", b"v", db=SECOND)
    raw.increment("n", 3, db=SECOND)
    raw.set_bulk({"a": b"1"}, db=SECOND)
    assert stored_keys(srv, 1) == [b"a", b"k", b"n"]
    assert stored_keys(srv, 0) == []
    assert raw.get("k", db=SECOND) == b"v"
    assert raw.get_int("n", db=SECOND) == 3
    assert raw.match_prefix("", db=SECOND) == ["a", "k", "n"]
    assert raw.count(db=SECOND) == 3
    assert raw.count(db=FIRST) == 0
    assert raw.remove("k", db=SECOND) is True
    assert raw.seize("a", db=SECOND) == b"1"
    assert stored_keys(srv, 1) == [b"n"]


@pytest.mark.parametrize("missing", [2, 99, "nosuch"])
@pytest.mark.parametrize(
    "call",
    [
        lambda c, db: c.get("k", db=db),
        lambda c, db: c.set("k", b"v", db=db),
        # remove (and replace) answer False, as python-kyototycoon-ng did (test_compat_differential.py)
        lambda c, db: c.status(db=db),
        lambda c, db: c.count(db=db),
        lambda c, db: c.clear(db=db),
        lambda c, db: c.set_bulk({"k": b"v"}, db=db),
        lambda c, db: c.get_bulk(["k"], db=db),
        lambda c, db: c.match_prefix("k", db=db),
        lambda c, db: c.increment("k", 1, db=db),
        lambda c, db: c.check("k", db=db),
        lambda c, db: c.cursor().jump(db=db),
    ],
    ids=["get", "set", "status", "count", "clear", "set_bulk", "get_bulk", "match_prefix",
         "increment", "check", "cursor_jump"],
)
def test_unknown_database_raises_no_such_database_over_http(raw, call, missing):
    with pytest.raises(NoSuchDatabase) as info:
        call(raw, missing)
    assert isinstance(info.value, KyotoTycoonException)
    assert info.value.status == 400
    assert "no such database" in info.value.message


def test_unknown_database_over_binary_finds_and_stores_nothing(srv, binary):
    assert binary.set("k", b"v", db=5) is False
    assert binary.get("k", db=5) is None
    assert binary.set_bulk({"k": b"v"}, db=5) == 0
    assert binary.remove("k", db=5) is False
    assert stored_keys(srv, 0) == stored_keys(srv, 1) == []
    with pytest.raises(TypeError):
        binary.get("k", db=SECOND)  # names are HTTP only


# ---------------------------------------------------------------- expiration


@pytest.mark.parametrize(
    ("expire", "offset"),
    [(100, 100), (100.9, 100), (dt.timedelta(minutes=2), 120), ("datetime", 300)],
    ids=["int", "float", "timedelta", "datetime"],
)
@pytest.mark.parametrize("use_binary", [False, True], ids=["http", "binary"])
def test_expire_forms_end_up_as_the_servers_absolute_xt(srv, connect, expire, offset, use_binary):
    if expire == "datetime":
        expire = dt.datetime.now() + dt.timedelta(seconds=offset)
        expected = int(expire.timestamp())
    else:
        expected = time.time() + offset
    client = connect(binary=use_binary, pack_type=KT_PACKER_BYTES)
    client.set("single", b"v", expire=expire)
    client.set_bulk({"bulk": b"v"}, expire=expire)
    assert_xt_near(srv, "single", expected)
    assert_xt_near(srv, "bulk", expected)
    if not use_binary:
        client.add("added", b"v", expire=expire)
        client.replace("added", b"w", expire=expire)
        client.append("appended", b"v", expire=expire)
        client.increment("counter", 1, expire=expire)
        client.increment_double("double", 1.5, expire=expire)
        client.cas("swapped", new_val=b"v", expire=expire)
        for key in ("added", "appended", "counter", "double", "swapped"):
            assert_xt_near(srv, key, expected)


def test_datetime_in_the_past_expires_at_once(srv, raw):
    raw.set("k", b"v", expire=dt.datetime.now() - dt.timedelta(hours=1))
    assert raw.get("k") is None
    assert stored(srv, "k") is None


def test_timezone_aware_datetime_is_absolute(srv, raw):
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=500)
    raw.set("k", b"v", expire=when)
    assert stored(srv, "k")[1] == int(when.timestamp())


# ---------------------------------------------------------------- awkward keys and values


@pytest.mark.parametrize("key", AWKWARD_KEYS, ids=repr)
def test_awkward_keys_round_trip_over_http(srv, raw, key):
    value = b"\t\x00\n" + key
    assert raw.set(key, value) is True
    assert stored_value(srv, key) == value
    assert raw.get(key) == value
    assert raw.check(key) is True
    assert raw.get_bulk([key]) == {key: value}
    assert read_back(key) in raw.match_prefix(key[:1])
    assert raw.remove(key) is True
    assert stored(srv, key) is None


@pytest.mark.parametrize("value", AWKWARD_VALUES, ids=lambda v: repr(v[:12]))
@pytest.mark.parametrize("use_binary", [False, True], ids=["http", "binary"])
def test_awkward_values_round_trip(srv, connect, value, use_binary):
    client = connect(binary=use_binary, pack_type=KT_PACKER_BYTES)
    client.set(b"\x00\t\n\xff", value)
    assert stored_value(srv, b"\x00\t\n\xff") == value
    assert client.get(b"\x00\t\n\xff") == value


@pytest.mark.parametrize("key", AWKWARD_KEYS, ids=repr)
def test_awkward_keys_round_trip_over_binary(srv, binary, key):
    assert binary.set(key, b"v") is True
    assert stored_value(srv, key) == b"v"
    assert binary.get(key) == b"v"
    assert binary.get_bulk([key, b"other"]) == {key: b"v"}
    assert binary.remove(key) is True
    assert stored(srv, key) is None


def test_keys_read_back_are_text_when_utf8_and_bytes_otherwise(raw):
    raw.set_bulk({"ascii": b"", "ключ": b"", b"\xff\xfe": b""})
    assert raw.match_prefix("") == ["ascii", "ключ", b"\xff\xfe"]
    with raw.cursor() as cur:
        assert [k for k, _ in cur] == ["ascii", "ключ", b"\xff\xfe"]


BYTES = st.binary(max_size=64)
# the autouse clearing fixture runs once per test, not per example: every example cleans up after itself
SHARED_SERVER = [HealthCheck.function_scoped_fixture]
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=SHARED_SERVER)


@PROPERTY
@given(key=BYTES, value=st.binary(max_size=300))
def test_any_bytes_round_trip_over_http(srv, raw, key, value):
    assert raw.set(key, value) is True
    assert stored_value(srv, key) == value
    assert raw.get(key) == value
    assert raw.get_bulk([key]) == {key: value}
    assert raw.remove(key) is True
    assert raw.get(key) is None


@PROPERTY
@given(key=BYTES, value=st.binary(max_size=300))
def test_any_bytes_round_trip_over_binary(srv, binary, key, value):
    assert binary.set(key, value) is True
    assert stored_value(srv, key) == value
    assert binary.get(key) == value
    assert binary.remove(key) is True
    assert binary.get(key) is None


@settings(max_examples=25, deadline=None, suppress_health_check=SHARED_SERVER)
@given(records=st.dictionaries(BYTES, st.binary(max_size=100), max_size=8))
def test_any_bytes_bulk_round_trip_over_http_and_binary(srv, raw, binary, records):
    srv.clear(0)
    assert raw.set_bulk(records) == len(records)
    assert binary.get_bulk(list(records)) == records
    assert binary.remove_bulk(list(records)) == len(records)
    assert stored_keys(srv) == []
    assert binary.set_bulk(records) == len(records)
    assert raw.get_bulk(list(records)) == records


# ---------------------------------------------------------------- binary protocol


def test_binary_client_set_get_bulk_remove(srv, binary):
    assert binary.set("k", b"v") is True
    assert binary.get("k") == b"v"
    assert binary.get("missing") is None
    assert binary.set_bulk({"a": b"1", "b": b"2"}) == 2
    assert binary.get_bulk(["a", "b", "missing"]) == {"a": b"1", "b": b"2"}
    assert binary.remove_bulk(["a", "missing"]) == 1
    assert binary.remove("missing") is False
    assert binary.remove("k") is True
    assert stored_keys(srv) == [b"b"]


def test_binary_no_reply_writes_reach_the_server(srv, binary):
    assert binary.set("k", b"v", no_reply=True) is True
    assert binary.set_bulk({"a": b"1", "b": b"2"}, no_reply=True) == 0
    assert binary.remove_bulk(["a"], no_reply=True) == 0
    # the same connection answers this after the unanswered writes were applied
    assert binary.get_bulk(["k", "a", "b"]) == {"k": b"v", "b": b"2"}
    assert binary.remove("k", no_reply=True) is True
    assert binary.get("k") is None
    assert stored_keys(srv) == [b"b"]


def test_binary_play_script(srv, binary):
    assert binary.play_script("echo", {"x": b"\x00\xff"}) == {"x": b"\x00\xff"}
    binary.play_script("set", {"key": b"sk", "value": b"sv"})
    assert stored_value(srv, "sk") == b"sv"
    with pytest.raises(ServerError):
        binary.play_script("nosuch")
    with pytest.raises(ValueError):
        binary.play_script("echo", {"x": "text"})


def test_binary_client_refuses_atomic(binary):
    for call in (lambda: binary.set_bulk({"a": b"1"}, atomic=True),
                 lambda: binary.get_bulk(["a"], atomic=True),
                 lambda: binary.remove_bulk(["a"], atomic=True)):
        with pytest.raises(KyotoTycoonException):
            call()
    assert binary.set_bulk({"a": b"1"}, atomic=False) == 1


HTTP_ONLY = ["add", "replace", "append", "increment", "increment_double", "cas", "check", "seize", "get_int",
             "match_prefix", "match_regex", "match_similar", "report", "status", "count", "size", "clear",
             "vacuum", "synchronize", "echo", "void", "cursor", "get_with_expire", "check_with_expire",
             "signal", "wait", "rpc", "tune_replication"]


@pytest.mark.parametrize("name", HTTP_ONLY)
def test_binary_client_raises_not_implemented_for_http_only_methods(srv, binary, name):
    with pytest.raises(NotImplementedError):
        getattr(binary, name)("k")
    assert stored_keys(srv) == []


# ---------------------------------------------------------------- cursors


def test_cursor_walks_forward_and_back(raw):
    raw.set_bulk({"a": b"1", "b": b"2", "c": b"3", "d": b"4"})
    cur = raw.cursor()
    assert cur.jump() is True
    assert cur.get() == ("a", b"1")
    assert cur.get_key(step=True) == "a"
    assert cur.get_value() == b"2"
    assert cur.step() is True
    assert cur.get(step=True) == ("c", b"3")
    assert cur.get() == ("d", b"4")
    assert cur.step() is False
    with pytest.raises(NoRecord):  # as python-kyototycoon-ng: the server's 450 raises
        cur.get()
    assert cur.jump_back() is True
    assert cur.get_key() == "d"
    assert cur.step_back() is True
    assert cur.get_key() == "c"
    assert cur.jump("b") is True
    assert cur.get_key() == "b"
    assert cur.jump_back("bb") is True
    assert cur.get_key() == "b"
    assert cur.jump("zzz") is False
    assert cur.jump_back("0") is False
    assert cur.delete() is True


def test_cursor_edits_reach_the_server(srv, raw):
    raw.set_bulk({"a": b"1", "b": b"2", "c": b"3"})
    with raw.cursor() as cur:
        cur.jump("a")
        assert cur.set_value(b"one", step=True) is True
        assert stored_value(srv, "a") == b"one"
        assert cur.get_key() == "b"
        assert cur.set_value(b"two", expire=100) is True
        assert_xt_near(srv, "b", time.time() + 100)
        assert cur.remove() is True  # moves on to "c"
        assert stored(srv, "b") is None
        assert cur.seize() == {"key": "c", "value": b"3"}
        assert stored_keys(srv) == [b"a"]
        with pytest.raises(NoRecord) as info:
            cur.get_key()
        assert (info.value.status, info.value.message) == (450, "DB: 7: no record: no record")


def test_cursor_values_are_unpacked(kt):
    kt.set_bulk({"a": [1], "b": {"x": 2}})
    with kt.cursor() as cur:
        assert list(cur) == [("a", [1]), ("b", {"x": 2})]
        cur.jump("b")
        assert cur.get_value() == {"x": 2}
        assert cur.seize() == {"key": "b", "value": {"x": 2}}


def test_cursor_iteration_on_an_empty_database_yields_nothing(raw):
    with raw.cursor() as cur:
        assert list(cur) == []


def test_cursor_with_statement_deletes_the_servers_cursor(connect):
    client = connect(pack_type=KT_PACKER_BYTES)  # one pooled connection: the cursor borrows it
    client.set("a", b"1")
    with client.cursor() as cur:
        assert cur.jump() is True
        cur_id = cur.cursor_id
    assert cur._conn is None
    assert len(client._pool.idle) == 1
    # back on the same connection the cursor is gone: ktserver has no handler for deleting a missing one
    with pytest.raises(NotImplementedByServer):
        client.rpc("cur_delete", {"CUR": str(cur_id)})


def test_cursor_in_a_named_database(srv, raw):
    raw.set_bulk({"x": b"1", "y": b"2"}, db=SECOND)
    raw.set("in-first", b"0")
    with raw.cursor() as cur:
        assert cur.jump(db=SECOND) is True
        assert cur.get(step=True) == ("x", b"1")
        assert cur.seize() == {"key": "y", "value": b"2"}
    assert stored_keys(srv, SECOND) == [b"x"]
    assert stored_keys(srv, FIRST) == [b"in-first"]


# -- regressions: cursors and databases


def test_cursor_jump_to_a_missing_database_says_no_such_database(raw):
    cur = raw.cursor()
    for jump in (cur.jump, cur.jump_back):
        with pytest.raises(NoSuchDatabase) as info:
            jump(db="nosuch")
        assert (info.value.status, info.value.message) == (400, "no such database")
        assert "no such cursor" not in str(info.value)
    with pytest.raises(NotImplementedByServer):  # the server never made it: 501, as ng raised
        cur.delete()


def test_with_cursor_shows_the_first_error_not_the_cleanup(raw):
    with pytest.raises(NoSuchDatabase), raw.cursor() as cur:
        cur.jump(db=7)
    with pytest.raises(ZeroDivisionError), raw.cursor() as cur:
        cur.jump()
        1 / 0  # noqa: B018
    assert raw.void() is True


def test_cursor_error_in_with_block_survives_a_failing_delete(raw, monkeypatch):
    from kyototycoon.client.cursor import CursorBase

    real_delete_call = CursorBase._delete_call

    def cur_delete_fails(self: CursorBase) -> Any:
        call = real_delete_call(self)

        def parse(resp: Any) -> Any:
            raise ServerError(500, "cleanup broke", "cur_delete")

        call.parse = parse
        return call

    monkeypatch.setattr(CursorBase, "_delete_call", cur_delete_fails)
    with pytest.raises(KeyError) as info, raw.cursor() as cur:
        cur.jump()
        raise KeyError("first")
    if sys.version_info >= (3, 11):  # exception notes exist from 3.11 on
        assert "cleanup broke" in " ".join(info.value.__notes__)
    # with nothing to hide, the cleanup error shows
    with pytest.raises(ServerError, match="cleanup broke"), raw.cursor() as cur:
        cur.jump()


def test_cursor_moves_to_the_database_each_jump_names(raw):
    raw.set("in-first", b"1")
    raw.set("in-second", b"2", db=1)
    with raw.cursor() as cur:
        assert cur.jump(db=0) is True
        assert cur.get_key() == "in-first"
        assert cur.jump(db=1) is True
        assert cur.get_key() == "in-second"
        assert cur.jump_back(db=SECOND) is True
        assert cur.get_key() == "in-second"
        assert cur.jump_back(db=FIRST) is True
        assert cur.get_key() == "in-first"
        with pytest.raises(NoSuchDatabase):
            cur.jump(db=9)
        assert cur.jump() is True
        assert cur.get_key() == "in-first"


def test_cursor_iteration_stays_in_the_database_it_jumped_to(raw):
    raw.set("in-first", b"1")
    raw.set_bulk({"s1": b"a", "s2": b"b"}, db=1)
    with raw.cursor() as cur:
        cur.jump("s2", db=1)
        assert list(cur) == [("s1", b"a"), ("s2", b"b")]
    with raw.cursor() as fresh:
        assert list(fresh) == [("in-first", b"1")]


# ---------------------------------------------------------------- signals


def test_wait_returns_when_another_thread_signals(kt):
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(kt.wait("ready", timeout=10)))
    waiter.start()
    try:
        assert signal_until_woken(kt, "ready") == 1
    finally:
        waiter.join(15)
    assert results == [True]


def test_broadcast_wakes_every_waiter(kt):
    results: list[bool] = []
    lock = threading.Lock()

    def wait() -> None:
        ok = kt.wait(b"all", timeout=10)
        with lock:
            results.append(ok)

    waiters = [threading.Thread(target=wait) for _ in range(3)]
    for t in waiters:
        t.start()
    try:
        # a broadcast wakes whoever waits now; repeat until all three were caught
        deadline = time.monotonic() + 5
        woken = 0
        while woken < 3 and time.monotonic() < deadline:
            woken += kt.signal(b"all", broadcast=True)
    finally:
        for t in waiters:
            t.join(15)
    assert woken == 3
    assert results == [True, True, True]


def test_wait_times_out_and_signal_without_waiters_wakes_nobody(kt):
    started = time.monotonic()
    assert kt.wait("never", timeout=0.2) is False
    assert 0.15 <= time.monotonic() - started < 5
    assert kt.signal("nobody") == 0
    assert kt.void() is True  # the connection is still usable after the 503


@pytest.mark.parametrize("timeout", [0, -1, float("nan")])
def test_wait_refuses_a_timeout_the_server_would_read_as_30_seconds(kt, timeout):
    started = time.monotonic()
    with pytest.raises(ValueError):
        kt.wait("x", timeout=timeout)
    assert time.monotonic() - started < 1


def test_signal_and_wait_ride_on_any_procedure(raw, srv):
    """ktserver handles WAIT before and SIGNAL after every procedure, as the transcripts show for set/get."""
    assert raw.rpc("set", {"SIGNAL": "sig", "key": "s", "value": "1"}) == {b"SIGNALED": b"0"}
    assert stored_value(srv, "s") == b"1"
    with pytest.raises(ServerError) as info:
        raw.rpc("get", {"WAIT": "never", "WAITTIME": "0.2", "key": "s"})
    assert (info.value.status, info.value.message) == (503, "the condition timed out")


# ---------------------------------------------------------------- errors


def test_server_errors_carry_status_message_and_procedure(raw):
    with pytest.raises(NoRecord) as info:
        raw.rpc("get", {"key": "missing"})
    err = info.value
    assert (err.status, err.message, err.procedure) == (450, "DB: 7: no record: no record", "get")
    assert str(err) == "get: 450 DB: 7: no record: no record"
    with pytest.raises(InvalidParameters) as bad:
        raw.rpc("get", {})
    assert (bad.value.status, bad.value.message) == (400, "invalid parameters")
    with pytest.raises(NotImplementedByServer) as unknown:
        raw.rpc("no_such_procedure")
    assert unknown.value.status == 501


def test_client_refuses_wrong_arguments_before_asking(srv, raw):
    with pytest.raises(TypeError):
        raw.get(123)
    with pytest.raises(TypeError):
        raw.set("k", b"v", expire="soon")
    with pytest.raises(ValueError):
        raw.get("k", db=-1)
    assert stored_keys(srv) == []


def test_closed_client_raises_instead_of_reconnecting(srv):
    client = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    with pytest.raises(KyotoTycoonException):
        client.get("k")
    with client.connect(srv.host, srv.port, timeout=5) as open_client:
        assert open_client.set("k", b"v") is True
    with pytest.raises(KyotoTycoonException):
        client.get("k")


# ---------------------------------------------------------------- threads


OPS_PER_THREAD = 500
THREADS = 8


def _mixed_ops(client: KyotoTycoon, tid: int, use_binary: bool) -> dict[str, bytes]:
    """500 operations on keys of this thread only; every answer is checked against a local model."""
    model: dict[str, bytes] = {}
    counter = 0
    for i in range(OPS_PER_THREAD):
        key = f"t{tid}-{i % 7}"
        op = i % 5
        if op == 0:
            value = f"{tid}:{i}".encode()
            assert client.set(key, value) is True
            model[key] = value
        elif op == 1:
            assert client.get(key) == model.get(key), (tid, i)
        elif op == 2:
            keys = [f"t{tid}-{j}" for j in range(7)]
            assert client.get_bulk(keys) == {k: model[k] for k in keys if k in model}, (tid, i)
        elif op == 3:
            assert client.remove(key) is (key in model), (tid, i)
            model.pop(key, None)
        elif use_binary:
            assert client.set_bulk({key: b"bulk%d" % i}) == 1
            model[key] = b"bulk%d" % i
        else:
            counter += 1
            assert client.increment(f"t{tid}-count", 1) == counter, (tid, i)
            model[f"t{tid}-count"] = struct.pack(">q", counter)
    return model


@pytest.mark.parametrize("use_binary", [False, True], ids=["http", "binary"])
def test_eight_threads_share_one_client_without_crossed_answers(srv, connect, use_binary):
    client = connect(binary=use_binary, pack_type=KT_PACKER_BYTES)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(_mixed_ops, client, tid, use_binary) for tid in range(THREADS)]
        models = [f.result(timeout=60) for f in futures]
    expected = {k.encode(): v for model in models for k, v in model.items()}
    on_server = srv.items(0)
    assert on_server == expected
