"""In-memory storage engine of the embedded server: databases, cursors, update log, signals.

No networking here: the protocol handlers translate requests into calls on
:class:`Store` / :class:`Database` / :class:`Cursor` and errors into answers.
One module a concern:

- :mod:`.core`: :class:`Store`, the databases of a server by index and name;
- :mod:`.dbtypes`: database specs and types as ktserver reads them, ``status``;
- :mod:`.database`: :class:`Database`, the records and every operation on them;
- :mod:`.cursor`: the cursors, one class a kind of database;
- :mod:`.expiry`, :mod:`.numbers`: expiration times, ``increment`` records;
- :mod:`.similarity`: ``match_similar``'s distances;
- :mod:`.log`: the update log; :mod:`.signals`: named signals;
- :mod:`.snapshot`: snapshot files; :mod:`.common`: the real server's error answers.
"""

from kyototycoon.server.store.common import DbRef, KeyLike
from kyototycoon.server.store.core import Store
from kyototycoon.server.store.cursor import Cursor, HashCursor, ProtoHashCursor, ProtoTreeCursor
from kyototycoon.server.store.database import DEFAULT_REGEX_TIMEOUT, Database
from kyototycoon.server.store.expiry import XT_MAX, absolute_xt
from kyototycoon.server.store.log import OP_CLEAR, OP_REMOVE, OP_SET, TS_MULTIPLIER, LogRecord, next_log_ts
from kyototycoon.server.store.numbers import decode_double, decode_int, encode_double, encode_int
from kyototycoon.server.store.similarity import levenshtein
from kyototycoon.server.store.snapshot import SnapshotError

__all__ = [
    "DEFAULT_REGEX_TIMEOUT",
    "OP_CLEAR",
    "OP_REMOVE",
    "OP_SET",
    "TS_MULTIPLIER",
    "XT_MAX",
    "Cursor",
    "Database",
    "DbRef",
    "HashCursor",
    "KeyLike",
    "LogRecord",
    "ProtoHashCursor",
    "ProtoTreeCursor",
    "SnapshotError",
    "Store",
    "absolute_xt",
    "decode_double",
    "decode_int",
    "encode_double",
    "encode_int",
    "levenshtein",
    "next_log_ts",
]
