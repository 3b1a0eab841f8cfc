"""Write the hand-written difftest cases, one episode per divergence fixed (requests only).

    python tools/difftest_cases.py tests/recorded/difftest-cases.json
    kyototycoon difftest --ktserver /opt/kt/bin/ktserver --script tests/recorded/t_script.lua \\
        --db '%' --db '*' --cases tests/recorded/difftest-cases.json    # records the answers

tests/test_server_recorded_difftest.py replays them against the embedded server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from kyototycoon._codec import binary as codec
from kyototycoon.fuzz.difftest import FORMAT, Step, _http

HOST = [b"Host: 127.0.0.1"]
TSV = b"Content-Type: text/tab-separated-values"
NEVER = 2**63 - 1  # binary xt: no expiry


def http(method: bytes, path: bytes, body: bytes = b"", headers: tuple[bytes, ...] = ()) -> Step:
    return Step("http", _http(method, path, [*HOST, *headers], body, always_length=bool(body)
                              or method in (b"PUT", b"POST")))


def get(path: bytes) -> Step:
    return http(b"GET", path)


def rpc(name: bytes, body: bytes) -> Step:
    return http(b"POST", b"/rpc/" + name, body, (TSV,))


def binary(frame: bytes) -> Step:
    return Step("binary", frame)


REPORT = get(b"/rpc/report")
CASES: dict[str, list[Step]] = {
    "counters-rest": [http(b"PUT", b"/k1", b"v"), http(b"PUT", b"/k1", b"v", (b"X-Kt-Mode: add",)),
                      get(b"/k1"), get(b"/nope"), http(b"HEAD", b"/k1"), http(b"DELETE", b"/k1"),
                      http(b"DELETE", b"/k1"), REPORT],
    "counters-bulk": [rpc(b"set_bulk", b"_a\t1\n_b\t2\n_c\t3\n"), rpc(b"get_bulk", b"_a\t\n_x\t\n_b\t\n"),
                      rpc(b"remove_bulk", b"_a\t\n_x\t\n"), REPORT],
    "counters-seize": [get(b"/rpc/set?key=s&value=1"), get(b"/rpc/seize?key=s"), get(b"/rpc/seize?key=s"),
                       REPORT],
    "counters-uncounted": [get(b"/rpc/void"), get(b"/rpc/echo?a=b"), get(b"/rpc/report"),
                           get(b"/rpc/ulog_list"), get(b"/rpc/play_script?name=%21"),
                           get(b"/rpc/play_script?name=echo&_a=b"), get(b"/rpc/get?DB=nosuch&key=a"),
                           get(b"/rpc/cur_get?CUR=1&DB=nosuch"), REPORT],
    "counters-binary-missing-db": [
        binary(codec.encode_set_bulk_request(0, [(0, NEVER, b"a", b"1"), (9, NEVER, b"b", b"2")])),
        binary(codec.encode_get_bulk_request(0, [(0, b"a"), (9, b"b"), (0, b"x")])),
        binary(codec.encode_remove_bulk_request(0, [(0, b"a"), (9, b"b")])), REPORT],
    "report-sys-fields": [REPORT],
    "head-no-such-database": [http(b"HEAD", b"/nosuch/k"), http(b"HEAD", b"/99/k"), get(b"/rpc/void")],
    "head-rpc": [http(b"HEAD", b"/rpc/void"), http(b"HEAD", b"/rpc/get?key=a"),
                 http(b"HEAD", b"/rpc/no_such"),
                 get(b"/rpc/echo?a=1")],
    "rpc-params-of-methods": [http(b"GET", b"/rpc/echo?q=1", headers=(TSV, b"Content-Length: 0")),
                              http(b"DELETE", b"/rpc/echo?x=y"),
                              http(b"PUT", b"/rpc/echo?x=y", b"a\tb\n", (TSV,)),
                              http(b"OPTIONS", b"/rpc/echo?x=y", b"a\tb\n", (TSV,))],
}
STATUS = get(b"/rpc/status")
# ktserver's lazy expiration (kttimeddb.h): an expired record stays, seen by count and match_*, until
# the purge cursor gets to it; a write scores 256, a read 32, the cursor moves at 2048. vacuum first:
# it scans everything and restarts the score from 0, whatever the episodes before left.
CASES["expiry-lazy-score"] = [
    get(b"/rpc/vacuum"), *[get(b"/rpc/set?key=k%d&value=v&xt=-1" % i) for i in range(10)], STATUS,
    *[get(b"/rpc/get?key=k0")] * 6, *[get(b"/rpc/set?key=z&value=v")] * 5, STATUS,
    get(b"/rpc/set?key=z&value=v"), STATUS, get(b"/rpc/match_prefix?prefix=k"), REPORT]
CASES["expiry-lazy-visible"] = [
    get(b"/rpc/vacuum"), get(b"/rpc/set?key=a&value=1&xt=-1"), get(b"/rpc/set?key=b&value=2"),
    get(b"/rpc/get?key=a"), get(b"/rpc/remove?key=a"), STATUS, get(b"/rpc/match_prefix?prefix="),
    get(b"/rpc/match_regex?regex=a"), get(b"/rpc/match_similar?origin=a&range=0"),
    get(b"/rpc/cur_jump?CUR=1"), get(b"/rpc/cur_get_key?CUR=1"), get(b"/rpc/replace?key=a&value=3"),
    get(b"/rpc/add?key=a&value=4&xt=-1"), get(b"/rpc/cas?key=a&nval=5"), get(b"/rpc/get?key=a"),
    get(b"/rpc/vacuum"), STATUS, get(b"/rpc/vacuum?DB=1"),
    binary(codec.encode_set_bulk_request(0, [(1, 1, b"x%d" % i, b"v") for i in range(9)])),
    get(b"/rpc/status?DB=1"), get(b"/rpc/vacuum?DB=1&step=8"), get(b"/rpc/status?DB=1"),
    get(b"/rpc/match_prefix?DB=1&prefix=x")]
CASES["cursor-clear"] = [  # clear disables every cursor of the database, of a B+ tree (0) and a cache (1)
    *[get(b"/rpc/set?DB=%d&key=%s&value=v" % (db, k)) for db in (0, 1) for k in (b"a", b"b")],
    get(b"/rpc/cur_jump?CUR=1"), get(b"/rpc/cur_jump?CUR=2&DB=1"), get(b"/rpc/cur_jump?CUR=3&DB=1"),
    get(b"/rpc/clear"), get(b"/rpc/clear?DB=1"),
    *[get(b"/rpc/set?DB=%d&key=%s&value=w" % (db, k)) for db in (0, 1) for k in (b"a", b"b")],
    get(b"/rpc/cur_get_key?CUR=1"), get(b"/rpc/cur_step?CUR=1"), get(b"/rpc/cur_get?CUR=2"),
    get(b"/rpc/cur_set_value?CUR=3&value=x"), get(b"/rpc/cur_remove?CUR=2"), get(b"/rpc/cur_jump?CUR=1"),
    get(b"/rpc/cur_get_key?CUR=1"), get(b"/rpc/match_prefix?DB=1&prefix=")]
CASES["regex-c-string"] = [  # kc::Regex::match: regexec on the key's C string, up to its first NUL
    rpc(b"set_bulk", b"_a\x00b\t1\n_ab\t2\n_\x00b\t3\n_b\t4\n"), get(b"/rpc/match_regex?regex=b"),
    get(b"/rpc/match_regex?regex=a%24"), get(b"/rpc/match_regex?regex=%5e%24"),
    get(b"/rpc/match_regex?regex=a.b")]
CASES["double-wrap"] = [  # (int64_t) of a long double past 2^63 is INT64_MIN on x86: the integer part wraps
    get(b"/rpc/increment_double?key=d&num=9223372036854775807"), get(b"/rpc/get?key=d"),
    get(b"/rpc/increment_double?key=d&num=1"), get(b"/rpc/increment_double?key=e&num=9.3e18"),
    get(b"/rpc/increment_double?key=e&num=9.3e18"), get(b"/rpc/get?key=e"),
    get(b"/rpc/increment_double?key=f&num=-9.3e18"), get(b"/rpc/get?key=f"),
    get(b"/rpc/increment_double?key=g&num=-9223372036854775808"), get(b"/rpc/get?key=g"),
    get(b"/rpc/increment_double?key=h&num=1e300&orig=5"), get(b"/rpc/get?key=h"),
    get(b"/rpc/increment_double?key=e&num=0"),
    # and its %f goes through a 128-byte buffer: 127 characters and "*", or a NUL at 128
    get(b"/rpc/increment_double?key=i&num=1e120"), get(b"/rpc/increment_double?key=j&num=1e121"),
    get(b"/rpc/increment_double?key=k&num=2e120")]
# the random corpus' s0-e16: match_similar (utf or not) sees a record that expired at once (X-Kt-Xt: 1,
# the epoch's first second) and is not purged yet
CASES["match-similar-expired"] = [
    get(b"/rpc/vacuum"), http(b"PUT", b"/a", b"%zz", (b"X-Kt-Mode: set", b"X-Kt-Xt: 1")), get(b"/a"),
    http(b"POST", b"/rpc/match_similar", b"DB=0&origin=&utf=1",
         (b"Content-Type: application/x-www-form-urlencoded",)),
    get(b"/rpc/match_similar?origin=b")]
# ktserver reads no body for GET, HEAD and DELETE: one's bytes are the next request
CASES["bodiless-body-is-next-request"] = [
    http(b"GET", b"/rpc/echo?a=1", b"GET /rpc/echo?b=2 HTTP/1.1\r\nHost: x\r\n\r\n"),
    http(b"DELETE", b"/k", b"HEAD /k HTTP/1.1\r\n\r\n"), get(b"/rpc/echo?c=3"), get(b"/rpc/echo?d=4")]
# header lines as kthttp.h reads them: control bytes in values taken, names' spaces normalised, a line
# without a colon skipped, the last of a repeated name wins, Connection compared whole
CASES["header-lines"] = [
    http(b"GET", b"/rpc/echo?a=1", headers=(b"X-A: a\x01b\x7fc\x1b", b"X-B:\tq\x00r", b"junk line")),
    http(b"PUT", b"/k", b"v", (b" X-Kt-Mode\t : add",)), http(b"PUT", b"/k", b"v", (b"x-kt-MODE:add",)),
    http(b"PUT", b"/k", b"w", (b"X-Kt-Mode: add", b"X-Kt-Mode: set")), get(b"/k"),
    http(b"POST", b"/rpc/echo", b"a\tb\n", (b"Content-Type: text/plain", TSV)),
    http(b"GET", b"/rpc/echo?c=1", headers=(b"Connection: close, foo",)), get(b"/rpc/echo?d=2"),
    http(b"GET", b"/rpc/echo?e=1", headers=(b"Connection: CLOSE",)), get(b"/rpc/echo?f=2")]
for method in (b"GET", b"HEAD", b"DELETE"):  # its body is left unread: the last step of its episode
    CASES[f"rpc-{method.decode().lower()}-reads-no-body"] = [
        get(b"/rpc/void"), http(method, b"/rpc/echo?q=1", b"a\tb\n", (TSV,))]


def main(path: str) -> None:
    episodes: list[dict[str, Any]] = [{"id": name, "known": None, "steps": [s.as_json() for s in steps]}
                                      for name, steps in CASES.items()]
    head = {"format": FORMAT, "server": "ktserver 0.9.56b", "databases": ["%", "*"], "script": "t_script.lua",
            "episodes": episodes}
    Path(path).write_text(json.dumps(head))


if __name__ == "__main__":
    main(sys.argv[1])
