"""Database specs and types, as Kyoto Cabinet's ``PolyDB::open`` reads them, and their ``status``.

A spec is ``path#name=value#...``. The path (before the first ``#``) names the
type: ``-`` prototype hash, ``+`` prototype tree, ``:`` stash, ``*`` cache
hash, ``%`` cache tree ("grass"), or a file whose extension says it
(``.kch`` hash, ``.kct`` tree, ``.kcd`` directory, ``.kcf`` forest, and
their aliases); ``#type=`` overrides it. ktserver names the database after
the path's last ``/`` part.

The type decides what a cursor can do (see :mod:`kyototycoon.server.store`),
and what ``status`` reports. The fields below are what ktserver 0.9.56b
answers (``tests/data/ktserver_facts.json``); ``count``, ``cusage`` and
``size`` follow the records. A name with no type (``"a"``) is a ``%``
database, the embedded server's default.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from kyototycoon.server.textnum import atoix


class DbType(enum.IntEnum):
    """``kc::BasicDB::Type``: what ``status`` reports as ``type`` and ``realtype``."""

    PHASH = 0x10
    PTREE = 0x11
    STASH = 0x18
    CACHE = 0x20
    GRASS = 0x21
    HASH = 0x30
    TREE = 0x31
    DIR = 0x40
    FOREST = 0x41
    TEXT = 0x50


class CursorKind(enum.Enum):
    """How a type's cursor moves (Kyoto Cabinet's cursor classes)."""

    TREE = "tree"  # B+ trees: jump_back/step_back make later steps go backward
    PROTO_TREE = "ptree"  # std::map: step_back moves back, everything else forward
    PROTO_HASH = "phash"  # std::unordered_map: only an exact key for jump and jump_back
    HASH = "hash"  # hash databases: exact-key jump; jump_back/step_back "not implemented"


_PATH_TYPES = {"-": DbType.PHASH, "+": DbType.PTREE, ":": DbType.STASH, "*": DbType.CACHE, "%": DbType.GRASS}
_EXTENSIONS = {
    DbType.PHASH: ("kcph", "phdb"), DbType.PTREE: ("kcpt", "ptdb"), DbType.STASH: ("kcs", "sdb"),
    DbType.CACHE: ("kcc", "cdb"), DbType.GRASS: ("kcg", "gdb"), DbType.HASH: ("kch", "hdb"),
    DbType.TREE: ("kct", "tdb"), DbType.DIR: ("kcd", "ddb"), DbType.FOREST: ("kcf", "fdb"),
    DbType.TEXT: ("kcx", "xdb", "txt", "text", "tsv", "csv"),
}
_EXTENSION_TYPES = {ext: t for t, exts in _EXTENSIONS.items() for ext in exts}
_TYPE_WORDS = {
    DbType.PHASH: ("-", "kcph", "phdb", "phash"), DbType.PTREE: ("+", "kcpt", "ptdb", "ptree"),
    DbType.STASH: (":", "kcs", "sdb", "stash"), DbType.CACHE: ("*", "kcc", "cdb", "cache"),
    DbType.GRASS: ("%", "kcg", "gdb", "grass"), DbType.HASH: ("kch", "hdb", "hash"),
    DbType.TREE: ("kct", "tdb", "tree"), DbType.DIR: ("kcd", "ddb", "dir", "directory"),
    DbType.FOREST: ("kcf", "fdb", "for", "forest"), DbType.TEXT: ("kcx", "xdb", "txt", "text"),
}
_WORD_TYPES = {word: t for t, words in _TYPE_WORDS.items() for word in words}

_FILE_TYPES = frozenset({DbType.HASH, DbType.TREE, DbType.DIR, DbType.FOREST, DbType.TEXT})

CURSOR_KINDS = {
    DbType.GRASS: CursorKind.TREE, DbType.TREE: CursorKind.TREE, DbType.FOREST: CursorKind.TREE,
    DbType.PTREE: CursorKind.PROTO_TREE, DbType.PHASH: CursorKind.PROTO_HASH,
}

# Options that status reports, with the names PolyDB takes for them and ktserver's defaults.
_TUNING = {"bnum": ("bnum", "buckets"), "pccap": ("pccap", "cache_page_capacity")}

# status fields that do not move with the records, per type (ktserver 0.9.56b, defaults)
_TREE_FIELDS = {"first": "1", "icnt": "0", "last": "1", "lcnt": "1", "pnum": "2", "psiz": "8192",
                "rcomp": "lexical", "root": "1", "bnum": "65536", "pccap": "67108864"}
_FILE_FIELDS = {"dfunit": "0", "flags": "1", "fpow": "10", "frgcnt": "0", "msiz": "67108864", "trimmed": "0"}
_COMMON = {"fmtver": "5", "librev": "13", "libver": "16", "opts": "0", "recovered": "0", "reorganized": "0"}
_STATIC: dict[DbType, dict[str, str]] = {
    DbType.PHASH: {}, DbType.PTREE: {}, DbType.STASH: {},
    DbType.CACHE: {**_COMMON, "bnum": "1048583", "capcnt": "-1", "capsiz": "-1", "chksum": "255"},
    DbType.GRASS: {**_COMMON, **_TREE_FIELDS, "capcnt": "-1", "capsiz": "-1", "chksum": "255"},
    DbType.HASH: {**_COMMON, **_FILE_FIELDS, "apow": "3", "bnum": "1048583", "chksum": "188"},
    DbType.TREE: {**_COMMON, **_TREE_FIELDS, **_FILE_FIELDS, "apow": "8", "chksum": "188"},
    DbType.DIR: {**_COMMON, "chksum": "184", "flags": "0"},
    DbType.FOREST: {**_COMMON, **_TREE_FIELDS, "chksum": "184", "flags": "0"},
    DbType.TEXT: {**_COMMON},
}
# size = base + per-record overhead + key + value, fit to what ktserver reports for a few records
# (the trees' sizes stay put until pages are written, which these small databases never do)
_SIZE: dict[DbType, tuple[int, int]] = {
    DbType.PHASH: (0, 5), DbType.PTREE: (0, 5), DbType.STASH: (8388664, 17), DbType.CACHE: (8390592, 45),
    DbType.GRASS: (526693, 0), DbType.HASH: (6297720, 28), DbType.TREE: (400128, 0), DbType.DIR: (0, 41),
    DbType.FOREST: (157, 0), DbType.TEXT: (0, 0),
}
#: B+ tree page cache usage: a leaf's 8 bytes once it holds a record, 13 bytes of record header each
CUSAGE_LEAF, CUSAGE_RECORD = 8, 13


@dataclass(frozen=True)
class DbSpec:
    """One database as ktserver's command line gives it."""

    spec: str
    path: str
    name: str
    type: DbType
    options: dict[str, str] = field(default_factory=dict)

    def buckets(self, default: int) -> int:
        """The ``bnum`` tuning option (``buckets`` too), or ``default``."""
        for name in _TUNING["bnum"]:
            if name in self.options:
                bnum = atoix(self.options[name].encode())
                return bnum if bnum > 0 else default
        return default

    @property
    def is_file(self) -> bool:
        """A file database: its records live at :attr:`path` (loaded at start, saved on synchronize)."""
        return self.type in _FILE_TYPES

    @property
    def cursor_kind(self) -> CursorKind:
        return CURSOR_KINDS.get(self.type, CursorKind.HASH)

    def status(self, count: int, payload: int, leaf: bool) -> dict[str, str]:
        """The ``status`` answer for ``count`` records of ``payload`` key+value bytes.

        ``leaf``: a tree's page cache holds a leaf (from the first record on, until a clear).
        """
        out = dict(_STATIC[self.type])
        for key, names in _TUNING.items():
            if self.type is DbType.GRASS:  # verified there; hash types round bnum to a prime
                for name in names:
                    if name in self.options:
                        out[key] = str(atoix(self.options[name].encode()))
        base, per_record = _SIZE[self.type]
        size = base + payload + per_record * count if per_record else base
        out.update(count=str(count), size=str(size), path=self.path, type=str(int(self.type)),
                   realtype=str(int(self.type)), ktcapcnt="-1", ktcapsiz="-1", ktopts="0")
        if self.type in (DbType.HASH, DbType.TREE):
            out["realsize"] = str(size)
        if self.cursor_kind is CursorKind.TREE:
            out["cusage"] = str(CUSAGE_LEAF + payload + CUSAGE_RECORD * count if leaf else 0)
        return out


def parse_spec(spec: str) -> DbSpec:
    """Read ``spec`` as ``PolyDB::open`` does (a name with no type is a ``%`` database)."""
    path, *params = spec.split("#")
    options: dict[str, str] = {}
    for param in params:
        key, sep, value = param.partition("=")
        if sep:
            options[key] = value
    leaf = path.rsplit("/", 1)[-1]
    dbtype = _PATH_TYPES.get(leaf)
    if dbtype is None:
        _stem, dot, ext = leaf.rpartition(".")
        dbtype = _EXTENSION_TYPES.get(ext, DbType.GRASS) if dot else DbType.GRASS
    dbtype = _WORD_TYPES.get(options.get("type", ""), dbtype)
    return DbSpec(spec, path, leaf, dbtype, options)


def parse_specs(specs: Iterable[str]) -> list[DbSpec]:
    return [parse_spec(s) for s in specs]
