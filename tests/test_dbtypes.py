"""Database specs read as Kyoto Cabinet's PolyDB reads them (facts checked on ktserver 0.9.56b)."""

from __future__ import annotations

import pytest

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon, errors
from kyototycoon.server import EmbeddedServer
from kyototycoon.server.store import Store
from kyototycoon.server.store.dbtypes import CursorKind, DbType, parse_spec
from kyototycoon.server.textnum import atoix


@pytest.mark.parametrize("spec, path, name, dbtype", [
    ("%", "%", "%", DbType.GRASS),
    ("%#bnum=100#pccap=1m", "%", "%", DbType.GRASS),
    ("*", "*", "*", DbType.CACHE),
    (":", ":", ":", DbType.STASH),
    ("-", "-", "-", DbType.PHASH),
    ("+", "+", "+", DbType.PTREE),
    ("/data/casket.kch#bnum=1000", "/data/casket.kch", "casket.kch", DbType.HASH),
    ("a/b.kct", "a/b.kct", "b.kct", DbType.TREE),
    ("x.kcd", "x.kcd", "x.kcd", DbType.DIR),
    ("x.kcf", "x.kcf", "x.kcf", DbType.FOREST),
    ("t.kct#type=kch", "t.kct", "t.kct", DbType.HASH),  # type= wins over the extension
    ("users", "users", "users", DbType.GRASS),  # a plain name: the embedded server's default
])
def test_path_name_and_type(spec, path, name, dbtype):
    parsed = parse_spec(spec)
    assert (parsed.path, parsed.name, parsed.type) == (path, name, dbtype)


def test_cursor_kinds():
    specs = ("%", "a.kct", "a.kcf", "+", "-", "*", ":", "a.kch", "a.kcd")
    kinds = {s: parse_spec(s).cursor_kind for s in specs}
    assert kinds == {"%": CursorKind.TREE, "a.kct": CursorKind.TREE, "a.kcf": CursorKind.TREE,
                     "+": CursorKind.PROTO_TREE, "-": CursorKind.PROTO_HASH, "*": CursorKind.HASH,
                     ":": CursorKind.HASH, "a.kch": CursorKind.HASH, "a.kcd": CursorKind.HASH}


def test_atoix_units():
    assert [atoix(t) for t in (b"1m", b"1k", b" 2 g", b"1.5k", b"-3", b"x", b"12abc")] == [
        1 << 20, 1024, 2 << 30, 1536, -3, 0, 12]


def test_status_reports_tuning_and_cusage():
    store = Store(["%#bnum=100#pccap=1m", "*", "-"])
    tree, cache, proto = store.databases
    assert (tree.status()["bnum"], tree.status()["pccap"], tree.status()["cusage"]) == ("100", "1048576", "0")
    tree.set_bulk({b"k1": b"v1", b"k2": b"v2"})
    assert tree.status()["cusage"] == str(8 + 2 * (2 + 2 + 13))
    tree.clear()
    assert tree.status()["cusage"] == "0"
    assert (cache.status()["type"], cache.status()["size"]) == ("32", "8390592")
    proto.set(b"k1", b"v1")
    assert set(proto.status()) == {"count", "ktcapcnt", "ktcapsiz", "ktopts", "path", "realtype", "size",
                                   "type"}
    assert (proto.status()["size"], proto.status()["type"]) == ("9", "16")
    assert store.resolve("%") is tree


def test_hash_cursor_refuses_to_go_back_and_keeps_its_place():
    db = Store(["*"]).databases[0]
    db.set_bulk({b"k1": b"v", b"k2": b"v"})
    cur = db.cursor()
    with pytest.raises(errors.NoRecord):
        cur.jump(b"k1x")  # a hash database jumps to an exact key only
    cur.jump(b"k2")
    with pytest.raises(errors.NotImplementedByServer, match="DB: 1: not implemented: not implemented"):
        cur.step_back()
    assert cur.get_key() == b"k2"


def test_tree_cursor_walks_backward_after_jump_back():
    db = Store(["%"]).databases[0]
    db.set_bulk({b"k1": b"v", b"k2": b"v", b"k3": b"v"})
    cur = db.cursor()
    cur.jump_back(b"k2x")
    assert [cur.get_key(step=True), cur.get_key(step=True)] == [b"k2", b"k1"]
    assert not cur.valid  # past the first record: unpositioned, the step itself succeeded
    cur.jump_back()
    cur.remove()  # backward: the cursor moves to the previous record
    assert cur.get_key() == b"k2"
    cur.jump()
    assert cur.get_key(step=True) == b"k1" and cur.get_key() == b"k2"  # jump goes forward again


def test_proto_tree_step_back_from_nowhere_is_the_last_record():
    db = Store(["+"]).databases[0]
    db.set_bulk({b"k1": b"v", b"k2": b"v"})
    cur = db.cursor()
    cur.step_back()
    assert cur.get_key() == b"k2"
    cur.jump_back(b"k1")
    assert [cur.get_key(step=True), cur.get_key()] == [b"k1", b"k2"]  # no backward direction


def _client(srv: EmbeddedServer) -> KyotoTycoon:
    return KyotoTycoon(pack_type=KT_PACKER_BYTES).connect(srv.host, srv.port)


def test_file_databases_keep_their_records_at_their_path(tmp_path):
    path = tmp_path / "casket.kct"
    spec = f"{path}#pccap=1m"
    with EmbeddedServer([spec, "%"]) as srv, _client(srv) as kt:
        kt.set("k", b"v", db="casket.kct")
        kt.set("memory", b"gone", db=1)
        assert kt.status(db=0)["path"] == str(path)
    assert path.is_file()  # written when the server stopped
    with EmbeddedServer([spec, "%"]) as srv, _client(srv) as kt:
        assert kt.get("k", db=0) == b"v"
        assert kt.get("memory", db=1) is None  # a % database keeps nothing
        kt.set("k2", b"v2")
        assert kt.synchronize()
        copy = Store([spec])  # the server still runs: what synchronize wrote
        copy.load_files()
        assert copy.databases[0].items()[1][:2] == (b"k2", b"v2")
