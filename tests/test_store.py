"""Tests for the embedded server's storage engine (kyototycoon.server.store).

The strongest checks replay the recorded rpc/* transcripts through a tiny
TSV-RPC driver written here and compare status and decoded answer with what
the real Kyoto Tycoon 0.9.56b sent; the driver also documents what the
protocol handlers must add on top of the store (``_`` prefixes, ``num``,
``%f``, ``xt`` only when the record expires).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import quopri
import struct
import time
from pathlib import Path
from urllib.parse import parse_qsl, unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kyototycoon import errors
from kyototycoon.server import store as store_mod
from kyototycoon.server.store import (
    OP_CLEAR,
    OP_REMOVE,
    OP_SET,
    XT_MAX,
    LogRecord,
    SnapshotError,
    Store,
    absolute_xt,
    decode_double,
    encode_double,
    encode_int,
    levenshtein,
    next_log_ts,
)

TRANSCRIPT = Path(__file__).resolve().parent / "conformance" / "ktserver-0.9.56b.jsonl"
RECORDED_AT = 1795836053.0  # the transcripts' Date header: Sat, 28 Nov 2026 03:20:53 GMT
XT_2100 = 4102444800


class FakeClock:
    """Injected clock: tests move time by assigning ``now``; nothing sleeps."""

    def __init__(self, now: float = RECORDED_AT):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_store(clock: FakeClock | None = None, **kw) -> Store:
    return Store(["%", "%"], clock=clock or FakeClock(), **kw)


# --------------------------------------------------------------------------- transcript access


def _cases() -> dict[str, dict]:
    out = {}
    with TRANSCRIPT.open() as f:
        for line in f:
            obj = json.loads(line)
            if "case" in obj:
                out[obj["case"]] = obj
    return out


CASES = _cases()


def _steps(name: str) -> list[tuple[bytes, bytes]]:
    return [(base64.b64decode(s["send"]), base64.b64decode(s["recv"])) for s in CASES[name]["steps"]]


def _split_http(raw: bytes) -> tuple[bytes, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return first.encode(), headers, body


def _decode_col(data: str | bytes, colenc: str | None) -> bytes:
    raw = data.encode("latin-1") if isinstance(data, str) else data
    if colenc == "B":
        return base64.b64decode(raw)
    if colenc == "U":
        return unquote_to_bytes(raw)
    if colenc == "Q":
        return quopri.decodestring(raw)
    return raw


def _tsv(body: bytes, content_type: str) -> dict[bytes, bytes]:
    colenc = content_type.split("colenc=")[1].strip() if "colenc=" in content_type else None
    out = {}
    for line in body.split(b"\n"):
        if line:
            k, _, v = line.partition(b"\t")
            out[_decode_col(k, colenc)] = _decode_col(v, colenc)
    return out


# --------------------------------------------------------------------------- a tiny TSV-RPC driver


class Driver:
    """Just enough of ktserver's RPC/REST layer to replay transcripts against a Store."""

    def __init__(self, store: Store):
        self.store = store
        self.cursors: dict[bytes, store_mod.Cursor] = {}

    def request(self, raw: bytes) -> tuple[int, dict[bytes, bytes] | bytes]:
        first, headers, body = _split_http(raw)
        method, target, _ = first.decode().split(" ")
        path, _, query = target.partition("?")
        if not path.startswith("/rpc/"):
            assert method == "GET"  # REST: only what rest/int needs
            try:
                return 200, self.store.resolve(None).get(unquote_to_bytes(path[1:]))[0]
            except errors.NoRecord:
                return 404, b""
        params = _tsv(body, headers.get("content-type", ""))
        for k, v in parse_qsl(query):
            params[k.encode()] = v.encode()
        try:
            return 200, self.call(path[5:], params)
        except errors.ServerError as exc:
            return exc.status or 0, {b"ERROR": exc.message.encode()}

    def call(self, proc: str, p: dict[bytes, bytes]) -> dict[bytes, bytes]:
        db = self.store.resolve(p.get(b"DB"))
        key = p.get(b"key")
        xt = int(p[b"xt"]) if b"xt" in p else None
        out: dict[bytes, bytes] = {}

        def with_xt(value: bytes, rec_xt: int) -> dict[bytes, bytes]:
            # ktserver shows xt only for records that expire
            res = {b"value": value}
            if rec_xt < XT_MAX:
                res[b"xt"] = str(rec_xt).encode()
            return res

        def listed(keys: list[bytes]) -> dict[bytes, bytes]:
            res = {b"_" + k: str(i).encode() for i, k in enumerate(keys)}
            res[b"num"] = str(len(keys)).encode()
            return res

        def records() -> dict[bytes, bytes]:
            return {k[1:]: v for k, v in p.items() if k.startswith(b"_")}

        cur_id = p.get(b"CUR")
        step = b"step" in p
        if proc == "set":
            db.set(key, p[b"value"], xt)
        elif proc in ("add", "replace", "append"):
            getattr(db, proc)(key, p[b"value"], xt)
        elif proc == "get":
            out = with_xt(*db.get(key))
        elif proc == "check":
            vsiz, rec_xt = db.check(key)
            out = with_xt(b"", rec_xt)
            out[b"vsiz"] = str(vsiz).encode()
            del out[b"value"]
        elif proc == "seize":
            out = with_xt(*db.seize(key))
        elif proc == "remove":
            db.remove(key)
        elif proc == "increment":
            out = {b"num": str(db.increment(key, int(p[b"num"]), p.get(b"orig"), xt)).encode()}
        elif proc == "increment_double":
            out = {b"num": b"%f" % db.increment_double(key, float(p[b"num"]), p.get(b"orig"), xt)}
        elif proc == "cas":
            db.cas(key, p.get(b"oval"), p.get(b"nval"), xt)
        elif proc == "set_bulk":
            out = {b"num": str(db.set_bulk(records(), xt)).encode()}
        elif proc == "get_bulk":
            found = db.get_bulk(records())
            out = {b"_" + k: v for k, (v, _xt) in found.items()}
            out[b"num"] = str(len(found)).encode()
        elif proc == "remove_bulk":
            out = {b"num": str(db.remove_bulk(records())).encode()}
        elif proc == "match_prefix":
            out = listed(db.match_prefix(p[b"prefix"], int(p.get(b"max", -1))))
        elif proc == "match_regex":
            out = listed(db.match_regex(p[b"regex"], int(p.get(b"max", -1))))
        elif proc == "match_similar":
            out = listed(db.match_similar(p[b"origin"], int(p.get(b"range", 1)), b"utf" in p,
                                          int(p.get(b"max", -1))))
        elif proc == "clear":
            db.clear()
        elif proc == "vacuum":
            db.vacuum(int(p[b"step"]) if b"step" in p else None)
        elif proc in ("synchronize", "void"):
            pass
        elif proc == "status":
            out = {k.encode(): v.encode() for k, v in db.status().items()}
        elif proc == "cur_delete":
            self.cursors.pop(cur_id, None)
        elif proc.startswith("cur_"):
            cur = self.cursors.get(cur_id)
            if cur is None:
                cur = self.cursors[cur_id] = db.cursor()
            if proc == "cur_jump":
                cur.jump(key)
            elif proc == "cur_jump_back":
                cur.jump_back(key)
            elif proc == "cur_step":
                cur.step()
            elif proc == "cur_step_back":
                cur.step_back()
            elif proc == "cur_set_value":
                cur.set_value(p[b"value"], xt, step)
            elif proc == "cur_remove":
                cur.remove()
            elif proc == "cur_get_key":
                out = {b"key": cur.get_key(step)}
            elif proc == "cur_get_value":
                out = {b"value": cur.get_value(step)}
            elif proc in ("cur_get", "cur_seize"):
                k, v, rec_xt = cur.get(step) if proc == "cur_get" else cur.seize()
                out = {b"key": k, **with_xt(v, rec_xt)}
            else:
                raise AssertionError(proc)
        else:
            raise AssertionError(f"driver does not know {proc}")
        return out


REPLAYED = [
    "rpc/set-get", "rpc/set-get/colenc-U", "rpc/set-get/colenc-B",
    "rpc/set/xt", "rpc/add", "rpc/replace", "rpc/append", "rpc/increment", "rpc/increment_double",
    "rpc/cas", "rpc/remove", "rpc/check-seize", "rpc/bulk", "rpc/db-by-name-and-index",
    "rpc/vacuum-clear-sync", "rpc/match", "rpc/cursor", "rpc/status", "rest/int",
]


@pytest.mark.parametrize("case", REPLAYED)
def test_replay_transcript(case: str) -> None:
    driver = Driver(make_store())
    for i, (send, recv) in enumerate(_steps(case)):
        status, answer = driver.request(send)
        first, headers, body = _split_http(recv)
        expected_status = int(first.split(b" ")[1])
        assert status == expected_status, (case, i, send, answer)
        if case == "rest/int":
            if status == 200 and send.startswith(b"GET"):
                assert answer == body
            continue
        if "body" in CASES[case]["steps"][i].get("volatile", []):
            # values vary run to run; the keys do not
            assert set(answer) == set(_tsv(body, headers["content-type"])), (case, i)
            continue
        assert answer == _tsv(body, headers["content-type"]), (case, i, send)


def test_driver_catches_a_wrong_store() -> None:
    # The replay must be able to fail: a store whose get answers another value is caught.
    driver = Driver(make_store())
    send, recv = _steps("rpc/set-get")[0]
    driver.request(send)
    driver.store.resolve(0).set(b"japan", b"osaka")
    send, recv = _steps("rpc/set-get")[1]
    _first, headers, body = _split_http(recv)
    assert driver.request(send)[1] != _tsv(body, headers["content-type"])


# --------------------------------------------------------------------------- errors


def _err(fn, *args):
    with pytest.raises(errors.ServerError) as info:
        fn(*args)
    return type(info.value), info.value.status, info.value.message


NO_RECORD = (errors.NoRecord, 450, "DB: 7: no record: no record")
DUPLICATE = (errors.RecordExists, 450, "DB: 6: record duplication: record duplication")
LOGIC = (errors.LogicalInconsistency, 450, "DB: 8: logical inconsistency: logical inconsistency")
CONFLICT = (errors.LogicalInconsistency, 450, "DB: 8: logical inconsistency: status conflict")
NO_DB = (errors.NoSuchDatabase, 400, "no such database")

ERROR_TABLE = [
    ("get missing", lambda db: db.get(b"nope"), NO_RECORD),
    ("check missing", lambda db: db.check(b"nope"), NO_RECORD),
    ("seize missing", lambda db: db.seize(b"nope"), NO_RECORD),
    ("remove missing", lambda db: db.remove(b"nope"), NO_RECORD),
    ("replace missing", lambda db: db.replace(b"nope", b"v"), NO_RECORD),
    ("add existing", lambda db: db.add(b"k", b"v"), DUPLICATE),
    ("increment non-number", lambda db: db.increment(b"k", 1), LOGIC),
    ("increment set on non-number", lambda db: db.increment(b"k", 1, "set"), LOGIC),
    ("increment try missing", lambda db: db.increment(b"nope", 1, "try"), LOGIC),
    ("increment_double non-number", lambda db: db.increment_double(b"k", 1.0), LOGIC),
    ("increment_double try missing", lambda db: db.increment_double(b"nope", 1.0, "try"), LOGIC),
    ("increment_double nan", lambda db: db.increment_double(b"nope", math.nan), LOGIC),
    ("cas wrong old", lambda db: db.cas(b"k", b"x", b"y"), CONFLICT),
    ("cas create over existing", lambda db: db.cas(b"k", None, b"y"), CONFLICT),
    ("cas on missing", lambda db: db.cas(b"nope", b"x", b"y"), CONFLICT),
    ("cas remove existing w/o oval", lambda db: db.cas(b"k", None, None), CONFLICT),
    ("regex compile", lambda db: db.match_regex(b"("),
     (errors.LogicalInconsistency, 450, "DB: 8: logical inconsistency: compilation failed")),
    ("cursor unpositioned", lambda db: db.cursor().get(), NO_RECORD),
    ("cursor step unpositioned", lambda db: db.cursor().step(), NO_RECORD),
    ("cursor jump past end", lambda db: db.cursor().jump(b"zzz"), NO_RECORD),
    ("cursor jump_back before start", lambda db: db.cursor().jump_back(b"a"), NO_RECORD),
]


@pytest.mark.parametrize(("what", "op", "expected"), ERROR_TABLE, ids=[row[0] for row in ERROR_TABLE])
def test_error_texts(what, op, expected) -> None:
    db = make_store().resolve(0)
    db.set(b"k", b"value")
    assert _err(op, db) == expected
    assert db.get(b"k") == (b"value", XT_MAX)  # a failed operation changes nothing


@pytest.mark.parametrize("ref", [2, -1, "2", "9", "99999999999999999999", "-1", "nosuch", b"nosuch.kch"])
def test_resolve_unknown(ref) -> None:
    assert _err(make_store().resolve, ref) == NO_DB


def test_resolve_known() -> None:
    s = Store(["%", "casket.kch"], clock=FakeClock())
    refs = (None, "", 0, 1, "0", "1", b"1", "1x", "%", "casket.kch")
    assert [s.resolve(r).index for r in refs] == [0, 0, 0, 1, 0, 1, 1, 1, 0, 1]
    assert Store(["%", "%"]).resolve("%").index == 1  # a shared name: ktserver's map keeps the last


def test_error_classes_match_client_mapping() -> None:
    # What the store raises is what the client would build from the same answer.
    db = make_store().resolve(0)
    for op in (lambda: db.get(b"x"), lambda: db.cas(b"x", b"a", b"b"), lambda: db.match_regex(b"[")):
        with pytest.raises(errors.ServerError) as info:
            op()
        rebuilt = errors.server_error(info.value.status, info.value.message)
        assert type(rebuilt) is type(info.value)


# --------------------------------------------------------------------------- record operations


def test_set_add_replace_append_semantics() -> None:
    clock = FakeClock()
    db = make_store(clock).resolve(0)
    db.set(b"k", b"1", 100)
    assert db.get(b"k") == (b"1", int(clock.now) + 100)
    db.replace(b"k", b"2")  # replace also replaces the expiration
    assert db.get(b"k") == (b"2", XT_MAX)
    db.append(b"k", b"3", -XT_2100)
    assert db.get(b"k") == (b"23", XT_2100)
    db.append(b"new", b"x")
    assert db.get(b"new") == (b"x", XT_MAX)
    db.add(b"other", b"o")
    assert db.check(b"other") == (1, XT_MAX)
    assert db.seize(b"other") == (b"o", XT_MAX)
    assert b"other" not in db
    assert db.count() == 2


def test_cas_forms() -> None:
    db = make_store().resolve(0)
    db.cas(b"c", None, b"v1")  # create when missing
    db.cas(b"c", b"v1", b"v2", -XT_2100)  # swap, with an expiration
    assert db.get(b"c") == (b"v2", XT_2100)
    db.cas(b"c", b"v2", None)  # remove
    assert b"c" not in db
    db.cas(b"c", None, None)  # "must be missing", nothing to do
    assert db.count() == 0


def test_increment_bytes_match_transcripts() -> None:
    db = make_store().resolve(0)
    assert db.increment(b"n", 5) == 5
    assert db.increment(b"n", -7) == -2
    # rpc/increment: a get shows the 8-byte big-endian two's complement
    assert db.get(b"n")[0] == b"\xff\xff\xff\xff\xff\xff\xff\xfe"
    assert db.increment(b"cnt", 258) == 258
    # rest/int: the raw bytes of 258
    rest_body = _split_http(_steps("rest/int")[1][1])[2]
    assert db.get(b"cnt")[0] == rest_body == encode_int(258)
    assert db.increment(b"n3", 1, "set") == 1
    assert db.increment(b"n", 1, "set") == 1
    assert db.increment(b"n", 0) == 1
    assert db.increment(b"fresh", 2, 40) == 42
    assert db.increment(b"big", 1, (1 << 63) - 2) == (1 << 63) - 1


def test_increment_wraps_like_int64() -> None:
    db = make_store().resolve(0)
    db.set(b"w", encode_int((1 << 63) - 1))
    assert _err(db.increment, b"w", 1) == LOGIC  # wraps to INT64_MIN, the failure marker
    assert db.get(b"w")[0] == encode_int((1 << 63) - 1)
    assert db.increment(b"w", 2) == -(1 << 63) + 1


def test_increment_zero_only_reads() -> None:
    s = make_store()
    db = s.resolve(0)
    db.increment(b"n", 7, xt=-XT_2100)
    before = s.log_count()
    assert db.increment(b"n", 0) == 7
    assert s.log_count() == before
    assert db.get(b"n") == (encode_int(7), XT_2100)  # xt untouched
    assert db.increment(b"n", 1) == 8
    assert db.get(b"n")[1] == XT_MAX  # a write sets the request's xt


def _transcript_double_bytes() -> bytes:
    _first, headers, body = _split_http(_steps("rpc/increment_double")[2][1])
    return _tsv(body, headers["content-type"])[b"value"]


def test_increment_double_bytes_match_transcript() -> None:
    db = make_store().resolve(0)
    assert db.increment_double(b"d", 1.5) == 1.5
    assert db.increment_double(b"d", -0.25) == 1.25
    assert db.get(b"d")[0] == _transcript_double_bytes()
    assert db.get(b"d")[0] == struct.pack(">qq", 1, 250_000_000_000_000)
    assert db.increment_double(b"d", 1, "set") == 1.0
    assert db.get(b"d")[0] == struct.pack(">qq", 1, 0)


DOUBLE_TABLE = [
    # (steps, stored integer part, stored fraction * 10^15, returned value of the last step)
    ([1.5], 1, 500_000_000_000_000, 1.5),
    ([-1.5], -1, -500_000_000_000_000, -1.5),
    ([0.75, 0.5], 1, 250_000_000_000_000, 1.25),  # 0.75 + 0.5 carries into the integer part
    ([0.5, 0.5], 1, 0, 1.0),  # a fraction reaching exactly 10^15 carries too
    ([0.3], 0, 299_999_999_999_999, 0.3),  # 0.3 is 0.2999... in binary: truncated, not rounded
    ([-0.25, 0.5], 0, 250_000_000_000_000, 0.25),
    ([2.0, -0.5], 2, -500_000_000_000_000, 1.5),  # the fraction keeps its own sign
    ([math.inf], (1 << 63) - 1, 0, math.inf),
]


@pytest.mark.parametrize(("steps", "integ", "fract", "last"), DOUBLE_TABLE)
def test_increment_double_arithmetic(steps, integ, fract, last) -> None:
    db = make_store().resolve(0)
    for num in steps:
        result = db.increment_double(b"d", num)
    assert struct.unpack(">qq", db.get(b"d")[0]) == (integ, fract)
    assert result == pytest.approx(last)
    assert decode_double(db.get(b"d")[0]) == pytest.approx(last)


def test_encode_double_and_orig() -> None:
    assert encode_double(1.25) == struct.pack(">qq", 1, 250_000_000_000_000)
    db = make_store().resolve(0)
    assert db.increment_double(b"o", 1.0, 2.5) == 3.5
    assert db.increment_double(b"o", 0.0) == 3.5  # reads without writing
    assert db.increment_double(b"t", 1.0, "set") == 1.0


def test_bulk_operations() -> None:
    clock = FakeClock()
    db = make_store(clock).resolve(0)
    assert db.set_bulk({b"a": b"1", b"b": b"2"}) == 2
    assert db.set_bulk([(b"c", b"3")], xt=10, atomic=False) == 1
    assert db.get_bulk([b"c", b"zz", b"a"]) == {b"c": (b"3", int(clock.now) + 10), b"a": (b"1", XT_MAX)}
    assert list(db.get_bulk([b"c", b"a"])) == [b"c", b"a"]  # request order
    assert db.remove_bulk([b"a", b"zz", b"c"]) == 2
    assert [k for k, _v, _x in db.items()] == [b"b"]


# --------------------------------------------------------------------------- expiration


XT_TABLE = [
    (None, XT_MAX),
    (0, 1000),
    (10, 1010),
    (-5, 5),
    (-XT_2100, XT_2100),
    ((1 << 63) - 1, XT_MAX),  # the binary protocol's "no expiration"
    (XT_MAX, XT_MAX),
    (-(1 << 62), XT_MAX),
]


@pytest.mark.parametrize(("xt", "absolute"), XT_TABLE)
def test_absolute_xt(xt, absolute) -> None:
    assert absolute_xt(xt, 1000.7) == absolute


def test_expiration_with_fake_clock() -> None:
    clock = FakeClock(1000.0)
    s = make_store(clock)
    db = s.resolve(0)
    db.set(b"short", b"s", 10)
    db.set(b"long", b"l", 20)
    db.set(b"never", b"n")
    cur = db.cursor()
    cur.jump(b"s")
    clock.now = 1010.9  # xt == now: still alive (expired only once now > xt)
    assert db.get(b"short") == (b"s", 1010)
    logged = s.log_count()
    clock.now = 1011.0
    assert _err(db.get, b"short") == NO_RECORD
    # as on ktserver, the expired record stays until purged: count and match_* still see it
    assert db.count() == 3
    assert db.match_prefix(b"") == [b"long", b"never", b"short"]
    assert _err(cur.get_key) == NO_RECORD  # a cursor steps over it (here off the end)
    cur.jump()
    clock.now = 5000.0
    assert cur.get_key() == b"never"
    assert db.items() == [(b"never", b"n", XT_MAX)]
    assert db.vacuum() == 2
    assert db.count() == 1
    assert s.log_count() == logged  # purges are not logged
    db.set(b"old", b"o", -1)
    assert _err(db.remove, b"old") == NO_RECORD
    assert db.count() == 1  # but remove takes an expired record away (and logs it), as ktserver's
    db.set(b"gone", b"g", -1)  # expired at once
    db.add(b"gone", b"again")  # an expired record does not block add
    # a B+ tree's cusage: 8 + (key + value + 13) a record, the purged ones gone
    assert db.status()["cusage"] == str(8 + len(b"never" + b"n" + b"gone" + b"again") + 2 * 13)


def test_expired_records_are_purged_by_the_score_of_operations() -> None:
    """kttimeddb.h: a write scores 256, a read 32; at 2048 the purge cursor visits score // 256 records."""
    db = make_store(FakeClock(1000.0)).resolve(0)
    for i in range(10):
        db.set(b"k%d" % i, b"v", -1)  # expired at once; the 8th write starts the purge cursor
    assert db.count() == 10
    for _ in range(6):
        assert _err(db.get, b"k0") == NO_RECORD
    for _ in range(5):
        db.set(b"z", b"v")
    assert db.count() == 11  # 512 + 6 * 32 + 5 * 256 = 1984
    db.set(b"z", b"v")  # 2240: eight records visited from the first, all expired
    assert db.count() == 3
    assert db.match_prefix(b"k") == [b"k8", b"k9"]


def test_vacuum_step() -> None:
    clock = FakeClock(1000.0)
    s = make_store(clock)
    db = s.resolve(0)
    for i in range(5):
        db.set(b"k%d" % i, b"v", i + 1)  # 1280
    clock.now = 2000.0
    assert db.vacuum(2) == 0  # 1792: below the threshold
    assert db.vacuum(2) == 0  # 2304: the purge cursor, unpositioned, goes to the first record
    assert db.vacuum(8) == 5  # 8 steps: every record, expired
    assert db.vacuum() == 0
    assert len(db) == 0


# --------------------------------------------------------------------------- cursors


def test_cursor_walks_both_ways() -> None:
    db = make_store().resolve(0)
    keys = [b"a", b"b", b"c", b"d"]
    db.set_bulk({k: k.upper() for k in keys})
    cur = db.cursor()
    cur.jump()
    seen = []
    while True:
        try:
            seen.append(cur.get_key(step=True))
        except errors.NoRecord:
            break
    assert seen == keys
    assert not cur.valid
    cur.jump_back()
    back = [cur.get_key()]
    with pytest.raises(errors.NoRecord):
        while True:
            cur.step_back()
            back.append(cur.get_key())
    assert back == keys[::-1]


def test_cursor_survives_concurrent_changes() -> None:
    db = make_store().resolve(0)
    db.set_bulk({b"a": b"1", b"c": b"3", b"e": b"5"})
    cur = db.cursor()
    cur.jump_back(b"c")
    assert cur.get_key() == b"c"  # jump_back to an existing key lands on it
    cur.jump(b"b")
    assert cur.get_key() == b"c"  # jump to a missing key lands on the next one
    db.remove(b"c")  # removed under the cursor by someone else
    assert cur.get() == (b"e", b"5", XT_MAX)
    db.set(b"d", b"4")  # inserted before the cursor's record
    cur.step_back()
    assert cur.get_key() == b"d"
    db.clear()
    assert not cur.valid
    assert _err(cur.get) == NO_RECORD


def test_cursor_edits() -> None:
    clock = FakeClock()
    s = make_store(clock)
    db = s.resolve(0)
    db.set_bulk({b"a": b"1", b"b": b"2", b"c": b"3"})
    cur = db.cursor()
    cur.jump()
    cur.set_value(b"one", 50, step=True)
    assert db.get(b"a") == (b"one", int(clock.now) + 50)
    assert cur.seize() == (b"b", b"2", XT_MAX)
    db.set(b"bb", b"inserted")  # the cursor already moved on to "c": it does not see "bb"
    assert cur.get_value() == b"3"
    db.set(b"d", b"4")
    cur.remove()  # removes "c"; the cursor moves on to "d" ...
    db.set(b"cc", b"inserted")
    assert cur.get_key() == b"d"  # ... so a key inserted where "c" was stays behind it
    cur.remove()
    assert not cur.valid
    tail = [(r.op, r.key) for r in s.read_log(0)[-7:]]
    assert tail == [(OP_SET, b"a"), (OP_REMOVE, b"b"), (OP_SET, b"bb"), (OP_SET, b"d"),
                    (OP_REMOVE, b"c"), (OP_SET, b"cc"), (OP_REMOVE, b"d")]


# --------------------------------------------------------------------------- matching


def test_match_similar_order_and_max() -> None:
    db = make_store().resolve(0)
    db.set_bulk({k: b"" for k in (b"abc", b"abd", b"xbc", b"ab", b"abcd", b"zzz", b"abc")})
    assert db.match_similar(b"abc", 1) == [b"abc", b"ab", b"abcd", b"abd", b"xbc"]
    assert db.match_similar(b"abc", 1, max=2) == [b"abc", b"ab"]
    assert db.match_similar(b"abc", 0) == [b"abc"]
    assert db.match_similar(b"abc", 1, max=0) == []


def test_match_similar_utf_counts_code_points() -> None:
    db = make_store().resolve(0)
    sun, moon = "日".encode(), "月".encode()
    db.set(moon, b"")
    assert levenshtein(sun, moon) == 2
    assert db.match_similar(sun, 1) == []
    assert db.match_similar(sun, 1, utf=True) == [moon]


def test_levenshtein() -> None:
    assert levenshtein(b"kitten", b"sitting") == 3
    assert levenshtein(b"", b"abc") == 3
    assert levenshtein(b"abcdef", b"zzzzzz", bound=2) == 3


def test_match_prefix_and_regex() -> None:
    db = make_store().resolve(0)
    db.set_bulk({b"ap\x00x": b"", b"apple": b"", b"b": b"", b"ap": b""})
    assert db.match_prefix(b"ap") == [b"ap", b"ap\x00x", b"apple"]
    assert db.match_prefix(b"ap", 1) == [b"ap"]
    assert db.match_regex(b"p+l") == [b"apple"]
    assert db.match_regex(b"^a", max=2) == [b"ap", b"ap\x00x"]


@pytest.mark.parametrize("pattern", [rb"(a|aa)+$", rb"(a+)+$"])
def test_hostile_regex_is_bounded(pattern: bytes) -> None:
    db = make_store().resolve(0)
    db.set(b"a" * 60 + b"b", b"")
    db.set(b"a" * 61 + b"!", b"")
    started = time.monotonic()
    try:
        assert db.match_regex(pattern, timeout=0.2) == []
    except errors.LogicalInconsistency as exc:
        assert exc.message == "DB: 8: logical inconsistency: regular expression timed out"
    assert time.monotonic() - started < 2.0


def test_catastrophic_regex_raises() -> None:
    db = make_store().resolve(0)
    db.set(b"a" * 60 + b"!", b"")
    with pytest.raises(errors.LogicalInconsistency, match="timed out"):
        db.match_regex(rb"(a|aa)+$", timeout=0.1)


# --------------------------------------------------------------------------- update log


def _varnum(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def _message(rec: LogRecord) -> bytes:
    head = struct.pack(">HHB", rec.sid, rec.db, rec.op)
    if rec.op == OP_SET:
        return head + _varnum(len(rec.key)) + _varnum(len(rec.value)) + rec.key + rec.value
    if rec.op == OP_REMOVE:
        return head + _varnum(len(rec.key)) + rec.key
    return head


def _stream_frames(data: bytes) -> list[tuple[int, bytes]]:
    frames, pos = [], 1  # skip the hello byte
    while pos < len(data) and data[pos] == 0xB1:
        ts, size = struct.unpack_from(">QI", data, pos + 1)
        frames.append((ts, data[pos + 13:pos + 13 + size]))
        pos += 13 + size
    return frames


def _apply_binary_set_bulk(s: Store, req: bytes) -> None:
    (count,) = struct.unpack_from(">I", req, 5)
    pos = 9
    for _ in range(count):
        db, ksiz, vsiz, xt = struct.unpack_from(">HIIq", req, pos)
        pos += 18
        key, value = req[pos:pos + ksiz], req[pos + ksiz:pos + ksiz + vsiz]
        pos += ksiz + vsiz
        s.resolve(db).set(key, value, xt)


def test_update_log_matches_repl_stream() -> None:
    case = CASES["repl/stream"]
    s = make_store(sid=1)
    driver = Driver(s)
    for update in case["updates"]:
        raw = base64.b64decode(update)
        if raw[0] == 0xB8:
            _apply_binary_set_bulk(s, raw)
        else:
            assert driver.request(raw)[0] == 200
    recorded = _stream_frames(base64.b64decode(case["steps"][0]["recv"]))
    ours = s.read_log(0)
    assert [_message(r) for r in ours] == [m for _ts, m in recorded]
    assert [(r.op, r.db) for r in ours][-2:] == [(OP_CLEAR, 1), (OP_SET, 0)]
    # the recorded timestamps follow the same ms * 10^6 + counter pattern
    for (ts_a, _), (ts_b, _) in zip(recorded, recorded[1:]):
        assert ts_b > ts_a
        assert ts_b == ts_a + 1 or ts_b % 1_000_000 == 0


def test_log_timestamps() -> None:
    clock = FakeClock(1795836059.749)
    s = make_store(clock)
    db = s.resolve(0)
    for i in range(3):
        db.set(b"k%d" % i, b"v")
    clock.now = 1795836060.0
    db.clear()
    db.remove_bulk([b"none"])  # nothing removed, logged all the same (as ktserver logs it)
    clock.now = 1795836000.0  # the clock goes backwards
    db.set(b"late", b"v")
    clock.now = 1795836060.0  # and returns to the same millisecond
    db.set(b"later", b"v")
    ms, ms60 = 1795836059749 * 1_000_000, 1795836060000 * 1_000_000
    assert [r.ts for r in s.read_log(0)] == [ms, ms + 1, ms + 2, ms60, ms60 + 1, ms60 + 2, ms60 + 3]
    assert s.last_ts == ms60 + 3


@given(st.lists(st.floats(min_value=0, max_value=2e9, allow_nan=False), min_size=1, max_size=50))
def test_log_ts_strictly_increasing(times) -> None:
    last = 0
    for t in times:
        ts = next_log_ts(t, last)
        assert ts > last
        assert ts >= int(t * 1000) * 1_000_000 or ts == last + 1
        last = ts


def test_read_log_from_ts() -> None:
    clock = FakeClock(1000.0)
    s = make_store(clock)
    db = s.resolve(0)
    for i in range(10):
        clock.now = 1000.0 + i / 2000  # two records per millisecond
        db.set(b"k%d" % i, b"v")
    all_recs = s.read_log(0)
    pivot = all_recs[4].ts
    assert s.read_log(pivot) == all_recs[4:]
    assert s.read_log(pivot + 1) == all_recs[5:]
    assert s.read_log(pivot, limit=2) == all_recs[4:6]
    assert s.read_log(s.last_ts + 1) == []
    assert s.oldest_ts == all_recs[0].ts


def test_log_bound() -> None:
    s = make_store(ulog_records=3)
    db = s.resolve(0)
    for i in range(10):
        db.set(b"k%d" % i, b"v")
    assert [r.key for r in s.read_log(0)] == [b"k7", b"k8", b"k9"]
    by_size = make_store(ulog_size=100)
    for i in range(10):
        by_size.resolve(0).set(b"k%d" % i, b"x" * 20)
    kept = by_size.read_log(0)
    assert sum(r.size for r in kept) <= 100 and kept[-1].key == b"k9" and len(kept) < 10
    huge = make_store(ulog_size=10)
    huge.resolve(0).set(b"big", b"x" * 100)
    assert [r.key for r in huge.read_log(0)] == [b"big"]  # the newest record is always kept


def test_log_compaction_keeps_order() -> None:
    s = make_store(ulog_records=10)
    db = s.resolve(0)
    for i in range(5000):
        db.set(b"%05d" % i, b"")
    recs = s.read_log(0)
    assert [r.key for r in recs] == [b"%05d" % i for i in range(4990, 5000)]
    assert s.read_log(recs[3].ts) == recs[3:]


def test_subscribe_and_wait_log() -> None:
    s = make_store()
    seen: list[LogRecord] = []
    unsubscribe = s.subscribe(seen.append)
    s.subscribe(lambda rec: 1 / 0)  # a broken listener does not break writes
    s.resolve(0).set(b"a", b"1")
    unsubscribe()
    s.resolve(0).set(b"b", b"2")
    assert [r.key for r in seen] == [b"a"]

    async def scenario() -> tuple[bool, bool, bool]:
        since = s.last_ts + 1
        immediate = await s.wait_log(s.last_ts, 0)
        timed_out = await s.wait_log(since, 0.01)
        waiter = asyncio.ensure_future(s.wait_log(since, 5))
        await asyncio.sleep(0)
        s.resolve(1).set(b"c", b"3")
        return immediate, timed_out, await waiter

    assert asyncio.run(scenario()) == (True, False, True)


# --------------------------------------------------------------------------- signals


def test_signals() -> None:
    s = make_store()
    assert s.signal("sig") == 0  # rpc/signal: SIGNALED 0 when nobody waits

    async def scenario() -> list:
        assert await s.wait_signal("never", 0.01) is False
        waiters = [asyncio.ensure_future(s.wait_signal("x", 5)) for _ in range(3)]
        await asyncio.sleep(0)
        assert s.signal_waiters("x") == 3
        first = s.signal("x")  # wakes one, reports all waiting
        for _ in range(5):
            await asyncio.sleep(0)
        done_after_one = sum(w.done() for w in waiters)
        second = s.signal("x", broadcast=True)
        results = await asyncio.gather(*waiters)
        return [first, done_after_one, second, results, s.signal_waiters("x"), s.signal("x")]

    assert asyncio.run(scenario()) == [3, 1, 2, [True, True, True], 0, 0]


# --------------------------------------------------------------------------- report / status


def test_status_and_report_shapes() -> None:
    s = make_store()
    s.resolve(1).set(b"k", b"v")
    _first, headers, body = _split_http(_steps("rpc/status")[0][1])
    real_keys = {k.decode() for k in _tsv(body, headers["content-type"])}
    status = s.status(1)
    assert set(status) == real_keys
    # ktserver 0.9.56b: a small % database keeps its size (no page written yet); cusage counts
    assert (status["count"], status["path"], status["size"], status["cusage"]) == ("1", "%", "526693", "23")
    assert s.status()["count"] == "0"
    report = s.report()
    assert report["db_1"] == "count=1 size=526693 path=%"
    assert report["db_0"] == "count=0 size=526693 path=%"  # as the real rpc/report shows empty dbs
    assert (report["db_total_count"], report["db_total_size"]) == ("1", str(526693 * 2))


# --------------------------------------------------------------------------- snapshots


keys_st = st.binary(max_size=12)
db_st = st.dictionaries(keys_st, st.tuples(st.binary(max_size=40), st.sampled_from([None, 5, 100, -XT_2100])),
                        max_size=20)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dbs=st.lists(db_st, min_size=1, max_size=3))
def test_snapshot_round_trip(tmp_path: Path, dbs) -> None:
    clock = FakeClock(1000.0)
    s = Store([f"db{i}" for i in range(len(dbs))], clock=clock)
    for i, recs in enumerate(dbs):
        for k, (v, xt) in recs.items():
            s.resolve(i).set(k, v, xt)
    path = tmp_path / "snap.bin"
    s.save_snapshot(path)
    other = Store([f"db{i}" for i in range(len(dbs))], clock=FakeClock(0.5))
    other.resolve(0).set(b"stale", b"gone")
    other.load_snapshot(path)
    for a, b in zip(s.databases, other.databases):
        assert a.items() == b.items()
    assert other.last_ts == max(s.last_ts, 500 * 1_000_000)
    assert other.log_count() == 1  # loading is not replicated


def test_snapshot_drops_expired_and_keeps_ts(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    s = make_store(clock)
    s.resolve(0).set(b"soon", b"x", 10)
    s.resolve(1).set(b"never", b"y")
    s.save_snapshot(tmp_path / "s")
    clock.now = 500.0  # restarted with a clock that went back
    restored = make_store(clock)
    restored.load_snapshot(tmp_path / "s")
    restored.resolve(0).set(b"after", b"z")
    assert restored.read_log(0)[0].ts > s.last_ts
    clock.now = 2000.0
    later = make_store(clock)
    later.load_snapshot(tmp_path / "s")
    assert later.resolve(0).items() == [] and later.resolve(1).items() == [(b"never", b"y", XT_MAX)]


def test_snapshot_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "snap"
    s = make_store()
    s.resolve(0).set(b"old", b"1")
    s.save_snapshot(path)
    before = path.read_bytes()
    s.resolve(0).set(b"new", b"2")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(store_mod.snapshot.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk on fire"):
        s.save_snapshot(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["snap"]  # no temporary file left behind
    fresh = make_store()
    fresh.load_snapshot(path)
    assert [k for k, _v, _x in fresh.resolve(0).items()] == [b"old"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "empty"])
def test_snapshot_damage_is_detected(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "snap"
    s = make_store()
    s.resolve(0).set(b"key", b"value")
    s.save_snapshot(path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:-3]
    elif damage == "flip":
        data[30] ^= 0xFF
    elif damage == "magic":
        data[0:8] = b"NOTASNAP"
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    target = make_store()
    target.resolve(0).set(b"mine", b"kept")
    with pytest.raises(SnapshotError):
        target.load_snapshot(path)
    assert target.resolve(0).items() == [(b"mine", b"kept", XT_MAX)]


def test_snapshot_database_count_mismatch(tmp_path: Path) -> None:
    make_store().save_snapshot(tmp_path / "s")
    with pytest.raises(SnapshotError, match="2 databases"):
        Store(["%"], clock=FakeClock()).load_snapshot(tmp_path / "s")


# --------------------------------------------------------------------------- model-based property


small_keys = st.binary(min_size=0, max_size=2)
values = st.binary(max_size=4)
ops_st = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["set", "add", "replace", "append"]), small_keys, values),
        st.tuples(st.sampled_from(["remove", "seize", "get"]), small_keys),
        st.tuples(st.just("cas"), small_keys, st.none() | values, st.none() | values),
        st.tuples(st.just("increment"), small_keys, st.integers(-5, 5)),
        st.tuples(st.just("set_bulk"), st.dictionaries(small_keys, values, max_size=3)),
        st.tuples(st.just("remove_bulk"), st.lists(small_keys, max_size=3)),
        st.tuples(st.just("clear")),
    ),
    max_size=40,
)


def _model_step(model: dict[bytes, bytes], op: tuple):
    """Apply ``op`` to a plain dict; return the expected result or the expected error class."""
    name, *args = op
    if name == "set":
        model[args[0]] = args[1]
    elif name == "add":
        if args[0] in model:
            return errors.RecordExists
        model[args[0]] = args[1]
    elif name == "replace":
        if args[0] not in model:
            return errors.NoRecord
        model[args[0]] = args[1]
    elif name == "append":
        model[args[0]] = model.get(args[0], b"") + args[1]
    elif name in ("remove", "seize", "get"):
        if args[0] not in model:
            return errors.NoRecord
        value = model[args[0]] if name == "get" else model.pop(args[0])
        return None if name == "remove" else (value, XT_MAX)
    elif name == "cas":
        key, old, new = args
        if (old is None) != (key not in model) or (old is not None and model[key] != old):
            return errors.LogicalInconsistency
        if new is None:
            model.pop(key, None)
        else:
            model[key] = new
    elif name == "increment":
        key, num = args
        current = model.get(key, encode_int(0))
        if len(current) != 8:
            return errors.LogicalInconsistency
        result = struct.unpack(">q", current)[0] + num
        if num != 0 or key not in model:
            model[key] = encode_int(result)
        return result
    elif name == "set_bulk":
        model.update(args[0])
        return len(args[0])
    elif name == "remove_bulk":
        present = [k for k in dict.fromkeys(args[0]) if k in model]
        for k in present:
            del model[k]
        return len(present)
    elif name == "clear":
        model.clear()
    return None


@settings(max_examples=150, deadline=None)
@given(ops_st)
def test_database_matches_dict_model(ops) -> None:
    s = make_store()
    db = s.resolve(1)
    model: dict[bytes, bytes] = {}
    for op in ops:
        expected = _model_step(model, op)
        name, *args = op
        try:
            got = getattr(db, name)(*args)
        except errors.ServerError as exc:
            got = type(exc)
        assert got == expected, op
        assert db.items() == [(k, model[k], XT_MAX) for k in sorted(model)]
        assert db.count() == len(model)
    # Replaying the update log on an empty database reproduces the state (what a slave does).
    replica: dict[bytes, bytes] = {}
    for rec in s.read_log(0):
        assert rec.db == 1 and rec.sid == 1
        if rec.op == OP_SET:
            assert rec.value[:5] == XT_MAX.to_bytes(5, "big")
            replica[rec.key] = rec.value[5:]
        elif rec.op == OP_REMOVE:
            replica.pop(rec.key, None)  # a remove of a missing key is logged too, as ktserver does
        else:
            replica.clear()
    assert replica == model


@pytest.mark.parametrize("spec", ["%", "*", "+", "-", ":"])
def test_clear_disables_every_cursor(spec: str) -> None:
    """Kyoto Cabinet's clear disables the cursors (ktserver); records set again do not revive them."""
    db = Store([spec], clock=FakeClock(1000.0)).resolve(0)
    db.set(b"a", b"1")
    cur = db.cursor()
    cur.jump()
    db.clear()
    db.set(b"a", b"2")
    assert _err(cur.get_key) == NO_RECORD
    cur.jump()
    assert cur.get_key() == b"a"


def test_match_regex_reads_keys_as_c_strings() -> None:
    """ktserver's regexec sees a key up to its first NUL byte (recorded: difftest case regex-c-string)."""
    db = make_store().resolve(0)
    for key in (b"a\x00b", b"ab", b"\x00b", b"b"):
        db.set(key, b"v")
    assert db.match_regex(b"b") == [b"ab", b"b"]
    assert db.match_regex(b"a$") == [b"a\x00b"]
    assert db.match_regex(b"^$") == [b"\x00b"]


def test_increment_double_past_2_63_wraps_its_integer_part() -> None:
    """x86's (int64_t) of a long double out of range is INT64_MIN (recorded: difftest case double-wrap)."""
    db = make_store().resolve(0)
    assert db.increment_double(b"d", 9.3e18) == 9.3e18
    assert db.get(b"d")[0] == struct.pack(">qq", -(2**63), 0)
    assert db.increment_double(b"d", 1) == -math.inf  # the stored integer part now reads as -inf
    assert encode_double(-(2.0**63)) == struct.pack(">qq", -(2**63), 0)
    assert encode_double(2.0**62) == struct.pack(">qq", 2**62, 0)


def test_real_numbers_are_printed_through_a_128_byte_buffer() -> None:
    from kyototycoon.server.textnum import format_f

    assert format_f(1.5) == b"1.500000"
    assert format_f(2e120) == (b"%f" % 2e120)[:127] + b"\0"  # 128 characters: the NUL of snprintf
    assert format_f(1e300) == (b"%f" % 1e300)[:127] + b"*"
