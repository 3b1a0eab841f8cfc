"""Fuzz cases: valid and mutated requests of every protocol on the server's port.

Binary and replication requests come from the schema IR (:mod:`.generate`,
:mod:`.mutate`); HTTP requests are built from the RPC procedure table and a
dictionary of Kyoto Tycoon parameter names, then mutated in the ways HTTP
servers go wrong (garbage request lines, lying Content-Length, huge heads,
bad column encodings, broken chunking) or byte-wise.

Every case is a pure function of ``(seed, index)``, so a session with a
given ``--seed`` sends exactly the same bytes again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from ..protocol import tsv
from ..spec.rpc import PROCEDURES  # the procedures ktserver 0.9.56 implements
from .generate import Choices, RandomChoices, frame_codecs, random_frame, scan_layout
from .mutate import BYTE_MUTATIONS, mutate


@dataclass(frozen=True)
class Case:
    """Bytes to write on one fresh connection, and what they are."""

    protocol: str  # "binary", "replication" or "http": how answers are read and judged
    label: str  # e.g. "binary.set_bulk_request/lie_about_length"
    send: bytes


# ------------------------------------------------------------------ binary and replication

#: The frames a client may open a connection with, per protocol.
_REQUEST_SCHEMAS = {
    "binary": [
        ("binary", name)
        for name in ("set_bulk_request", "remove_bulk_request", "get_bulk_request", "play_script_request")
    ],
    "replication": [("replication", "replication_request")],
}


def frame_case(protocol: str, choices: Choices, mutated: bool) -> Case:
    """A valid (or one mutation of a valid) request frame of ``protocol``."""
    codec = frame_codecs()[choices.choice(_REQUEST_SCHEMAS[protocol])]
    wire = random_frame(codec, choices)
    label = f"{codec.module}.{codec.name}"
    if not mutated:
        return Case(protocol, label + "/valid", wire)
    spans, _ = scan_layout(codec.ir, wire)
    how, out = mutate(wire, spans, choices)
    return Case(protocol, f"{label}/{how}", out)


# ------------------------------------------------------------------ HTTP requests

# Parameter names Kyoto Tycoon's procedures read, with the kind of value each takes.
# WAIT is left out on purpose: a request told to wait is slow by design, not hung.
_PARAMETERS: dict[bytes, str] = {
    b"key": "bytes",
    b"value": "bytes",
    b"xt": "number",
    b"DB": "db",
    b"orig": "orig",
    b"num": "number",
    b"oval": "bytes",
    b"nval": "bytes",
    b"prefix": "bytes",
    b"regex": "regex",
    b"origin": "bytes",
    b"range": "number",
    b"utf": "flag",
    b"max": "number",
    b"CUR": "number",
    b"step": "flag",
    b"atomic": "flag",
    b"name": "script",
    b"SIGNAL": "bytes",
    b"SIGNALBROAD": "flag",
}

_VALUE_MAKERS: dict[str, Callable[[Choices], bytes]] = {
    "bytes": lambda c: c.binary(24),
    "number": lambda c: b"%d" % c.integer(-(2**63), 2**63 - 1),
    "db": lambda c: c.choice([b"0", b"1", b"7", b"%", b"-1", b"", b"nosuch"]),
    "orig": lambda c: c.choice([b"try", b"set", b"12", b"-3.5", b"x"]),
    "flag": lambda c: b"",
    # short patterns only: the point is the server's parsing, not regex engines' worst cases
    "regex": lambda c: c.choice([b"^a", b"a.*b", b"[", b"(", b"\\", b"x{2,3}", b""]),
    "script": lambda c: c.choice([b"echo", b"set", b"get", b"nosuch", b""]),
}

_COLENCS = [None, "U", "B", "Q"]
_METHODS_REST = [b"GET", b"HEAD", b"DELETE", b"PUT"]


@dataclass
class HttpRequest:
    """An HTTP request as parts, so mutations can lie about any of them."""

    line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    def assemble(self) -> bytes:
        head = [self.line, *(name + b": " + value for name, value in self.headers)]
        return b"\r\n".join(head) + b"\r\n\r\n" + self.body


def _rpc_params(choices: Choices) -> list[tuple[bytes, bytes]]:
    names = list(_PARAMETERS)
    params = []
    for _ in range(choices.integer(0, 5)):
        name = choices.choice(names)
        params.append((name, _VALUE_MAKERS[_PARAMETERS[name]](choices)))
    # bulk procedures and play_script take their records as "_name" parameters
    for _ in range(choices.integer(0, 3)):
        params.append((b"_" + choices.binary(8), choices.binary(16)))
    return params


def _length_header(body: bytes) -> tuple[bytes, bytes]:
    return (b"Content-Length", b"%d" % len(body))


def rpc_request(choices: Choices) -> HttpRequest:
    """A TSV-RPC call of a known (or now and then an unknown) procedure, in one of its three forms."""
    procedure = choices.choice([*(name.encode() for name in PROCEDURES), b"no_such_procedure"])
    params = _rpc_params(choices)
    host = (b"Host", b"127.0.0.1")
    form = choices.choice(["tsv", "query", "form"])
    if form == "query":
        query = b"&".join(tsv.encode_field(k, "U") + b"=" + tsv.encode_field(v, "U") for k, v in params)
        return HttpRequest(b"GET /rpc/%s?%s HTTP/1.1" % (procedure, query), [host])
    if form == "form":
        body = b"&".join(tsv.encode_field(k, "U") + b"=" + tsv.encode_field(v, "U") for k, v in params)
        content_type = (b"Content-Type", tsv.FORM_MIME)
        return HttpRequest(
            b"POST /rpc/%s HTTP/1.1" % procedure, [host, content_type, _length_header(body)], body
        )
    colenc = choices.choice(_COLENCS)
    body, colenc = tsv.encode_records(params, colenc if colenc else "B" if _needs_encoding(params) else None)
    headers = [host, (b"Content-Type", tsv.content_type(colenc)), _length_header(body)]
    return HttpRequest(b"POST /rpc/%s HTTP/1.1" % procedure, headers, body)


def _needs_encoding(params: list[tuple[bytes, bytes]]) -> bool:
    return any(b"\t" in f or b"\n" in f or b"\r" in f for kv in params for f in kv)


def rest_request(choices: Choices) -> HttpRequest:
    """A RESTful GET, HEAD, DELETE or PUT of one key."""
    method = choices.choice(_METHODS_REST)
    target = b"/" + tsv.encode_field(choices.binary(16), "U")
    headers = [(b"Host", b"127.0.0.1")]
    body = b""
    if method == b"PUT":
        body = choices.binary(32)
        if choices.integer(0, 1):
            headers.append((b"X-Kt-Mode", choices.choice([b"set", b"add", b"replace", b"bogus"])))
        if choices.integer(0, 1):
            headers.append((b"X-Kt-Xt", b"%d" % choices.integer(-(2**40), 2**40)))
        headers.append(_length_header(body))
    return HttpRequest(b"%s %s HTTP/1.1" % (method, target), headers, body)


def http_request(choices: Choices) -> HttpRequest:
    """A valid RPC or REST request, now and then HTTP/1.0 or with ``Connection: close``."""
    request = rpc_request(choices) if choices.integer(0, 3) else rest_request(choices)
    variant = choices.integer(0, 7)
    if variant == 0:
        request.line = request.line[: -len(b"1.1")] + b"1.0"
    elif variant == 1:
        request.headers.append((b"Connection", b"close"))
    return request


# ---- HTTP mutations: each changes one part of a valid request in a way servers get wrong

_GARBAGE_LINES = [
    b"",
    b"GET",
    b"GET /rpc/void",
    b"GET /rpc/void HTTP/9.9",
    b"GET  /rpc/void  HTTP/1.1",
    b"G\x00T /rpc/void HTTP/1.1",
    b"\x7fGET / HTTP/1.1",
    b"GET /\x01 HTTP/1.1",
    b"HELLO",
    b" / HTTP/1.1",
]


def garbage_request_line(request: HttpRequest, choices: Choices) -> bytes:
    request.line = choices.choice(_GARBAGE_LINES) if choices.integer(0, 3) else choices.binary(40)
    return request.assemble()


def lying_content_length(request: HttpRequest, choices: Choices) -> bytes:
    size = len(request.body)
    claim = choices.choice(
        [
            b"%d" % (size + 1),
            b"%d" % max(size - 1, 0),
            b"0",
            b"-1",
            b"99999999999",
            b"1e3",
            b"0x10",
            b"%d, %d" % (size, size + 1),
            b" ",
            b"18446744073709551616",
        ]
    )
    request.headers = [h for h in request.headers if h[0] != b"Content-Length"]
    request.headers.append((b"Content-Length", claim))
    return request.assemble()


def huge_head(request: HttpRequest, choices: Choices) -> bytes:
    if choices.integer(0, 1):
        request.headers.append((b"X-Fuzz", b"a" * choices.choice([8 * 1024, 70 * 1024])))
    else:
        request.headers += [(b"X-Fuzz-%d" % i, b"v") for i in range(choices.choice([500, 5000]))]
    return request.assemble()


_BAD_FIELDS = {
    "U": [b"%", b"%g0", b"%4", b"a%zz"],
    "B": [b"!!!!", b"abc", b"a=bc", b"===="],
    "Q": [b"=", b"=G1", b"=4"],
    "X": [b"k"],
}


def bad_colenc(request: HttpRequest, choices: Choices) -> bytes:
    colenc = choices.choice(list(_BAD_FIELDS))
    fields = [choices.choice(_BAD_FIELDS[colenc]) for _ in range(2)]
    request.body = fields[0] + b"\t" + fields[1] + b"\n"
    request.line = b"POST /rpc/echo HTTP/1.1"
    request.headers = [
        (b"Host", b"127.0.0.1"),
        (b"Content-Type", tsv.TSV_MIME + b"; colenc=" + colenc.encode()),
        _length_header(request.body),
    ]
    return request.assemble()


def bad_chunking(request: HttpRequest, choices: Choices) -> bytes:
    request.headers = [h for h in request.headers if h[0] != b"Content-Length"]
    request.headers.append((b"Transfer-Encoding", choices.choice([b"chunked", b"gzip", b"chunked, gzip"])))
    request.body = choices.choice(
        [
            b"zz\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabcdef\r\n0\r\n\r\n",
            b"ffffffffffffffff\r\nab\r\n",
            b"1" * 2000 + b"\r\n",
            b"0\r\n",
        ]
    )
    return request.assemble()


def bad_header_line(request: HttpRequest, choices: Choices) -> bytes:
    request.headers.append(
        choices.choice(
            [
                (b"No Colon", b""),
                (b" folded", b"line"),
                (b"X-A", b"a\x00b"),
                (b"X-B", b"a\rb"),
                (b"", b"empty name"),
            ]
        )
    )
    return request.assemble()


def _byte_mutation(request: HttpRequest, choices: Choices) -> tuple[str, bytes]:
    return mutate(request.assemble(), [], choices, BYTE_MUTATIONS)


HTTP_MUTATIONS: dict[str, Callable[[HttpRequest, Choices], bytes]] = {
    "garbage_request_line": garbage_request_line,
    "lying_content_length": lying_content_length,
    "huge_head": huge_head,
    "bad_colenc": bad_colenc,
    "bad_chunking": bad_chunking,
    "bad_header_line": bad_header_line,
}


def http_case(choices: Choices, mutated: bool) -> Case:
    """One to three pipelined requests; when ``mutated``, the last one is broken."""
    requests = [http_request(choices) for _ in range(choices.integer(1, 3))]
    valid = b"".join(r.assemble() for r in requests[:-1])
    if not mutated:
        return Case("http", "http/valid", valid + requests[-1].assemble())
    names = [*HTTP_MUTATIONS, "bytes"]
    name = choices.choice(names)
    if name == "bytes":
        name, last = _byte_mutation(requests[-1], choices)
    else:
        last = HTTP_MUTATIONS[name](requests[-1], choices)
    return Case("http", f"http/{name}", valid + last)


# ------------------------------------------------------------------ a session's cases

#: protocol -> relative weight in a session (replication requests open a stream: fewer of them)
PROTOCOL_WEIGHTS = {"binary": 5, "http": 5, "replication": 1}
#: out of 4 cases, how many are mutated
MUTATED_OUT_OF_4 = 3


def case_rng(seed: int, index: int, stream: str = "server") -> random.Random:
    """The generator of case ``index`` of a session: any one case is reproducible on its own."""
    return random.Random(f"kyototycoon-fuzz/{stream}/{seed}/{index}")


def session_case(seed: int, index: int) -> Case:
    """Case ``index`` of the session seeded ``seed``."""
    choices = RandomChoices(case_rng(seed, index))
    protocol = choices.choice([p for p, weight in PROTOCOL_WEIGHTS.items() for _ in range(weight)])
    mutated = choices.integer(0, 3) < MUTATED_OUT_OF_4
    if protocol == "http":
        return http_case(choices, mutated)
    return frame_case(protocol, choices, mutated)
