"""Answers to HTTP requests: TSV-RPC under ``/rpc/`` and the RESTful interface everywhere else.

Sans-IO: takes a parsed :class:`~kyototycoon.protocol.http.Request`, returns
the response bytes, laid out as ktserver writes them (headers after
Content-Length in name order, as its header map sorts them).
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_tz
from typing import TYPE_CHECKING

from kyototycoon import errors
from kyototycoon.protocol import tsv
from kyototycoon.protocol.http import Request, build_response
from kyototycoon.server.rpc import Session, call_procedure, resolve_db
from kyototycoon.server.store import XT_MAX, Database

if TYPE_CHECKING:
    from kyototycoon.server.context import HandlerContext

_RPC_PREFIX = b"/rpc/"
#: Methods whose body ktserver never reads (kthttp.h reads one for POST, PUT and unknown methods
#: only): their parameters come from the query alone.
_BODILESS = frozenset({"GET", "HEAD", "DELETE"})
_CONTENT_LENGTH = re.compile(rb"\r\nContent-Length: [0-9]+")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date_of(epoch: int) -> bytes:
    """RFC 1123 date of an epoch second, for years past 9999 too (``time.gmtime`` copes, datetime not)."""
    t = time.gmtime(epoch)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday].encode(), t.tm_mday, _MONTHS[t.tm_mon - 1].encode(), t.tm_year,
        t.tm_hour, t.tm_min, t.tm_sec,
    )


_EPOCH = re.compile(r"[+-]?[0-9]+")


def parse_xt_header(value: str) -> int:
    """``X-Kt-Xt`` as ``kt::strmktime`` reads it: epoch seconds, an RFC 1123 or ISO 8601 date; -1 if none."""
    text = value.strip()
    if not text:
        return -1
    if _EPOCH.fullmatch(text):  # ASCII digits only: str.isdigit() also takes "²", which int() refuses
        return int(text)
    parsed = parsedate_tz(text)
    if parsed is not None:
        offset = parsed[9] or 0
        return calendar.timegm((*parsed[:6], 0, 0, 0)) - offset
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return -1
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def _rpc_params(request: Request) -> dict[bytes, bytes]:
    """The parameter map of a TSV-RPC request, built as ktserver's ``RPCServer`` builds it.

    The query string and then the body go into one map (later entries win).
    Under a TSV body's ``colenc``, the whole map is then decoded with it:
    the query's entries too, although they were URL-decoded already. So on
    a real server ``?DB=1`` with a ``colenc=B`` body names no database, and
    the request lands in database 0. Clients must put such parameters in the
    body; this server reproduces the rule so that code tested here behaves
    the same there.
    """
    params = dict(tsv.parse_query(request.query, lenient=True)) if request.query else {}
    ctype = request.headers.get("content-type")
    if ctype is None:
        return params
    # GET, HEAD and DELETE have no body (their bytes are the next request), but the TSV type's
    # colenc still decodes the query's map: ktserver answers GET /rpc/get?key=a with a
    # "colenc=B" Content-Type "invalid parameters" (the name "key" decodes to other bytes)
    bodiless = request.method in _BODILESS
    low = ctype.lower()
    if low.startswith("application/x-www-form-urlencoded"):
        if not bodiless:
            params.update(tsv.parse_form(request.body, lenient=True))
    elif low.startswith("text/tab-separated-values"):
        colenc = _rpc_colenc(ctype[len("text/tab-separated-values"):])
        if not bodiless:
            params.update(tsv.decode_records(request.body, None, lenient=True))
        if colenc is not None:
            params = _decode_map(params, colenc)
    return params


def _rpc_colenc(attrs: str) -> str | None:
    """The ``colenc`` of what follows the TSV type in a Content-Type, read as ``RPCServer`` reads it.

    Attributes are separated by blanks or ``;``; one that starts with
    ``colenc=`` (any case; an optional ``"``) sets the encoding when its first
    character is B, Q or U (any case) and leaves it as it was otherwise, so
    the last valid one wins and ``xcolenc=B`` is no attribute at all.
    """
    colenc = None
    for attr in attrs.replace(";", " ").split(" "):
        if attr[:7].lower() == "colenc=":
            first = attr[7:].lstrip('"')[:1].upper()
            if first and first in "BQU":
                colenc = first
    return colenc


def rpc_procedure_name(path: bytes) -> str:
    """The procedure a TSV-RPC path names: what follows ``/rpc/``, URL-decoded like ktserver does."""
    return tsv.decode_field(path[len(_RPC_PREFIX):], "U", lenient=True).decode("latin-1")


def _decode_map(params: dict[bytes, bytes], colenc: str) -> dict[bytes, bytes]:
    """ktserver's ``tsvmapdecode``: every entry decoded, in the map's key order, later ones winning.

    Each field is read as a C string, so it ends at its first NUL byte.
    """
    out = {}
    for raw in sorted(params):
        key = tsv.decode_field(raw.partition(b"\0")[0], colenc, lenient=True)
        out[key] = tsv.decode_field(params[raw].partition(b"\0")[0], colenc, lenient=True)
    return out


async def handle_http(server: HandlerContext, session: Session, request: Request) -> bytes:
    """The complete response to one request."""
    if request.path.startswith(_RPC_PREFIX):
        name = rpc_procedure_name(request.path)
        status, out = await call_procedure(server, session, name, _rpc_params(request))
        body, colenc = tsv.encode_records(out.items(), sort=True)
        head = request.method == "HEAD"
        response = build_response(status, [(b"Content-Type", tsv.content_type(colenc))], body,
                                  keep_alive=request.keep_alive, head=head)
        # ktserver's send_result writes Content-Length only with a body, and a HEAD gets none
        return _CONTENT_LENGTH.sub(b"", response, count=1) if head else response
    return handle_rest(server, request)


def _rest_target(server: HandlerContext, path: bytes) -> tuple[Database | None, bytes]:
    """ktserver's split of a REST path: ``/[db/]key``, both URL-encoded."""
    rest = path[1:] if path.startswith(b"/") else path
    db: Database | None = server.store.databases[0]
    slash = rest.find(b"/")
    if slash >= 0:
        db_expr = tsv.decode_field(rest[:slash], "U", lenient=True)
        rest = rest[slash + 1:]
        if rest.startswith(b"/"):
            rest = rest[1:]
        db = resolve_db(server, db_expr)
    return db, tsv.decode_field(rest, "U", lenient=True)


def _error_header(exc: errors.ServerError) -> tuple[bytes, bytes]:
    return (b"X-Kt-Error", exc.message.encode("utf-8"))


def handle_rest(server: HandlerContext, request: Request) -> bytes:
    """GET, HEAD, PUT and DELETE of one record; anything else is 501."""
    keep = request.keep_alive
    db, key = _rest_target(server, request.path)
    if db is None:
        if request.method == "HEAD":
            # ktserver writes Content-Length only for a body it sends or a header its handler
            # set; this answer comes before any handler, so a HEAD gets none
            return _CONTENT_LENGTH.sub(b"", build_response(400, None, keep_alive=keep, head=True), count=1)
        return build_response(400, None, b"no such database\n", keep_alive=keep)
    method = request.method
    counters = server.counters  # ktserver counts REST reads and writes as it counts RPC ones
    if method in ("GET", "HEAD"):
        head = method == "HEAD"
        counters["get"] += 1
        try:
            value, xt = db.get(key)
        except errors.ServerError as exc:
            counters["get_misses"] += 1
            return build_response(404 if isinstance(exc, errors.NoRecord) else 500, [_error_header(exc)],
                                  keep_alive=keep, head=head)
        headers = [(b"X-Kt-Xt", http_date_of(xt))] if xt < XT_MAX else None
        return build_response(200, headers, value, keep_alive=keep, head=head)
    if method == "PUT":
        mode = request.headers.get("x-kt-mode", "").lower()
        store = {"add": db.add, "replace": db.replace}.get(mode, db.set)
        raw_xt = request.headers.get("x-kt-xt")
        xt = parse_xt_header(raw_xt) if raw_xt is not None else -1
        counters["set"] += 1
        try:
            store(key, request.body, -xt if 0 < xt < XT_MAX else None)
        except errors.ServerError as exc:
            counters["set_misses"] += 1
            return build_response(450 if exc.status == 450 else 500, [_error_header(exc)], keep_alive=keep)
        location = b"http://" + server.server_name.encode("latin-1") + request.target
        return build_response(201, [(b"Location", location)], keep_alive=keep)
    if method == "DELETE":
        counters["remove"] += 1
        try:
            db.remove(key)
        except errors.ServerError as exc:
            counters["remove_misses"] += 1
            return build_response(404 if isinstance(exc, errors.NoRecord) else 500, [_error_header(exc)],
                                  keep_alive=keep)
        return build_response(204, None, keep_alive=keep)
    return build_response(501, None, keep_alive=keep)
