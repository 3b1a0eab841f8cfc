"""The methods of the binary protocol, written once as descriptions (see :mod:`.methods`).

Writes take ``no_reply=True``: the call is then a :data:`~.core.SEND`, with
no answer to wait for. The server's error frame (0xBF) raises
:class:`~kyototycoon.errors.ServerError` in the answer's parser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable

from kyototycoon._codec import binary as codec
from kyototycoon.errors import KyotoTycoonException, server_error
from kyototycoon.packers import _identity
from kyototycoon.protocol.framing import GetBulkInto

from ._constants import GET_BULK, NO_REPLY, PLAY_SCRIPT, REMOVE_BULK, SET_BULK, XT_NONE
from .core import BINARY, SEND, Call, value_answer
from .methods import ClientBase, constant, script_input
from .wire import binary_xt, db_index, key_bytes, key_text

# bound once: the C versions when they are built
_encode_get_one: Callable[[int, int, bytes], bytes] = codec.encode_get_bulk_request_one
_encode_set_one: Callable[[int, int, int, bytes, bytes], bytes] = codec.encode_set_bulk_request_one
_encode_remove_one: Callable[[int, int, bytes], bytes] = codec.encode_remove_bulk_request_one
_encode_get_bulk: Callable[[int, list[tuple[int, bytes]]], bytes] = codec.encode_get_bulk_request
_encode_get_keys = codec.encode_get_bulk_request_keys
_encode_set_items = codec.encode_set_bulk_request_items
_encode_remove_bulk: Callable[[int, list[tuple[int, bytes]]], bytes] = codec.encode_remove_bulk_request
_Pairs = list[tuple[bytes, bytes]]
_encode_play_script: Callable[[int, bytes, _Pairs], bytes] = codec.encode_play_script_request
_ErrorResponse = codec.ErrorResponse
# what the server's error frame is an answer to, for its message
_NAMES = {SET_BULK: "set_bulk", GET_BULK: "get_bulk", REMOVE_BULK: "remove_bulk", PLAY_SCRIPT: "play_script"}


def server_failed(magic: int) -> KyotoTycoonException:
    """The error for the server's error frame answering a ``magic`` request."""
    return server_error(None, "the server reported an error", _NAMES.get(magic))


def _sent(_: Any) -> bool:
    return True


def _sent_zero(_: Any) -> int:
    return 0


def _hits(magic: int, some: bool) -> Callable[[Any], Any]:
    """The parser of a set/remove answer: whether any record was hit (``some``), or how many.

    Two functions rather than one calling a ``then``: a call saved on every single set and remove.
    """
    if some:
        def parse_some(frame: Any) -> bool:
            if type(frame) is _ErrorResponse:
                raise server_failed(magic)
            hits: int = frame[0]
            return hits > 0

        return parse_some

    def parse_count(frame: Any) -> int:
        if type(frame) is _ErrorResponse:
            raise server_failed(magic)
        hits: int = frame[0]
        return hits

    return parse_count


_SET_ONE, _SET_COUNT = _hits(SET_BULK, True), _hits(SET_BULK, False)
_REMOVE_ONE, _REMOVE_COUNT = _hits(REMOVE_BULK, True), _hits(REMOVE_BULK, False)


def check_atomic(atomic: bool | None) -> None:
    if atomic:
        raise KyotoTycoonException("atomic supported under the HTTP protocol only")


@value_answer("unpack")
def get(c: ClientBase, key: str | bytes, db: object = 0) -> Call[Any]:
    """The unpacked value of ``key``, or None when there is no such record."""
    k = key.encode() if type(key) is str else key_bytes(key)
    if type(db) is not int or db & ~0xFFFF:
        db = db_index(db)
    unpack = c._unpack
    parse = _GET_PARSERS.get(unpack)
    if parse is None:
        parse = _get_parser(unpack)
    return Call(BINARY, _encode_get_one(0, db, k), GET_BULK, True, parse)


def _get_parser(unpack: Callable[[bytes], Any]) -> Callable[[Any], Any]:
    """The parser of a ``get`` answer for a packer's ``unpack`` (made once a packer, not once a call)."""
    def parse(frame: Any) -> Any:
        if type(frame) is _ErrorResponse:
            raise server_failed(GET_BULK)
        records = frame[0]
        if not records:
            return None
        value = records[0][3]
        return value if unpack is _identity else unpack(value)  # no call for the bytes packer

    if len(_GET_PARSERS) < 64:
        _GET_PARSERS[unpack] = parse
    return parse


_GET_PARSERS: dict[Callable[[bytes], Any], Callable[[Any], Any]] = {}


def get_bulk(c: ClientBase, keys: Iterable[Any], atomic: bool | None = None,
             db: object = 0) -> Call[dict[Any, Any]]:
    """The unpacked values of the ``keys`` that exist, keyed as given."""
    check_atomic(atomic)
    # the request and {key bytes: key as given} in one step (one C call for a list or tuple of keys)
    d = db if type(db) is int and not db & ~0xFFFF else 0
    request, wanted = _encode_get_keys(0, d, keys, key_bytes)
    if not wanted:
        return constant({})
    if d is not db:  # a database by name, or one out of range: checked only when there are keys
        request = _encode_get_bulk(0, [(db_index(db), k) for k in wanted])
    unpack = c._unpack

    def parse(frame: Any) -> dict[Any, Any]:
        if type(frame) is _ErrorResponse:
            raise server_failed(GET_BULK)
        found = frame[0]  # decoded by GetBulkInto as it arrived: {wanted[key]: value}
        # a second pass only for packers that transform (a KeyError there is the packer's own)
        return found if unpack is _identity else {k: unpack(v) for k, v in found.items()}

    # the answer's records go straight into the result as they arrive (no frame of record tuples)
    return Call(BINARY, request, GET_BULK, True, parse, into=lambda: GetBulkInto(wanted))


def set(c: ClientBase, key: str | bytes, value: Any, expire: Any = None, db: object = 0,
        no_reply: bool = False) -> Call[bool]:
    """Store ``value`` under ``key``; True (False if the database index does not exist)."""
    k = key.encode() if type(key) is str else key_bytes(key)
    if type(db) is not int or db & ~0xFFFF:
        db = db_index(db)
    xt = XT_NONE if expire is None else binary_xt(expire)
    pack = c._pack
    data = value if pack is _identity else pack(value)  # no call for the bytes packer
    request = _encode_set_one(NO_REPLY if no_reply else 0, db, xt, k, data)
    if no_reply:
        return Call(SEND, request, None, False, _sent)
    return Call(BINARY, request, SET_BULK, False, _SET_ONE)


def set_bulk(c: ClientBase, kv_dict: Mapping[Any, Any], expire: Any = None, atomic: bool | None = None,
             db: object = 0, no_reply: bool = False) -> Call[int]:
    """Store every ``key -> value``; the number stored (0 when ``no_reply``)."""
    check_atomic(atomic)
    if not kv_dict:
        return constant(0)
    d = db_index(db)
    xt = binary_xt(expire)
    pack = None if c._pack is _identity else c._pack
    # straight from the dict to the frame (one C call for a dict): no list of record tuples
    request = _encode_set_items(NO_REPLY if no_reply else 0, d, xt, kv_dict, pack, key_bytes)
    if no_reply:
        return Call(SEND, request, None, False, _sent_zero)
    return Call(BINARY, request, SET_BULK, False, _SET_COUNT)


def remove(c: ClientBase, key: str | bytes, db: object = 0, no_reply: bool = False) -> Call[bool]:
    """Remove ``key``; True, or False when there was no such record (True when ``no_reply``)."""
    request = _encode_remove_one(NO_REPLY if no_reply else 0, db_index(db), key_bytes(key))
    if no_reply:
        return Call(SEND, request, None, False, _sent)
    return Call(BINARY, request, REMOVE_BULK, False, _REMOVE_ONE)


def remove_bulk(c: ClientBase, keys: Iterable[Any], atomic: bool | None = None, db: object = 0,
                no_reply: bool = False) -> Call[int]:
    """Remove the ``keys``; the number removed (0 when ``no_reply``)."""
    check_atomic(atomic)
    d = db_index(db)
    records = [(d, key_bytes(k)) for k in keys]
    if not records:
        return constant(0)
    request = _encode_remove_bulk(NO_REPLY if no_reply else 0, records)
    if no_reply:
        return Call(SEND, request, None, False, _sent_zero)
    return Call(BINARY, request, REMOVE_BULK, False, _REMOVE_COUNT)


def play_script(c: ClientBase, name: str,
                kv_dict: Mapping[Any, bytes] | None = None) -> Call[dict[str | bytes, bytes]]:
    """Run the server-side script procedure ``name``; its output records (values are bytes)."""
    pairs = [(k[1:], v) for k, v in script_input(kv_dict)]
    request = _encode_play_script(0, key_bytes(name, "name"), pairs)

    def parse(frame: Any) -> dict[str | bytes, bytes]:
        if type(frame) is _ErrorResponse:
            raise server_failed(PLAY_SCRIPT)
        return {key_text(k): v for k, v in frame[0]}

    return Call(BINARY, request, PLAY_SCRIPT, False, parse)


#: the public methods of the binary client (every other one raises NotImplementedError)
BINARY_METHODS: dict[str, Callable[..., Any]] = {
    "get": get, "get_bulk": get_bulk, "set": set, "set_bulk": set_bulk, "remove": remove,
    "remove_bulk": remove_bulk, "play_script": play_script,
}
