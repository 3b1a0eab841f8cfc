"""``db=`` reaches the database it names, whatever column encoding the request body needs.

ktserver merges the URL's query string into the body's parameter map and then
decodes the whole map with the body's ``colenc``: a ``?DB=1`` under
``colenc=B`` named no database and the request landed in database 0. The
embedded server reproduces that rule (``test_query_db_*`` below pin it, as
recorded from Kyoto Tycoon 0.9.56b), so these tests fail for a client that
puts ``DB`` in the URL. With ``KYOTOTYCOON_TEST_KTSERVER`` they run on a real
server too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest
from async_facade import LoopThread, client
from oracle import Target, start_target
from server_fixtures import Wire

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon
from kyototycoon.client import wire
from kyototycoon.protocol import tsv

# a key and a value whose request body goes raw, URL-encoded and Base64-encoded
ENCODINGS = {
    None: ("k-raw", b"v" * 50),
    "U": ("k-url\x01", b"mostly text, one control byte \x01" * 3),
    "B": ("k\x01", b"\x00\x01\xff" * 50),
}
DATABASES = [1, "second"]


@pytest.fixture(scope="module")
def srv(target_kind: str) -> Iterator[Target]:
    with start_target(target_kind, ["first", "second"]) as server:
        yield server


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.stop()


@pytest.fixture(params=["sync", "async"])
def kt(srv: Target, request: pytest.FixtureRequest, loop_thread: LoopThread) -> Iterator[KyotoTycoon]:
    """The blocking client, and the asyncio one behind a blocking facade."""
    srv.clear()
    kt = client(request.param, loop_thread, pack_type=KT_PACKER_BYTES)
    kt.open(srv.host, srv.port, timeout=10)
    yield kt
    kt.close()


def in_db(srv: Target, db: int | str) -> dict[bytes, bytes]:
    return srv.items(db)


@pytest.mark.parametrize("colenc", list(ENCODINGS))
def test_the_values_force_each_encoding(colenc: str | None) -> None:
    key, value = ENCODINGS[colenc]
    _, ctype = wire.encode_tsv([(b"key", key.encode()), (b"value", value), (b"DB", b"1")])
    assert tsv.parse_content_type(ctype)[1] == colenc


def _put(srv: Target, db: int | str, records: dict[bytes, bytes]) -> None:
    srv.put(records, db)


Call = Callable[[KyotoTycoon, str, bytes, Any], Any]
WRITES: dict[str, tuple[bool, Call, Callable[[bytes, bytes], Any]]] = {
    # name: (record exists before, the call, what the database holds after)
    "set": (False, lambda kt, k, v, db: kt.set(k, v, db=db), lambda k, v: {k: v}),
    "add": (False, lambda kt, k, v, db: kt.add(k, v, db=db), lambda k, v: {k: v}),
    "replace": (True, lambda kt, k, v, db: kt.replace(k, v + b"!", db=db), lambda k, v: {k: v + b"!"}),
    "append": (True, lambda kt, k, v, db: kt.append(k, b"+", db=db), lambda k, v: {k: v + b"+"}),
    "cas": (True, lambda kt, k, v, db: kt.cas(k, v, b"new", db=db), lambda k, v: {k: b"new"}),
    "seize": (True, lambda kt, k, v, db: kt.seize(k, db=db), lambda k, v: {}),
    "remove": (True, lambda kt, k, v, db: kt.remove(k, db=db), lambda k, v: {}),
    "set_bulk": (False, lambda kt, k, v, db: kt.set_bulk({k: v, "other": v}, db=db),
                 lambda k, v: {k: v, b"other": v}),
    "remove_bulk": (True, lambda kt, k, v, db: kt.remove_bulk([k], db=db), lambda k, v: {}),
    "clear": (True, lambda kt, k, v, db: kt.clear(db=db), lambda k, v: {}),
}


@pytest.mark.parametrize("colenc", list(ENCODINGS))
@pytest.mark.parametrize("db", DATABASES)
@pytest.mark.parametrize("method", list(WRITES))
def test_writes_land_in_the_named_database(srv, kt, method, db, colenc):
    key, value = ENCODINGS[colenc]
    exists, call, after = WRITES[method]
    k = key.encode()
    if exists:
        _put(srv, db, {k: value})
    _put(srv, 0, {b"keep": b"db0"})
    call(kt, key, value, db)
    assert in_db(srv, db) == after(k, value)
    assert in_db(srv, 0) == {b"keep": b"db0"}


READS: dict[str, tuple[Call, Callable[[str, bytes], Any]]] = {
    "get": (lambda kt, k, v, db: kt.get(k, db=db), lambda k, v: v),
    "get_with_expire": (lambda kt, k, v, db: kt.get_with_expire(k, db=db), lambda k, v: (v, None)),
    "check": (lambda kt, k, v, db: kt.check(k, db=db), lambda k, v: True),
    "get_bulk": (lambda kt, k, v, db: kt.get_bulk([k, "nope"], db=db), lambda k, v: {k: v}),
    "match_prefix": (lambda kt, k, v, db: kt.match_prefix(k[:3], db=db), lambda k, v: [k]),
    "match_regex": (lambda kt, k, v, db: kt.match_regex("^" + k[:3], db=db), lambda k, v: [k]),
    "match_similar": (lambda kt, k, v, db: kt.match_similar(k, 0, db=db), lambda k, v: [k]),
    "count": (lambda kt, k, v, db: kt.count(db=db), lambda k, v: 1),
    "status": (lambda kt, k, v, db: kt.status(db=db)["count"], lambda k, v: "1"),
}


@pytest.mark.parametrize("colenc", list(ENCODINGS))
@pytest.mark.parametrize("db", DATABASES)
@pytest.mark.parametrize("method", list(READS))
def test_reads_see_the_named_database(srv, kt, method, db, colenc):
    key, value = ENCODINGS[colenc]
    call, expected = READS[method]
    _put(srv, db, {key.encode(): value})
    # database 0 holds the same key with another value and more records: a read of it shows
    _put(srv, 0, {key.encode(): b"from db0", key.encode() + b"2": b"x", b"zz": b"y"})
    assert call(kt, key, value, db) == expected(key, value)


@pytest.mark.parametrize("db", DATABASES)
def test_increments_and_cursors_use_the_named_database(srv, kt, db):
    assert kt.increment("n\x01", 5, db=db) == 5
    assert kt.increment_double(b"d\x00\xff", 1.5, db=db) == 1.5
    assert set(in_db(srv, db)) == {b"n\x01", b"d\x00\xff"} and in_db(srv, 0) == {}
    _put(srv, 0, {b"a": b"0"})
    _put(srv, db, {b"b\x01": b"\x00\xff" * 40})
    with kt.cursor() as cur:
        assert cur.jump(b"b\x01", db=db)
        assert cur.get() == ("b\x01", b"\x00\xff" * 40)


def test_the_issue_example(srv, kt):
    kt.set("k\x01", b"\x00\x01\xff" * 50, db=1)
    kt.set_bulk({"a\tb": b"\x00\x01\xff" * 50}, db=1)
    assert in_db(srv, 1) == {b"k\x01": b"\x00\x01\xff" * 50, b"a\tb": b"\x00\x01\xff" * 50}
    assert in_db(srv, 0) == {}
    assert kt.get_bulk(["k\x01", "a\tb"], db=1) == {"k\x01": b"\x00\x01\xff" * 50,
                                                     "a\tb": b"\x00\x01\xff" * 50}
    assert kt.match_prefix("a\t", db=1) == ["a\tb"]
    assert kt.remove_bulk(["k\x01", "a\tb"], db=1) == 2
    assert kt.seize("k\x01", db=1) is None and in_db(srv, 1) == {}


def test_raw_rpc_db_goes_in_the_body(srv, kt):
    kt.rpc("set", {"key": "r", "value": b"\x00\xff"}, db=1)
    assert in_db(srv, 1) == {b"r": b"\x00\xff"} and in_db(srv, 0) == {}


# ---------------------------------------------------------------- the server's rule


def _raw_rpc(srv: Target, target: bytes, body: bytes, colenc: str | None) -> tuple[int, bytes]:
    with Wire(srv.host, srv.port) as conn:
        resp = conn.request("POST", target, [(b"Content-Type", tsv.content_type(colenc))], body)
        return resp.status, resp.body


@pytest.mark.parametrize("colenc", ["B", "U", "Q", None])
def test_query_db_is_decoded_with_the_body_encoding(srv, kt, colenc):
    """``?DB=1``: read literally with a raw body; base64-decoded (to no database name) under B."""
    pairs = [(b"key", b"q"), (b"value", b"v")]
    body, _ = tsv.encode_records(pairs, colenc)
    status, _ = _raw_rpc(srv, b"/rpc/set?DB=1", body, colenc)
    assert status == 200
    landed = 0 if colenc == "B" else 1
    assert in_db(srv, landed) == {b"q": b"v"}
    assert in_db(srv, 1 - landed) == {}
