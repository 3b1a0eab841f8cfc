"""Differential testing: the same random requests to two servers, their answers compared.

A run is a list of *episodes*; each starts from empty databases and new
connections (:meth:`Peer.reset`) and is a pure function of ``(seed,
index)``, so any one episode can be sent again on its own. A step is the
raw bytes of one request on a channel (``http``: one keep-alive
connection for TSV-RPC and REST, so cursors live across steps as in a
client session; ``binary``: one connection for binary frames). Requests
come from the tables the rest of the package already has: the procedure
table of :mod:`kyototycoon.server.rpc`, the fuzzer's parameter kinds
(:mod:`.cases`), the TSV codec and the generated binary codecs.

Answers are reduced to a JSON-able form (:func:`normalise_http`,
:func:`normalise_binary`) that keeps everything a client can observe,
except the short list of volatile things documented there (dates, the
process's clock and memory, time-relative expirations up to a second).
:func:`first_divergence` compares two such lists; :func:`shrink` cuts a
diverging episode down to a minimal reproduction.
"""

from __future__ import annotations

import calendar
import random
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_tz
from typing import Any, Callable, Optional

from .._codec import binary as codec
from ..errors import ProtocolError
from ..protocol import tsv
from ..protocol.framing import FrameReader
from ..protocol.http import ResponseReader
from ..server.rpc import PROCEDURES
from ..spec.binary import XT_MAX, XT_NONE, Flag, Magic
from .cases import _PARAMETERS

FORMAT = "kyototycoon-difftest/1"
#: seconds to wait for an answer that is owed
ANSWER_TIMEOUT = 5.0

# ------------------------------------------------------------------ what requests are made of

#: Keys that exercise every escaping path: tabs, %, newlines, NUL, non-UTF-8, empty, long.
EDGE_KEYS: tuple[bytes, ...] = (
    b"", b"a", b"b", b"k1", b"k2", b"k3", b"k4", b"k2x", b"a\tb", b"%", b"%41", b"x y", b"+",
    b"line\nbreak", b"cr\rlf", b"\x00nul", b"\xff\xfe", b"caf\xc3\xa9", b"\xc3", b"a/b", b"?q=1&r",
    b"=", b"k" * 300,
)
EDGE_VALUES: tuple[bytes, ...] = (
    b"", b"v", b"1", b"-3.5", b"12abc", b"\x00" * 8, b"\x00\x00\x00\x00\x00\x00\x00\x05",
    b"\x3f\xf0\x00\x00\x00\x00\x00\x00" * 2, b"tab\there", b"nl\n", b"%zz", b"\xff" * 3,
    b"caf\xc3\xa9", b"v" * 400,
)
#: ``xt`` values: relative seconds (only ones an episode cannot outlive, so a replay at another
#: speed sees the same records), absolute epochs in the future (negative: ktserver's absolute
#: form), and ones past the largest expiry a record can have.
XT_VALUES: tuple[int, ...] = (60, 3600, 86400 * 30, -2000000000, -4102444800, 2**40, 2**62, -(2**62))
#: ``xt`` values of records that are expired when stored (picked less often: ktserver keeps them,
#: invisible, until it purges them, which shows in counts and matches)
XT_EXPIRED: tuple[int, ...] = (0, -1, -1000)
#: Column encodings of a TSV body (None: raw).
COLENCS: tuple[Optional[str], ...] = (None, "U", "B", "Q")
CURSORS: tuple[bytes, ...] = (b"1", b"2", b"3")

#: Optional parameters each procedure reads (ktserver's handlers); required ones come from
#: :data:`kyototycoon.server.rpc.PROCEDURES`.
OPTIONAL: dict[str, tuple[bytes, ...]] = {
    "set": (b"xt",), "add": (b"xt",), "replace": (b"xt",), "append": (b"xt",),
    "increment": (b"xt", b"orig"), "increment_double": (b"xt", b"orig"),
    "cas": (b"oval", b"nval", b"xt"), "set_bulk": (b"xt", b"atomic"), "remove_bulk": (b"atomic",),
    "get_bulk": (b"atomic",), "vacuum": (b"step",), "match_prefix": (b"max",),
    "match_regex": (b"max",), "match_similar": (b"range", b"utf", b"max"), "cur_jump": (b"key",),
    "cur_jump_back": (b"key",), "cur_set_value": (b"xt", b"step"), "cur_get_key": (b"step",),
    "cur_get_value": (b"step",), "cur_get": (b"step",), "play_script": (b"name",),
}
#: Relative weights of procedures (the rest weigh 1): writes and reads of records and cursors
#: most, ``clear`` (which wipes what the episode built) and the heavy maps least.
WEIGHTS: dict[str, int] = {
    "set": 6, "get": 6, "add": 3, "replace": 3, "append": 3, "remove": 4, "check": 3, "seize": 2,
    "increment": 3, "increment_double": 3, "cas": 3, "set_bulk": 4, "get_bulk": 4, "remove_bulk": 3,
    "match_prefix": 3, "match_regex": 3, "match_similar": 3, "cur_jump": 5, "cur_jump_back": 4,
    "cur_step": 4, "cur_step_back": 4, "cur_get": 5, "cur_get_key": 3, "cur_get_value": 3,
    "cur_set_value": 3, "cur_remove": 3, "cur_seize": 3, "cur_delete": 2, "play_script": 2,
}
#: Weights of the step kinds.
KIND_WEIGHTS = {"rpc": 14, "rest": 4, "binary": 4}
_REGEXES = (b"^k", b"k[0-9]$", b"a.*b", b".", b"[", b"\\xff", b"", b"^$", b"(a|b)")


@dataclass(frozen=True)
class Step:
    """One request: the channel it goes on and its bytes; ``note`` says what it is."""

    channel: str  # "http" or "binary"
    send: bytes
    note: str = ""

    @property
    def method(self) -> bytes:
        return self.send.split(b" ", 1)[0]

    def as_json(self) -> dict[str, Any]:
        """Compact: the bytes as Latin-1 text, ``"bin": 1`` for the binary channel (the note is left out)."""
        out: dict[str, Any] = {"send": self.send.decode("latin-1")}
        if self.channel == "binary":
            out["bin"] = 1
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Step:
        return cls("binary" if data.get("bin") else "http", data["send"].encode("latin-1"))


class Generator:
    """Random steps for servers with ``databases`` (their names, in index order)."""

    def __init__(self, rng: random.Random, databases: Sequence[str]):
        self.rng = rng
        self.databases = list(databases)
        names = sorted(PROCEDURES)
        self._procs = names
        self._proc_weights = [WEIGHTS.get(n, 1) for n in names]

    # -------------------------------------------------------- values

    def _pick(self, options: Sequence[Any]) -> Any:
        return options[self.rng.randrange(len(options))]

    def key(self) -> bytes:
        return self._pick(EDGE_KEYS) if self.rng.random() < 0.8 else self._random_bytes(12)

    def value(self) -> bytes:
        return self._pick(EDGE_VALUES) if self.rng.random() < 0.8 else self._random_bytes(40)

    def _random_bytes(self, most: int) -> bytes:
        size = self.rng.randint(0, most)
        return bytes(self.rng.getrandbits(8) for _ in range(size))

    def xt(self) -> int:
        return self._pick(XT_EXPIRED if self.rng.random() < 0.08 else XT_VALUES)

    def db_ref(self) -> bytes:
        """A ``DB`` value: mostly a valid index or name, sometimes one that names nothing."""
        r = self.rng.random()
        n = len(self.databases)
        if r < 0.55:
            return b"%d" % min(int(self.rng.expovariate(1.2)), n - 1)
        if r < 0.85:
            return self._pick(self.databases).encode("latin-1")
        return self._pick([b"%d" % n, b"99", b"-1", b"", b"nosuch", b"1x"])

    def param(self, name: bytes) -> bytes:
        """A value for parameter ``name``, by the kind the fuzzer's table gives it."""
        kind = _PARAMETERS.get(name, "bytes")
        if name in (b"key", b"prefix", b"origin", b"oval"):
            return self.key() if name != b"oval" else self._pick([self.value(), self.key()])
        if name in (b"value", b"nval"):
            return self.value()
        if name == b"xt":
            return b"%d" % self.xt()
        if name == b"num":
            return self._pick([b"1", b"-1", b"0", b"10", b"2.5", b"-0.5", b"x", b"9223372036854775807"])
        if name == b"orig":
            return self._pick([b"try", b"set", b"12", b"-3.5", b"x"])
        if name == b"regex":
            return self._pick(_REGEXES)
        if name in (b"max", b"range", b"step"):
            return self._pick([b"0", b"1", b"2", b"3", b"-1", b""])
        if name == b"name":
            return self._pick([b"echo", b"set", b"get", b"nosuch", b""])
        if kind == "flag":
            return self._pick([b"", b"1"])
        return self.value()

    # -------------------------------------------------------- steps

    def step(self) -> Step:
        kinds = list(KIND_WEIGHTS)
        kind = self.rng.choices(kinds, [KIND_WEIGHTS[k] for k in kinds])[0]
        step = {"rpc": self.rpc_step, "rest": self.rest_step, "binary": self.binary_step}[kind]()
        if step.channel == "http" and self.rng.random() < 0.12:
            step = self.http_variant(step)
        return step

    def http_variant(self, step: Step) -> Step:
        """The same request framed otherwise: HTTP/1.0, ``Connection: close``, another method on
        an RPC path, a Content-Type spelled otherwise, a path of odd shape."""
        head, sep, body = step.send.partition(b"\r\n\r\n")
        line, *headers = head.split(b"\r\n")
        method, target, version = line.split(b" ", 2)
        how = self._pick(["http/1.0", "close", "keep-alive/1.0", "method", "ctype", "path", "chunked"])
        if how == "http/1.0":
            version = b"HTTP/1.0"
        elif how == "close":
            headers.append(self._pick([b"Connection: close", b"connection: Close"]))
        elif how == "keep-alive/1.0":
            version = b"HTTP/1.0"
            headers.append(b"Connection: keep-alive")
        elif how == "method":
            # a body on a method whose body ktserver does not read: rarely (see "bodiless-methods")
            bodiless = not body or self.rng.random() < 0.2
            method = self._pick([b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"GET", b"POST"] if bodiless
                                else [b"PUT", b"OPTIONS", b"POST"])
        elif how == "ctype":
            spellings = [lambda h: h.lower(), lambda h: h.replace(b"colenc=", b"colenc=\""),
                         lambda h: h.replace(b"values", b"VALUES"), lambda h: h + b"; charset=UTF-8",
                         lambda h: h.replace(b"; colenc", b" ;colenc")]
            spell = self._pick(spellings)
            headers = [spell(h) if h.lower().startswith(b"content-type") else h for h in headers]
        elif how == "chunked" and method in (b"POST", b"PUT"):
            headers = [h for h in headers if not h.lower().startswith(b"content-length")]
            headers.append(b"Transfer-Encoding: chunked")
            cut = self.rng.randint(0, len(body))
            body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:cut], body[cut:]) if part)
            body += b"0\r\n\r\n"
        else:
            odd = [b"/", b"//" + target.lstrip(b"/"), b"/rpc", b"/rpc/", target + b"?", target + b"#frag",
                   b"/%/" + target.lstrip(b"/")]
            # raw control bytes, rarely (see "request-line-control")
            ctl = [target + b"\x01", b"/\x7f" + target.lstrip(b"/")]
            target = self._pick(ctl if self.rng.random() < 0.05 else odd)
        send = b"\r\n".join([b" ".join([method, target, version]), *headers]) + sep + body
        return Step("http", send, f"{step.note} [{how}]")

    def rpc_step(self) -> Step:
        """A TSV-RPC call, its parameters in the body (under a random colenc), a form or the query."""
        name = self.rng.choices(self._procs, self._proc_weights)[0]
        if self.rng.random() < 0.02:
            name = "no_such_procedure"
        proc = PROCEDURES.get(name)
        params: list[tuple[bytes, bytes]] = []
        for required in proc.required if proc else ():
            if self.rng.random() < 0.95:  # now and then a required parameter is missing
                params.append((required, self.param(required)))
        for optional in OPTIONAL.get(name, ()):
            if self.rng.random() < 0.45:
                params.append((optional, self.param(optional)))
        if name in ("set_bulk", "get_bulk", "remove_bulk", "play_script"):
            for _ in range(self.rng.randint(0, 4)):
                params.append((b"_" + self.key(), self.value() if name != "get_bulk" else b""))
            if name == "play_script" and self.rng.random() < 0.6:
                params += [(b"_key", self.key()), (b"_value", self.value())]
        if self.rng.random() < 0.05:  # an unknown parameter is ignored
            params.append((b"junk", self.value()))
        query: list[tuple[bytes, bytes]] = []
        target = proc.target if proc else "db"
        if target in ("db", "cursor") and self.rng.random() < 0.7:
            (query if self.rng.random() < 0.3 else params).append((b"DB", self.db_ref()))
        if target == "cursor" or name == "cur_delete":
            (query if self.rng.random() < 0.2 else params).append((b"CUR", self._pick(CURSORS)))
        if self.rng.random() < 0.03:
            params += [(b"WAIT", b"nobody"), (b"WAITTIME", b"0.01")]
        if self.rng.random() < 0.03:
            params.append((b"SIGNAL", b"nobody"))
        self.rng.shuffle(params)
        return self._rpc_request(name, params, query)

    def _rpc_request(self, name: str, params: list[tuple[bytes, bytes]],
                     query: list[tuple[bytes, bytes]]) -> Step:
        form = self.rng.choices(["tsv", "form", "get"], [8, 1, 1])[0]
        if form == "get":
            query, params = query + params, []
        qs = b"&".join(tsv.encode_field(k, "U") + b"=" + tsv.encode_field(v, "U") for k, v in query)
        path = b"/rpc/" + name.encode() + (b"?" + qs if query else b"")
        headers = [b"Host: 127.0.0.1"]
        note = name
        if form == "get":
            method, body = b"GET", b""
            note += " (query)"
        elif form == "form":
            method = b"POST"
            body = b"&".join(tsv.encode_field(k, "U") + b"=" + tsv.encode_field(v, "U") for k, v in params)
            headers.append(b"Content-Type: " + tsv.FORM_MIME)
            note += " (form)"
        else:
            method = b"POST"
            colenc = self._pick(COLENCS)
            if colenc is None and any(b"\t" in f or b"\n" in f for kv in params for f in kv):
                colenc = "B" if self.rng.random() < 0.9 else None  # raw and broken, now and then
            body, colenc = tsv.encode_records(params, colenc)
            headers.append(b"Content-Type: " + tsv.content_type(colenc))
            note += f" (colenc={colenc})"
        if query and form != "get":
            note += " +query"
        return Step("http", _http(method, path, headers, body), note)

    def rest_step(self) -> Step:
        """A RESTful request of one record, in the first database or one named in the path."""
        method = self.rng.choices([b"GET", b"HEAD", b"PUT", b"DELETE", b"POST", b"OPTIONS"],
                                  [5, 2, 5, 3, 1, 1])[0]
        key = self.key()
        path = b"/" + tsv.encode_field(key, "U")
        if self.rng.random() < 0.4:
            path = b"/" + tsv.encode_field(self.db_ref(), "U") + path
        headers = [b"Host: 127.0.0.1"]
        body = b""
        if method == b"PUT":
            body = self.value()
            if self.rng.random() < 0.4:
                headers.append(b"X-Kt-Mode: " + self._pick([b"set", b"add", b"replace", b"ADD", b"bogus"]))
            if self.rng.random() < 0.4:
                headers.append(b"X-Kt-Xt: " + self._pick(
                    # absolute dates only, fixed ones: a replay years later must store the same
                    [b"3000000000", b"1", b"0", b"-5", b"4102444800",
                     b"Fri, 01 Jan 2100 00:00:00 GMT", b"2100-01-01T00:00:00Z", b"junk"]))
        return Step("http", _http(method, path, headers, body, always_length=method in (b"PUT", b"POST")),
                    f"REST {method.decode()} {key[:20]!r}")

    def binary_step(self) -> Step:
        """A binary frame: set, remove or get in bulk, or play_script, over the databases (and past)."""
        n = len(self.databases)
        kind = self.rng.choices(["set", "remove", "get", "script"], [4, 2, 4, 1])[0]
        flags = int(Flag.NO_REPLY) if self.rng.random() < 0.15 else 0
        dbs = [min(int(self.rng.expovariate(1.2)), n) for _ in range(self.rng.randint(0, 4))]
        if kind == "set":
            records = [(db, XT_NONE if self.rng.random() < 0.4 else self.xt(), self.key(), self.value())
                       for db in dbs]
            send = codec.encode_set_bulk_request(flags, records)
        elif kind == "remove":
            send = codec.encode_remove_bulk_request(flags, [(db, self.key()) for db in dbs])
        elif kind == "get":
            send = codec.encode_get_bulk_request(flags, [(db, self.key()) for db in dbs])
        else:
            name = self._pick([b"echo", b"set", b"get", b"nosuch"])
            inputs = [(b"key", self.key()), (b"value", self.value())][: self.rng.randint(0, 2)]
            send = codec.encode_play_script_request(flags, name, inputs)
        if self.rng.random() < 0.03:  # a magic byte no frame has: both servers drop the connection
            send = self._pick([b"\xb5", b"\xbb", b"\x80"]) + send[1:]
            kind += " (bad magic)"
        return Step("binary", send, f"binary {kind} flags={flags} dbs={dbs}")


def _http(method: bytes, path: bytes, headers: list[bytes], body: bytes, *,
          always_length: bool = True) -> bytes:
    if body or always_length:
        headers = [*headers, b"Content-Length: %d" % len(body)]
    return b"\r\n".join([method + b" " + path + b" HTTP/1.1", *headers]) + b"\r\n\r\n" + body


def episode_rng(seed: int, index: int) -> random.Random:
    """The generator of episode ``index`` of run ``seed``: each episode is reproducible alone."""
    return random.Random(f"kyototycoon-difftest/{seed}/{index}")


def episode_steps(seed: int, index: int, length: int, databases: Sequence[str]) -> list[Step]:
    """The steps of episode ``index`` of run ``seed``."""
    gen = Generator(episode_rng(seed, index), databases)
    return [gen.step() for _ in range(length)]


# ------------------------------------------------------------------ normalising answers

#: ``report`` fields whose values describe the process, its host and its build, not the
#: databases: masked (their names are still compared). ``sys_*`` (the host's memory and the
#: process's CPU time) likewise.
REPORT_VOLATILE = frozenset({
    b"conf_kc_features", b"conf_kt_features", b"conf_os_name", b"serv_conn_count",
    b"serv_current_time", b"serv_proc_id", b"serv_running_term", b"serv_task_count",
    b"serv_thread_count", b"db_total_size",
})
REPORT_VOLATILE_PREFIXES = (b"sys_",)
#: ``status`` fields that are sizes of memory or of files (how the engine lays records out):
#: masked. Every other field (``count``, ``type``, ...) is compared.
STATUS_VOLATILE = frozenset({b"size", b"cusage", b"realsize"})
#: Answers whose ``xt`` lies within this many seconds of the request are time-relative:
#: compared as an offset from the clock of the request, with one second of slack (the two
#: servers read their clocks at different moments, and a replay runs at another time).
RELATIVE_WINDOW = 10**7
MASK = "*"


def _s(data: bytes) -> str:
    return data.decode("latin-1")


def xt_marker(xt: int, sent_at: float) -> Any:
    """An answered expiry: ``["rel", seconds from the request]`` or the absolute epoch."""
    if sent_at - 10 <= xt <= sent_at + RELATIVE_WINDOW:
        return ["rel", xt - int(sent_at)]
    return xt


def _mask_report(key: bytes, value: bytes) -> Any:
    if key in REPORT_VOLATILE or key.startswith(REPORT_VOLATILE_PREFIXES):
        return MASK
    if key.startswith(b"db_") and key[3:].isdigit():
        # "count=N size=M path=P": the size is memory (masked), count and path are data
        return " ".join(MASK if part.startswith(b"size=") else _s(part) for part in value.split(b" "))
    return _s(value)


def normalise_http(step: Step, response: Any, sent_at: float, procedure: str,
                   baseline: dict[bytes, int]) -> dict[str, Any]:
    """What a client can observe of an HTTP answer, as JSON-able data.

    Kept: status, reason, every header but ``Date`` (its value is the clock), sorted (their
    order means nothing to HTTP), the body decoded per its Content-Type (TSV records sorted:
    a map's order means nothing either). Changed: ``Location`` loses its authority (each
    server names its own port); ``xt`` fields and ``X-Kt-Xt`` go through :func:`xt_marker`;
    ``report``'s counters count from the episode's start (``baseline``) and its volatile fields
    and ``status``'s sizes are masked (:data:`REPORT_VOLATILE`, :data:`STATUS_VOLATILE`).
    """
    headers = []
    for name, value in response.raw_headers:
        low = name.lower()
        if low == b"date" or (low == b"content-length" and procedure in ("report", "status")):
            continue  # the clock; the length of an answer whose volatile fields are masked
        if low == b"location":
            scheme, _, rest = value.partition(b"//")
            value = scheme + b"//HOST" + rest[rest.find(b"/"):] if b"/" in rest else value
        if low == b"x-kt-xt" and (parsed := parsedate_tz(_s(value))) is not None:
            headers.append([_s(low), xt_marker(_epoch(parsed), sent_at)])
            continue
        headers.append([_s(low), _s(value)])
    headers.sort(key=lambda h: h[0])
    out: dict[str, Any] = {"status": response.status, "reason": response.reason, "headers": headers}
    ctype = response.header("content-type") or ""
    mime, colenc = tsv.parse_content_type(ctype)
    if mime == "text/tab-separated-values" and step.method != b"HEAD":
        try:
            records = tsv.decode_records(response.body, colenc)
        except ProtocolError as exc:
            out["body"] = _s(response.body)
            out["bad_tsv"] = str(exc)
            return out
        out["tsv"] = sorted(_norm_record(procedure, k, v, sent_at, baseline) for k, v in records)
    else:
        out["body"] = _s(response.body)
    return out


def _epoch(parsed: tuple) -> int:
    return calendar.timegm((*parsed[:6], 0, 0, 0)) - (parsed[9] or 0)


def _norm_record(procedure: str, key: bytes, value: bytes, sent_at: float,
                 baseline: dict[bytes, int]) -> list[Any]:
    # play_script's "get" answers the record's xt too (as "_xt" over TSV-RPC)
    is_xt = (key == b"xt" and procedure != "echo") or (key == b"_xt" and procedure == "play_script")
    if is_xt and value.lstrip(b"-").isdigit():
        return [_s(key), xt_marker(int(value), sent_at)]
    if procedure == "report":
        if key in baseline and value.isdigit():
            return [_s(key), int(value) - baseline[key]]
        return [_s(key), _mask_report(key, value)]
    if procedure == "status" and key in STATUS_VOLATILE:
        return [_s(key), MASK]
    return [_s(key), _s(value)]


def normalise_binary(answer: Any, sent_at: float) -> dict[str, Any]:
    """A binary answer as data: its type and fields, record expiries through :func:`xt_marker`."""
    if isinstance(answer, codec.GetBulkResponse):
        return {"get_bulk": [[db, xt_marker(xt, sent_at) if xt < XT_MAX else xt, _s(k), _s(v)]
                             for db, xt, k, v in answer.records]}
    if isinstance(answer, codec.PlayScriptResponse):
        return {"play_script": sorted([_s(k), xt_marker(int(v), sent_at) if k == b"xt" and v.isdigit()
                                       else _s(v)] for k, v in answer.records)}
    if isinstance(answer, (codec.SetBulkResponse, codec.RemoveBulkResponse)):
        return {type(answer).__name__: answer.hits}
    return {type(answer).__name__: True}


def procedure_of(step: Step) -> str:
    """The RPC procedure a step calls ('' for REST and binary)."""
    if step.channel != "http":
        return ""
    target = step.send.split(b" ", 2)[1] if step.send.count(b" ") >= 2 else b""
    if not target.startswith(b"/rpc/"):
        return ""
    return _s(target[5:].split(b"?", 1)[0])


# ------------------------------------------------------------------ a server under test


_SYNC = codec.encode_get_bulk_request(0, [])
#: The answer of a connection the server closed (or reset) instead of answering.
CLOSED = {"closed": True}


class Peer:
    """One server under test: its address, the episode's connections and counter baseline."""

    def __init__(self, host: str, port: int, databases: int, timeout: float = ANSWER_TIMEOUT):
        self.host = host
        self.port = port
        self.databases = databases
        self.timeout = timeout
        self._socks: dict[str, Optional[socket.socket]] = {"http": None, "binary": None}
        # one reader a connection, so bytes that came after an answer show up in the next one
        self._readers: dict[str, Any] = {"http": None, "binary": None}
        self.baseline: dict[bytes, int] = {}

    def _sock(self, channel: str) -> socket.socket:
        sock = self._socks[channel]
        if sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socks[channel] = sock
            self._readers[channel] = ResponseReader() if channel == "http" else \
                FrameReader(codec.RESPONSES_DECODERS)
        return sock

    def drop(self, channel: str) -> None:
        sock = self._socks[channel]
        if sock is not None:
            sock.close()
        self._socks[channel] = None
        self._readers[channel] = None

    def close(self) -> None:
        for channel in self._socks:
            self.drop(channel)

    def reset(self) -> None:
        """Empty every database, drop the connections (their cursors go), take counter baselines."""
        self.close()
        for index in range(self.databases):
            self.ask(Step("http", _http(b"GET", b"/rpc/clear?DB=%d" % index, [b"Host: 127.0.0.1"], b"",
                                        always_length=False)))
        report = self.ask(Step("http", _http(b"GET", b"/rpc/report", [b"Host: 127.0.0.1"], b"",
                                             always_length=False)), raw=True)
        self.baseline = {}
        for key, value in report:
            if key.startswith(b"cnt_") and value.isdigit():
                self.baseline[key] = int(value)
        self.close()

    def ask(self, step: Step, raw: bool = False) -> Any:
        """Send one step, read its answer; the normalised answer (``raw``: the TSV pairs)."""
        sent_at = time.time()
        try:
            sock = self._sock(step.channel)
            sock.sendall(step.send)
            if step.channel == "http":
                return self._http_answer(step, sock, sent_at, raw)
            return self._binary_answer(step, sock, sent_at)
        except (socket.timeout, TimeoutError):
            self.drop(step.channel)
            return {"timeout": True}
        except OSError:  # reset or refused: as good as closed (which of them is a race)
            self.drop(step.channel)
            return CLOSED

    def _read(self, channel: str, sock: socket.socket, deadline: float) -> bool:
        """Feed the channel's reader what arrives; False at EOF (the reader is told too)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        self._readers[channel].feed(chunk)
        return bool(chunk)

    def _http_answer(self, step: Step, sock: socket.socket, sent_at: float, raw: bool) -> Any:
        reader: ResponseReader = self._readers["http"]
        reader.expect(b"HEAD" if step.method == b"HEAD" else b"GET")
        deadline = time.monotonic() + self.timeout
        eof = False
        while True:
            try:
                response = reader.next_response()
            except ProtocolError as exc:
                self.drop("http")
                return {"bad_http": str(exc)}
            if response is not None:
                if not response.keep_alive or eof:
                    self.drop("http")
                if raw:
                    colenc = tsv.parse_content_type(response.header("content-type"))[1]
                    return tsv.decode_records(response.body, colenc)
                return normalise_http(step, response, sent_at, procedure_of(step), self.baseline)
            if eof:
                self.drop("http")
                return CLOSED
            eof = not self._read("http", sock, deadline)

    def _binary_answer(self, step: Step, sock: socket.socket, sent_at: float) -> Any:
        magic = step.send[0]
        flags = int.from_bytes(step.send[1:5], "big")
        if flags & Flag.NO_REPLY and magic != Magic.GET_BULK:  # ktserver answers get_bulk regardless
            # No answer is owed. An empty get_bulk on the same connection (always answered, and
            # counted as nothing) returns once the frame before it was applied: without it the
            # next step, on the other connection, could overtake this one.
            sock.sendall(_SYNC)
            sync = self._binary_answer(Step("binary", _SYNC), sock, sent_at)
            return {"no_reply": True} if sync == {"get_bulk": []} else sync
        reader: FrameReader = self._readers["binary"]
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                frame = reader.next_frame()
            except ProtocolError as exc:
                self.drop("binary")
                return {"bad_binary": str(exc)}
            if frame is not None:
                return normalise_binary(frame, sent_at)
            if not self._read("binary", sock, deadline):
                self.drop("binary")
                return CLOSED


# ------------------------------------------------------------------ comparing and shrinking


def same(a: Any, b: Any) -> bool:
    """Equal normalised answers; relative expiries ``["rel", n]`` may differ by a second."""
    if isinstance(a, list) and isinstance(b, list):
        if len(a) == 2 == len(b) and a[0] == "rel" == b[0] and all(isinstance(x[1], int) for x in (a, b)):
            return abs(a[1] - b[1]) <= 1
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def run_steps(peers: Sequence[Peer], steps: Sequence[Step]) -> list[list[Any]]:
    """Reset every peer, then send each step to each peer in turn: the answers, per peer."""
    for peer in peers:
        peer.reset()
    answers: list[list[Any]] = [[] for _ in peers]
    for step in steps:
        for i, peer in enumerate(peers):
            answers[i].append(peer.ask(step))
    for peer in peers:
        peer.close()
    return answers


def first_divergence(a: Sequence[Any], b: Sequence[Any]) -> Optional[int]:
    """Index of the first step whose answers differ, or None."""
    for i, (x, y) in enumerate(zip(a, b)):
        if not same(x, y):
            return i
    return None


def shrink(peers: Sequence[Peer], steps: list[Step], index: int, budget: int = 80) -> list[Step]:
    """A shorter step list that still diverges at its last step (greedy, at most ``budget`` runs).

    Starts from ``steps[:index + 1]`` and drops chunks, then single steps, keeping a cut when the
    answers still differ at the (new) last step.
    """
    current = list(steps[: index + 1])
    runs = 0

    def diverges(candidate: list[Step]) -> bool:
        nonlocal runs
        runs += 1
        answers = run_steps(peers, candidate)
        return first_divergence(answers[0], answers[1]) == len(candidate) - 1

    chunk = max(1, len(current) // 2)
    while chunk >= 1 and runs < budget:
        i = 0
        while i < len(current) - 1 and runs < budget:
            candidate = current[:i] + current[i + chunk:] if i + chunk < len(current) else current
            if candidate is not current and diverges(candidate):
                current = candidate
            else:
                i += chunk
        chunk //= 2
    return current


# ------------------------------------------------------------------ classifying divergences

#: Divergences known and not fixed yet, by name: why the embedded server answers otherwise.
KNOWN: dict[str, str] = {
    "cursor-direction": "on a B+ tree, cur_jump_back/cur_step_back make the cursor step backward "
                        "(and skip the way it moves); the embedded cursor always steps forward",
    "db-types": "the embedded server makes every database a key-ordered B+ tree: hash databases "
                "(*, -, .kch) iterate and answer cur_jump_back (501) and status as the real ones do "
                "only on ktserver",
    "match-similar-utf": "match_similar with utf converts invalid UTF-8 differently",
    "request-line-control": "control bytes in a request line: ktserver answers, the embedded server "
                            "closes the connection",
    "cursor-invalidation": "on ktserver, clear (and removing the record under it, on some types) "
                           "invalidates a cursor; the embedded cursor stays at its key",
    "bodiless-methods": "ktserver reads no body for GET, HEAD and DELETE (kthttp.h): the bytes of one are "
                        "read as the next request; the embedded server's request reader "
                        "(protocol/http.py) takes it by its Content-Length",
    "regex-c-string": "ktserver matches match_regex patterns against keys as C strings (up to their "
                      "first NUL byte); the embedded server against the whole key",
    "double-wrap": "increment_double past 2**63: ktserver's integer part wraps to -2**63 (the x86 "
                   "conversion), the embedded one saturates",
    "expiry-lazy": "ktserver keeps an expired record (invisible to get) until it purges it, so "
                   "match_* and count still see it for a while; the embedded server drops it at once",
}
_HASH_TYPES = ("*", "-", ".kch", ":")


def classify(steps: Sequence[Step], index: int, databases: Sequence[str], answers: Any = None) -> str:
    """A name from :data:`KNOWN` for the divergence at ``steps[index]``, or ``"new"``.

    Heuristic, from what the steps do (and ``answers``, what the servers answered there): a cursor that went
    backward in the episode, a step on a hash database, a ``status``, a ``match_similar`` with
    ``utf``, a control byte in a request line, ...
    """
    step = steps[index]
    if procedure_of(step) == "match_regex" and "\\x00" in repr(answers):
        return "regex-c-string"
    if any(_bodiless_with_body(s) for s in steps[:index + 1]):
        return "bodiless-methods"
    line = step.send.split(b"\r\n", 1)[0]
    if step.channel == "http" and any(c < 0x20 or c == 0x7F for c in line):
        return "request-line-control"
    proc = procedure_of(step)
    if proc == "status" or (proc.startswith("match_") and _on_hash(step, databases)):
        return "db-types"
    # a cursor lives on the database of the step that made it (any step with a CUR): on a hash one?
    if proc.startswith("cur_") and any(b"CUR" in _params_of(s) and _on_hash(s, databases)
                                       for s in steps[:index + 1] if s.channel == "http"):
        return "db-types"
    if any(procedure_of(s) == "increment_double" and _params_of(s).get(b"num", b"").startswith(b"92233")
           for s in steps[:index + 1]):
        return "double-wrap"
    if proc == "match_similar" and b"utf" in _params_of(step):
        return "match-similar-utf"
    before = [procedure_of(s) for s in steps[:index + 1]]
    if proc.startswith("cur_") and ("cur_jump_back" in before or "cur_step_back" in before):
        return "cursor-direction"
    if proc.startswith("cur_") and "clear" in before:
        return "cursor-invalidation"
    if any(_stores_expired(s) for s in steps[:index]):
        return "expiry-lazy"
    return "new"


def _bodiless_with_body(step: Step) -> bool:
    return step.channel == "http" and step.method in (b"GET", b"HEAD", b"DELETE") and \
        not step.send.endswith(b"\r\n\r\n")


def _stores_expired(step: Step) -> bool:
    """Does the step store a record that is expired at once?"""
    if step.channel == "binary":
        if step.send[:1] != bytes([Magic.SET_BULK]):
            return False
        try:
            frame, _ = codec.decode_set_bulk_request(step.send)
        except ProtocolError:
            return False
        return frame is not None and any(r[1] in XT_EXPIRED for r in frame.records)
    if b"x-kt-xt:" in step.send.lower():
        return True  # some of its dates are past
    xt = _params_of(step).get(b"xt")
    return xt is not None and xt.lstrip(b"-").isdigit() and int(xt) in XT_EXPIRED


def _params_of(step: Step) -> dict[bytes, bytes]:
    head, _, body = step.send.partition(b"\r\n\r\n")
    target = head.split(b" ", 2)[1]
    params = dict(tsv.parse_query(target.partition(b"?")[2], lenient=True))
    ctype = next((line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")[1:]
                  if line.lower().startswith(b"content-type:")), None)
    if ctype is not None and ctype.startswith(b"text/tab"):
        colenc = tsv.parse_content_type(ctype)[1]
        try:
            params.update(tsv.decode_records(body, colenc))
        except ProtocolError:
            pass
    elif ctype is not None:
        params.update(tsv.parse_form(body, lenient=True))
    return params


def _on_hash(step: Step, databases: Sequence[str]) -> bool:
    return _database_of(step, databases).endswith(_HASH_TYPES)


def _database_of(step: Step, databases: Sequence[str]) -> str:
    """The spec of the database an RPC step's ``DB`` names, as ktserver resolves it ('' if none)."""
    db = _params_of(step).get(b"DB", b"")
    if not db:
        return databases[0]
    if db[:1].isdigit():
        digits = db[: len(db) - len(db.lstrip(b"0123456789"))]
        index = int(digits)
        return databases[index] if index < len(databases) else ""
    name = _s(db)
    return name if name in databases else ""


# ------------------------------------------------------------------ a run


@dataclass
class Divergence:
    """The first divergence of one episode, and its shrunk reproduction."""

    seed: int
    episode: int
    index: int
    steps: list[Step]
    answers: list[list[Any]]
    category: str
    reproduction: list[Step] = field(default_factory=list)


@dataclass
class Episode:
    """One recorded episode: its steps and the reference server's answers.

    ``minimal`` marks the shrunk reproduction of a divergence (its steps are a subset of the
    episode's); ``known`` names the divergence from :data:`KNOWN` the embedded server still has.
    """

    seed: int
    index: int
    steps: list[Step]
    answers: list[Any]
    known: Optional[str] = None
    minimal: bool = False
    name: str = ""  # a hand-written case's name (then seed and index mean nothing)

    @property
    def id(self) -> str:
        if self.name:
            return self.name
        return f"s{self.seed}-e{self.index}" + ("-min" if self.minimal else "")

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "known": self.known,
                "steps": [{**s.as_json(), "answer": a} for s, a in zip(self.steps, self.answers)]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Episode:
        ident = data["id"]
        parts = ident.split("-")
        generated = len(parts) >= 2 and all(p[:1] in "se" and p[1:].isdigit() for p in parts[:2])
        seed, index = (int(p[1:]) for p in parts[:2]) if generated else (-1, -1)
        return cls(seed, index, [Step.from_json(s) for s in data["steps"]],
                   [s["answer"] for s in data["steps"]], data.get("known"), ident.endswith("-min"),
                   "" if generated else ident)


def run_seed(peers: Sequence[Peer], databases: Sequence[str], seed: int, steps: int, episode_length: int,
             *, do_shrink: bool = True, on_divergence: Callable[[Divergence], None] | None = None,
             ) -> tuple[list[Episode], list[Divergence]]:
    """Run ``steps`` steps of seed ``seed`` in episodes against ``peers`` (reference first).

    Returns the episodes with the reference's answers (a diverging one followed by its shrunk
    reproduction) and the divergences.
    """
    episodes: list[Episode] = []
    found: list[Divergence] = []
    for index in range((steps + episode_length - 1) // episode_length):
        length = min(episode_length, steps - index * episode_length)
        ep_steps = episode_steps(seed, index, length, databases)
        answers = run_steps(peers, ep_steps)
        episode = Episode(seed, index, ep_steps, answers[0])
        episodes.append(episode)
        at = first_divergence(answers[0], answers[1])
        if at is None:
            continue
        category = classify(ep_steps, at, databases, (answers[0][at], answers[1][at]))
        episode.known = category
        div = Divergence(seed, index, at, ep_steps, answers, category)
        if do_shrink:
            div.reproduction = shrink(peers, ep_steps, at)
            small = run_steps(peers, div.reproduction)
            if first_divergence(small[0], small[1]) is not None:
                last = len(div.reproduction) - 1
                episodes.append(Episode(seed, index, div.reproduction, small[0],
                                        classify(div.reproduction, last, databases,
                                                 (small[0][last], small[1][last])),
                                        minimal=True))
        found.append(div)
        if on_divergence is not None:
            on_divergence(div)
    return episodes, found


def describe(div: Divergence, peers: Sequence[Peer], names: Sequence[str] = ("reference", "embedded")) -> str:
    """A minimal reproduction as text: the steps, then what each server answered to the last."""
    steps = div.reproduction or div.steps[: div.index + 1]
    answers = run_steps(peers, steps) if div.reproduction else [a[: div.index + 1] for a in div.answers]
    lines = [f"divergence [{div.category}] in seed {div.seed} episode {div.episode} at step {div.index}; "
             f"reproduced by {len(steps)} step(s) from empty databases:"]
    for i, step in enumerate(steps):
        lines.append(f"  {i}. {step.channel} {step.note}: {step.send!r}")
    for name, got in zip(names, answers):
        lines.append(f"  {name} answered: {got[-1]!r}")
    return "\n".join(lines)
