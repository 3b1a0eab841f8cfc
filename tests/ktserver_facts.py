"""Facts about a real ktserver 0.9.56b, recorded as data so that CI (no real server) checks them.

Each case is a database spec, records stored first, and RPC calls on one
cursor (``CUR=1``), each with the status and output map the real server
answered. ``tests/test_ktserver_facts.py`` replays them against the embedded
server. Record them again (this overwrites ``data/ktserver_facts.json``)::

    python tests/ktserver_facts.py --record /path/to/ktserver

Cases that depend on the iteration order of a hash database are marked
``"order": true``: the embedded server walks those in key order (all but
``*``, ``:`` and ``-``, whose order it reproduces).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "ktserver_facts.json"
RECORDS = [("k1", "v1"), ("k2", "v2"), ("k3", "v3"), ("k4", "v4")]

#: Database specs: one of each type ktserver opens (file ones relative to its working directory).
DB_SPECS = ["%", "*", ":", "-", "+", "a.kct", "a.kch", "a.kcd", "a.kcf"]
#: Databases whose hash iteration order the embedded server does not reproduce (it walks them in key order).
HASH_ORDER = {"a.kch", "a.kcd"}

Call = tuple[str, dict[str, str]]


def _get(step: bool = False) -> Call:
    return ("cur_get_key", {"step": "1"} if step else {})


#: name -> (about, calls, depends on the iteration order)
CURSOR_SEQUENCES: dict[str, tuple[str, list[Call], bool]] = {
    "jump_back_key_then_get_step": (
        "cur_jump_back to a key between records, then cur_get_key with step",
        [("cur_jump_back", {"key": "k2x"}), *[_get(True)] * 4], False),
    "jump_back_then_get_step": (
        "cur_jump_back to the last record, then cur_get_key with step past the first",
        [("cur_jump_back", {}), *[_get(True)] * 5], False),
    "step_back_unpositioned": ("cur_step_back on a new cursor", [("cur_step_back", {}), _get()], False),
    "jump_key_between": ("cur_jump to a key between records", [("cur_jump", {"key": "k2x"}), _get()], False),
    "jump_key_exact_then_step": (
        "cur_jump to an existing key, then cur_step",
        [("cur_jump", {"key": "k2"}), ("cur_step", {}), _get()], True),
    "jump_back_key_exact_then_step_back": (
        "cur_jump_back to an existing key, then cur_step_back",
        [("cur_jump_back", {"key": "k2"}), _get(), ("cur_step_back", {}), _get()], False),
    "step_back_to_first_then_seize": (
        "cur_step_back onto the first record, then cur_seize: the cursor goes past the first",
        [("cur_jump", {"key": "k2"}), ("cur_step_back", {}), _get(), ("cur_seize", {}), _get()], True),
    "backward_remove": (
        "cur_remove after cur_jump_back: the cursor moves to the previous record",
        [("cur_jump_back", {}), ("cur_remove", {}), _get()], False),
    "back_then_forward": (
        "cur_jump after cur_jump_back walks forward again",
        [("cur_jump_back", {}), ("cur_jump", {}), _get(True), _get()], True),
    "walk": ("cur_jump, then cur_get_key with step to the end", [("cur_jump", {}), *[_get(True)] * 5], True),
    "step_back_past_first": (
        "cur_step_back from the first record",
        [("cur_jump", {}), ("cur_step_back", {}), _get()], True),
}

#: Specs whose status the embedded server reproduces (bnum/pccap tuning included).
STATUS_SPECS = ["%", "*", ":", "-", "+", "%#bnum=100#pccap=1m", "b.kct", "a.kch", "a.kcd", "a.kcf",
                "t.kct#type=kch"]


#: keys for match_similar: valid UTF-8, cut short, lone continuation bytes, 0xFF, a NUL
SIMILAR_KEYS = [b"\xe6\x97\xa5", b"\xe6\x9c\x88", b"\xe6\x97", b"\x82a", b"\x82b", b"a\xff", b"ab\x00cd",
                b"ab", b"abc", b"\xc3\xa9t\xc3\xa9", b"ete", b"\xf0\x9f\x98\x80", b"\xed\xa0\x80x"]
SIMILAR_ORIGINS = [(b"\xe6\x97\xa5", 1), (b"\x82b", 1), (b"ab\x00cd", 2), (b"\xc3\xa9te", 1), (b"a\xff", 2),
                   (b"\xe6", 3)]


#: a cache hash database's order: 16 slots by murmur hash, each in last-touched order; a stash's:
#: buckets by murmur hash; a prototype hash's: TR1 buckets by FNV-1a (each sequence then walks it)
CACHE_SEQUENCES: list[tuple[str, str, list[list[Any]]]] = [
    ("as_stored", "the order of records as they were stored", []),
    ("get_rotates", "a get moves its record to the end of its slot",
     [["get", {"key": "k2"}], ["get", {"key": "k1"}]]),
    ("failed_add_rotates", "a failed add, check and cas touch the record too",
     [["add", {"key": "k2", "value": "x"}], ["check", {"key": "k7"}],
      ["cas", {"key": "k3", "oval": "nope", "nval": "x"}]]),
    ("cursor_escapes_a_rotation", "a cursor on a record that rotates steps to the next one",
     [["cur_jump", {"CUR": "1", "key": "k2"}], ["get", {"key": "k2"}], ["cur_get_key", {"CUR": "1"}]]),
    ("cursor_set_value_keeps_order", "a cursor's set_value does not rotate",
     [["cur_jump", {"CUR": "1", "key": "k2"}], ["cur_set_value", {"CUR": "1", "value": "x"}],
      ["match_prefix", {"prefix": "k"}]]),
    ("removal_escapes", "a cursor on a removed record steps on",
     [["cur_jump", {"CUR": "1", "key": "k2"}], ["remove", {"key": "k2"}], ["cur_get_key", {"CUR": "1"}],
      ["set", {"key": "k2", "value": "again"}], ["match_prefix", {"prefix": "k"}]]),
]


def cases() -> list[dict[str, Any]]:
    """Every case, without answers."""
    out: list[dict[str, Any]] = []
    for spec in DB_SPECS:
        for name, (about, calls, order) in CURSOR_SEQUENCES.items():
            out.append({"name": f"cursor/{spec}/{name}", "about": about, "db": spec, "records": RECORDS,
                        "order": order and spec in HASH_ORDER,
                        "calls": [[proc, dict(params, CUR="1")] for proc, params in calls]})
    for spec in STATUS_SPECS:
        out.append({"name": f"status/{spec}", "about": "status of an empty database, then of one record",
                    "db": spec, "records": [], "order": False,
                    "calls": [["status", {}], ["set", {"key": "k1", "value": "v1"}], ["status", {}]]})
    many = [(f"k{i}", f"v{i}") for i in range(10)]
    walk: list[list[Any]] = [["cur_jump", {"CUR": "1"}], *[["cur_get_key", {"CUR": "1", "step": "1"}]] * 11]
    forty = [(f"k{i}", "v") for i in range(40)]
    for spec in ("*", ":", "-"):
        for name, about, calls in CACHE_SEQUENCES:
            out.append({"name": f"hash-order/{spec}/{name}", "about": about, "db": spec, "records": many,
                        "order": False, "calls": [*calls, *walk]})
        out.append({"name": f"hash-order/{spec}/forty_keys", "db": spec, "records": forty, "order": False,
                    "about": "match_prefix walks the database's order",
                    "calls": [["match_prefix", {"prefix": "k"}]]})
    similar_keys = [(k.decode("latin-1"), "") for k in SIMILAR_KEYS]
    for origin, rng in SIMILAR_ORIGINS:
        for utf in (True, False):
            params = {"origin": origin.decode("latin-1"), "range": str(rng), **({"utf": "1"} if utf else {})}
            out.append({"name": f"match_similar/{origin.hex()}/range={rng}/utf={int(utf)}",
                        "about": "match_similar on keys that are not all valid UTF-8", "db": "%",
                        "records": similar_keys, "order": False, "calls": [["match_similar", params]]})
    out.append({"name": "status/%/cusage",
                "about": "cusage of a B+ tree: 8 + (key + value + 13) a record; 8 empty, 0 after a clear",
                "db": "%", "records": RECORDS, "order": False,
                "calls": [["status", {}], ["remove", {"key": "k1"}], ["status", {}],
                          *[["remove", {"key": k}] for k in ("k2", "k3", "k4")], ["status", {}],
                          ["clear", {}], ["status", {}]]})
    return out


#: raw HTTP requests with control bytes in the request line (one connection each):
#: ktserver drops every CR of a line, ends it at a NUL, and its URL decoder skips bytes <= ' '
_TSV_B = b"Content-Type: text/tab-separated-values; colenc=B\r\n"
RAW_REQUESTS = {
    "ctl01-in-query": b"GET /rpc/echo?a=x\x01y HTTP/1.1\r\nHost: a\r\n\r\n",
    "del-in-query": b"GET /rpc/echo?a=x\x7fy HTTP/1.1\r\nHost: a\r\n\r\n",
    "tab-in-query": b"GET /rpc/echo?a=x\ty HTTP/1.1\r\nHost: a\r\n\r\n",
    "cr-in-query": b"GET /rpc/echo?a=x\ry HTTP/1.1\r\nHost: a\r\n\r\n",
    "nul-in-query": b"GET /rpc/echo?a=x\x00y HTTP/1.1\r\nHost: a\r\n\r\n",
    "ctl01-in-param-name": b"GET /rpc/echo?a\x01b=x HTTP/1.1\r\nHost: a\r\n\r\n",
    "ctl01-in-procedure": b"GET /rpc/ec\x01ho?a=x HTTP/1.1\r\nHost: a\r\n\r\n",
    "ctl01-in-method-rpc": b"G\x01T /rpc/echo?a=x HTTP/1.1\r\nHost: a\r\n\r\n",
    "ctl01-in-method-rest": b"G\x01T /k HTTP/1.1\r\nHost: a\r\n\r\n",
    "high-byte-in-method": b"GET\xe9 /rpc/echo?a=x HTTP/1.1\r\nHost: a\r\n\r\n",
    "ctl01-in-version": b"GET /rpc/echo?a=x HTTP/1.1\x01\r\nHost: a\r\n\r\n",
    "nul-after-version": b"GET /rpc/echo?a=x HTTP/1.1\x00zz\r\nHost: a\r\n\r\n",
    "escape-in-rest-key": b"GET /\x1b[31m HTTP/1.1\r\nHost: a\r\n\r\n",
    "ctl01-in-rest-key": b"GET /k\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
    # a bodiless request's query is decoded by the TSV Content-Type's colenc, names and values
    "colenc-b-get-query": b"GET /rpc/get?key=zz HTTP/1.1\r\nHost: a\r\n" + _TSV_B + b"\r\n",
    "colenc-b-echo-query": b"GET /rpc/echo?YQ%3D%3D=Yg%3D%3D&k=zz HTTP/1.1\r\nHost: a\r\n" + _TSV_B + b"\r\n",
    "colenc-b-cur-remove-query": b"GET /rpc/cur_remove?CUR=1 HTTP/1.1\r\nHost: a\r\n" + _TSV_B + b"\r\n",
    "colenc-u-delete-echo-query": (b"DELETE /rpc/echo?%2561=%2562 HTTP/1.1\r\nHost: a\r\n"
                                   b"Content-Type: text/tab-separated-values; colenc=U\r\n\r\n"),
    # a request's Content-Length is read with kc::atoi (the body of "key\tx\n": 6 bytes)
    **{f"content-length-{name}": (b"POST /rpc/echo HTTP/1.1\r\nHost: a\r\n"
                                  b"Content-Type: text/tab-separated-values\r\n"
                                  b"Content-Length: " + value + b"\r\n\r\nkey\tx\n")
       for name, value in [("trailing-letters", b"5abc"), ("plus", b"+5"), ("minus", b"-5"), ("hex", b"0x5"),
                           ("empty", b""), ("letters", b"abc"), ("decimal", b"5.9"), ("blank-first", b"\t5"),
                           ("huge", b"99999999999999999999"), ("over-256-mib", b"268435457")]},
    "colenc-q-head-echo-query": (b"HEAD /rpc/echo?a=%3D62 HTTP/1.1\r\nHost: a\r\n"
                                 b"Content-Type: text/tab-separated-values; colenc=Q\r\n\r\n"),
    # the blocking client's set is a RESTful PUT (expire None): 201, the database found by index or
    # name as POST /rpc/set finds it, "no such database" the same 400 (its text in the body, not TSV)
    "rest-put-default-db": b"PUT /put%3ak HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n\x00\tv",
    "rest-put-db-index": b"PUT /1/put%3ak HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nv1",
    "rest-put-db-name": b"PUT /%2A/put%3ak HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nv2",
    "rest-put-no-such-db-name": b"PUT /nosuch/k HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nv",
    "rest-put-no-such-db-index": b"PUT /99/k HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nv",
    "rest-put-empty-body": b"PUT /put%3aempty HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    "rpc-set-no-such-db-name": (b"POST /rpc/set HTTP/1.1\r\nHost: a\r\n"
                                b"Content-Type: text/tab-separated-values\r\nContent-Length: 24\r\n\r\n"
                                b"key\tk\nvalue\tv\nDB\tnosuch\n"),
}


#: TSV-RPC calls whose update-log records were recorded: which writes log what, failed ones included
ULOG_CALLS: list[list[Any]] = [
    ["remove", {"key": "missing"}], ["set", {"key": "a", "value": "1"}], ["remove", {"key": "a"}],
    ["remove_bulk", {"_x": "", "_y": ""}], ["replace", {"key": "nope", "value": "2"}],
    ["cas", {"key": "nope", "oval": "1", "nval": "2"}], ["cas", {"key": "c"}], ["seize", {"key": "nope"}],
    ["add", {"key": "a", "value": "9"}], ["add", {"key": "a", "value": "10"}],
    ["increment", {"key": "i", "num": "0"}], ["append", {"key": "p", "value": ""}],
    ["cur_jump", {"CUR": "1"}], ["cur_remove", {"CUR": "1"}], ["cur_delete", {"CUR": "1"}], ["clear", {}],
]


def ulog_events(target: Any, calls: list[list[Any]]) -> list[list[Any]]:
    """``[op, db, key, value]`` (latin-1 text) of each update-log record the calls wrote, read back
    through the replication stream as a slave would (the target's own markers left out)."""
    import threading

    from oracle import MARK_KEY, START_TIMEOUT

    from kyototycoon import KyotoSlave

    start = target.log_end()
    for proc, params in calls:
        target.rpc(proc, {k.encode(): v.encode("latin-1") for k, v in params.items()}, 0)
    target.log_end()  # a marker after them: the stream is read up to its remove
    events: list[list[Any]] = []
    slave = KyotoSlave(target.sid_for_probe, target.host, target.port, timeout=START_TIMEOUT)
    watchdog = threading.Timer(START_TIMEOUT, slave.stop)
    watchdog.start()
    try:
        for event in slave.consume(from_ts=start):
            key = event.get("key") or b""
            if key.startswith(MARK_KEY):
                if event["op"] == 162:  # OP_REMOVE: the end marker
                    break
                continue
            value = event.get("value")
            events.append([event["op"], event.get("db"), key.decode("latin-1"),
                           None if value is None else value.decode("latin-1")])
    finally:
        watchdog.cancel()
        slave.close()
    return events


def ask_raw(port: int, request: bytes, timeout: float = 2.0) -> bytes:
    """The bytes a server answers to ``request`` on a new connection (its Date header dropped)."""
    import re
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        sock.sendall(request)
        out = b""
        while True:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            out += data
            head, sep, body = out.partition(b"\r\n\r\n")
            length = re.search(rb"Content-Length: (\d+)", head)
            if sep and length and len(body) >= int(length.group(1)):
                break
    out = re.sub(rb"\r\nDate: [^\r\n]*", b"", out)
    # a PUT's Location names the server's port
    return re.sub(rb"\r\nLocation: http://localhost:[0-9]+/", b"\r\nLocation: http://localhost:PORT/", out)


def run_case(rpc: Any, db: int, case: dict[str, Any]) -> list[list[Any]]:
    """Play one case through ``rpc(name, params, db) -> (status, out)``; ``[status, out]`` per call."""
    rpc("clear", {}, db)
    # bytes travel as latin-1 text in the JSON: one character a byte
    for key, value in case["records"]:
        rpc("set", {b"key": key.encode("latin-1"), b"value": value.encode("latin-1")}, db)
    answers = []
    for proc, params in case["calls"]:
        status, out = rpc(proc, {k.encode(): v.encode("latin-1") for k, v in params.items()}, db)
        answers.append([status, {k.decode("latin-1"): v.decode("latin-1") for k, v in out.items()}])
    if any("CUR" in params for _proc, params in case["calls"]):
        # only then: cur_delete of a cursor that does not exist creates one, bound to this database
        rpc("cur_delete", {b"CUR": b"1"}, db)
    return answers


def ktserver_spec(spec: str) -> str:
    """The spec on ktserver's command line: a '#' keeps the test harness from adding ``#type=%``."""
    return spec if "#" in spec or spec in ("%", "*", ":", "-", "+") else spec + "#"


def record(binary: str) -> dict[str, Any]:
    from oracle import KtServer, WireTarget

    all_cases = cases()
    specs = list(dict.fromkeys(c["db"] for c in all_cases))
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    with KtServer(binary, [ktserver_spec(s) for s in specs]) as server:
        target = WireTarget(server.host, server.port, specs)
        try:
            for case in all_cases:
                case["answers"] = run_case(target.rpc, specs.index(case["db"]), case)
        finally:
            target.close()
        raw = {name: ask_raw(server.port, req).decode("latin-1") for name, req in RAW_REQUESTS.items()}
    with KtServer(binary, ["%"]) as server:
        target = WireTarget(server.host, server.port, ["%"])
        try:
            ulog = {"calls": ULOG_CALLS, "events": ulog_events(target, ULOG_CALLS)}
        finally:
            target.close()
    return {"server": version or "Kyoto Tycoon 0.9.56b", "command": "python tests/ktserver_facts.py --record",
            "cases": all_cases, "raw_requests": raw, "ulog": ulog}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", metavar="KTSERVER", required=True, help="the ktserver binary to ask")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    data = record(args.record)
    DATA.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(data['cases'])} cases from {data['server']} -> {DATA}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
