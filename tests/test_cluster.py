"""ShardedKyotoTycoon and FailoverKyotoTycoon against embedded servers, and their asyncio twins.

Every test on servers runs with the blocking clients and with AsyncShardedKyotoTycoon /
AsyncFailoverKyotoTycoon behind a blocking facade (tests/async_facade.py: one event loop in a
thread, uvloop's when installed, every call a task on it; the failover test's 8 threads are then
8 callers whose calls are tasks on that one loop). tests/test_cluster_aio.py has what only the
asyncio clients do (cancellation, many tasks, every loop).
"""

from __future__ import annotations

import inspect
import struct
import threading
import time
from collections import Counter

import pytest
from async_facade import BlockingFacade, CursorFacade, LoopThread
from hypothesis import given, settings
from hypothesis import strategies as st
from uhashring import HashRing

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon
from kyototycoon.cluster import (
    AsyncFailoverKyotoTycoon,
    AsyncShardedKyotoTycoon,
    FailoverKyotoTycoon,
    KetamaRing,
    ShardedKyotoTycoon,
    key_hash,
)
from kyototycoon.errors import ConnectionLost, KyotoTycoonException, ServerUnavailable
from kyototycoon.server import EmbeddedServer

# Known ketama placements: keys, their hash and the server libmemcached's ketama gives them over 8
# weighted servers (named by host alone, as libmemcached does for port 11211). From the
# "ketama_results" vector of Smile's KetamaNodeLocatorSpec, as kept in twitter/finagle's tests.
KETAMA_WEIGHTS = {"10.0.1.1": 600, "10.0.1.2": 300, "10.0.1.3": 200, "10.0.1.4": 350,
                  "10.0.1.5": 1000, "10.0.1.6": 800, "10.0.1.7": 950, "10.0.1.8": 100}
KETAMA_VECTOR = [
    ("SVa_]_V41)", 443691461, "10.0.1.7"),
    ("*/Z;?V(.\\8", 1422915503, "10.0.1.1"),
    ("30C1*Z*S/_", 1473165754, "10.0.1.2"),
    ("ERR:EC58G>", 2148406511, "10.0.1.7"),
    ("1I=cTMNTKF", 2882686667, "10.0.1.5"),
    ("/XLN0@+36;", 1623269830, "10.0.1.1"),
    ("726bW=9*a4", 4213440020, "10.0.1.7"),
    ("P1[Ma3=K1/", 1989324036, "10.0.1.8"),
    ("C89I.-V?cT", 1604239957, "10.0.1.8"),
    ("D[HE+cFXDK", 2117036136, "10.0.1.3"),
    ("\\39DKW^)N_", 3548879868, "10.0.1.3"),
    ("EM75N0+[X1", 1558531507, "10.0.1.4"),
    ("(,>E`)FT\\4", 580747448, "10.0.1.2"),
    ("6,cEI`F_P>", 3972869246, "10.0.1.6"),
    ("c,5AQ/T5)6", 2835605783, "10.0.1.8"),
    ("XY\\X::LX50", 1749241099, "10.0.1.6"),
    ("]\\.UH8_0a1", 2419699252, "10.0.1.4"),
    ("8*6a;Sc*X+", 4223431086, "10.0.1.2"),
    ("?@12R<=1BH", 1494795329, "10.0.1.8"),
    ("aPb3E1WD4K", 2500489218, "10.0.1.1"),
]


# --------------------------------------------------------------------------- the ring


def test_ring_matches_a_known_ketama_vector():
    ring = KetamaRing(KETAMA_WEIGHTS)
    for key, hashed, server in KETAMA_VECTOR:
        assert key_hash(key.encode()) == hashed
        assert ring.node(key) == server, key
    # the same through the client's server list: name_format="{host}" is libmemcached's naming
    sharded = ShardedKyotoTycoon([(h, 11211, w) for h, w in KETAMA_WEIGHTS.items()], name_format="{host}")
    assert [sharded.server_for(k) for k, _, _ in KETAMA_VECTOR] == [s for _, _, s in KETAMA_VECTOR]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1), min_size=1, max_size=20))
def test_ring_agrees_with_uhashring(keys):
    weights = {"127.0.0.1:1978": 1, "127.0.0.1:1979": 2, "10.0.0.5:1978": 1}
    ring = KetamaRing(weights)
    ref = HashRing({n: {"weight": w} for n, w in weights.items()}, hash_fn="ketama")
    points = {p for p, _ in ref.get_points()}
    for key in keys:
        if key_hash(key.encode()) in points:
            continue  # a hash equal to a point: libketama takes that point, uhashring the next
        assert ring.node(key) == ref.get_node(key)
        assert ring.node(key.encode()) == ring.node(key)  # bytes keys hash as their bytes


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(), st.binary(), st.binary().map(bytearray)), max_size=30))
def test_ring_split_groups_keys_as_node_places_them(keys):
    ring = KetamaRing({"a:1": 1, "b:1": 2, "c:1": 1})
    ring.CACHE_SIZE = 7  # the remembered places start over within the call
    for _ in range(2):  # the second time from what was remembered
        groups = ring.split(keys)
        assert sorted(groups) == sorted({ring.node(k) for k in keys})
        for name, part in groups.items():
            assert all(ring.node(k) == name for k in part)
        assert sum(len(p) for p in groups.values()) == len(keys)
    fresh = KetamaRing({"a:1": 1, "b:1": 2, "c:1": 1})
    assert all(fresh.node(k) == ring.node(k) for k in keys)


def test_bucket_table_agrees_with_the_search_at_every_point():
    # hashes at, just below and just above every point, as digests: the table's buckets that hold a
    # point are searched, the others go whole to one server; both must say what bisect says
    for weights in ({"a:1": 1, "b:1": 2, "c:1": 1}, {f"10.0.0.{i}:1978": i % 4 + 1 for i in range(30)}):
        ring = KetamaRing(weights)
        hashes = [h for p in ring._points for h in (p - 1, p, p + 1) if 0 <= h < 1 << 32]
        hashes += [0, (1 << 32) - 1, *range(0, 1 << 32, 7919 << 10)]
        digests = b"".join(struct.pack("<I12x", h) for h in hashes)
        assert list(ring.place(digests)) == [ring._number(h) for h in hashes]


def test_rings_of_255_servers_or_more_place_keys_one_by_one():
    ring = KetamaRing({f"h{i}:1": 1 for i in range(260)})
    keys = [f"k{i}" for i in range(500)]
    groups = ring.split(keys)
    assert sum(len(p) for p in groups.values()) == 500
    assert all(ring.node(k) == name for name, part in groups.items() for k in part)


def test_ring_weights_and_order():
    ring = KetamaRing({"a:1": 1, "b:1": 3})
    spread = Counter(ring.node(f"k{i}") for i in range(4000))
    assert 2.2 < spread["b:1"] / spread["a:1"] < 4.0
    order = list(ring.nodes("some key"))
    assert order[0] == ring.node("some key") and sorted(order) == ["a:1", "b:1"]


@pytest.mark.parametrize("cls", [ShardedKyotoTycoon, AsyncShardedKyotoTycoon])
def test_server_specs_are_checked(cls):
    with pytest.raises(ValueError, match="twice"):
        cls([("h", 1), "h:1"])
    with pytest.raises(ValueError, match="weight"):
        cls([("h", 1, 0)])
    with pytest.raises(ValueError, match="host:port"):
        cls(["nohost"])
    with pytest.raises(ValueError, match="at least one"):
        cls([])
    with pytest.raises(ValueError, match="retry_attempts"):
        cls([("h", 1)], retry_attempts=0)


@pytest.mark.parametrize(("sync", "aio"), [(ShardedKyotoTycoon, AsyncShardedKyotoTycoon),
                                           (FailoverKyotoTycoon, AsyncFailoverKyotoTycoon)])
def test_the_async_clients_have_the_same_methods(sync, aio):
    public = {n for n in dir(sync) if not n.startswith("_")}
    assert public - {"__enter__", "__exit__"} == {n for n in dir(aio) if not n.startswith("_")}
    for name in public - {"close", "server"}:  # the generated methods: KyotoTycoon's docs
        if inspect.iscoroutinefunction(getattr(aio, name)):
            assert getattr(aio, name).__doc__ == getattr(sync, name).__doc__, name
    assert inspect.iscoroutinefunction(aio.get_bulk) and inspect.iscoroutinefunction(aio.close)
    assert not inspect.iscoroutinefunction(aio.cursor)  # a cursor is made at once, as AsyncKyotoTycoon's


# --------------------------------------------------------------------------- the two drivers


@pytest.fixture(scope="module")
def loop_thread():
    loop = LoopThread()
    yield loop
    loop.stop()


class ClusterFacade(BlockingFacade):
    """An asyncio cluster client as a blocking one (cursor(server=...) takes its keyword)."""

    def __getattr__(self, name):
        if name == "cursor":
            return lambda *args, **kwargs: CursorFacade(self._target.cursor(*args, **kwargs), self._loop)
        return super().__getattr__(name)


@pytest.fixture(params=["sync", "async"])
def make(request, loop_thread):
    """``make(cls, *args, **kwargs)``: the blocking cluster client, or its asyncio twin behind a facade."""
    twins = {ShardedKyotoTycoon: AsyncShardedKyotoTycoon, FailoverKyotoTycoon: AsyncFailoverKyotoTycoon}

    def made(cls, *args, **kwargs):
        if request.param == "sync":
            return cls(*args, **kwargs)
        return ClusterFacade(twins[cls](*args, **kwargs), loop_thread)

    return made


# --------------------------------------------------------------------------- three servers


@pytest.fixture
def three():
    servers = [EmbeddedServer().start() for _ in range(3)]
    try:
        yield servers
    finally:
        for srv in servers:
            srv.stop()


@pytest.fixture
def sharded(make):
    """``sharded(servers, **options)``: a sharded client (of the test's driver) over embedded servers."""
    def made(servers, **options):
        options.setdefault("pack_type", KT_PACKER_BYTES)
        return make(ShardedKyotoTycoon, [srv.address for srv in servers], **options)

    return made


def _keys_on(srv: EmbeddedServer) -> set[bytes]:
    return srv.call(lambda: {k for k, _v, _xt in srv.store[0].items()})


@pytest.mark.parametrize("binary", [False, True])
def test_keys_land_where_the_ring_says(three, sharded, binary):
    with sharded(three, binary=binary) as kt:
        keys = [f"user:{i}" for i in range(300)]
        for key in keys[:30]:
            assert kt.set(key, b"v-" + key.encode())
        assert kt.set_bulk({k: b"v-" + k.encode() for k in keys[30:]}) == 270
        ring = HashRing({s: 1 for s in kt.servers}, hash_fn="ketama")
        for srv in three:
            name = f"{srv.host}:{srv.port}"
            assert _keys_on(srv) == {k.encode() for k in keys if ring.get_node(k) == name}
            assert _keys_on(srv)  # 300 keys reach every server
        assert kt.get("user:7") == b"v-user:7"
        assert kt.get_bulk([*keys, "missing"]) == {k: b"v-" + k.encode() for k in keys}
        assert kt.remove_bulk([*keys[:100], "missing"]) == 100
        assert kt.get_bulk(keys[:110]) == {k: b"v-" + k.encode() for k in keys[100:110]}
        assert kt.remove("user:150") and not kt.remove("user:150")


def test_fanout_calls_merge(three, sharded):
    with sharded(three) as kt:
        kt.set_bulk({f"p:{i:03d}": b"x" for i in range(60)} | {"q:1": b"y"})
        assert kt.count() == 61
        assert kt.size() == sum(KyotoTycoon().connect(*s.address).size() for s in three)
        assert kt.match_prefix("p:") == [f"p:{i:03d}" for i in range(60)]
        assert kt.match_prefix("p:", limit=5) == [f"p:{i:03d}" for i in range(5)]
        assert kt.match_regex("^p:00[0-4]$") == [f"p:00{i}" for i in range(5)]
        report = kt.report()
        assert sorted(report) == sorted(kt.servers)
        assert sum(int(r["db_total_count"]) for r in report.values()) == 61
        assert kt.increment("n", 5) == 5 and kt.increment("n", 1) == 6
        assert kt.clear() and kt.count() == 0


def test_cursor_is_per_server(three, sharded):
    with sharded(three) as kt:
        kt.set_bulk({f"k{i}": b"v" for i in range(30)})
        seen = []
        for name in kt.servers:
            with kt.cursor(server=name) as cur:
                cur.jump()
                seen += [k for k, _ in cur]
        assert sorted(seen) == sorted(f"k{i}" for i in range(30))
        with pytest.raises(ValueError, match="server="):
            kt.cursor()


def test_a_stopped_server_fails_its_keys_only_then_comes_back(three, sharded):
    kt = sharded(three, retry_attempts=2, dead_timeout=0.5, timeout=2)
    keys = [f"k{i}" for i in range(120)]
    kt.set_bulk({k: b"v" for k in keys})
    down = three[1]
    down_name = f"{down.host}:{down.port}"
    lost = [k for k in keys if kt.server_for(k) == down_name]
    kept = [k for k in keys if k not in lost]
    down.stop()
    for attempt in range(2):  # retry_attempts failures mark it dead
        assert down_name not in kt.dead_servers()
        with pytest.raises(ServerUnavailable) as info:
            kt.get(lost[attempt])
        assert info.value.server == down_name and down_name in str(info.value)
        assert isinstance(info.value, ConnectionLost)
    assert kt.dead_servers() == [down_name]
    with pytest.raises(ServerUnavailable, match="marked dead"):
        kt.get(lost[0])
    assert all(kt.get(k) == b"v" for k in kept[:20])  # the other servers' keys are unaffected
    with pytest.raises(ServerUnavailable) as info:
        kt.get_bulk(keys)
    assert info.value.server == down_name
    assert info.value.partial == {k: b"v" for k in kept}
    with pytest.raises(ServerUnavailable):
        kt.count()
    # back on the same port: tried again once dead_timeout has passed
    back = EmbeddedServer(port=down.port).start()
    try:
        deadline = time.monotonic() + 5
        while kt.dead_servers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kt.dead_servers() == []
        assert kt.get(lost[0]) is None  # a fresh, empty server
        assert kt.set(lost[0], b"again") and kt.get(lost[0]) == b"again"
        assert _keys_on(back) == {lost[0].encode()}
    finally:
        back.stop()
        kt.close()


def test_remove_dead_moves_keys_to_the_next_server(three, sharded):
    kt = sharded(three, retry_attempts=1, dead_timeout=60, remove_dead=True, timeout=2)
    keys = [f"k{i}" for i in range(120)]
    down = three[0]
    down_name = f"{down.host}:{down.port}"
    lost = [k for k in keys if kt.server_for(k) == down_name]
    assert lost
    down.stop()
    with pytest.raises(ServerUnavailable):
        kt.set(lost[0], b"v")  # the call that finds it down fails; it is now dead
    assert kt.dead_servers() == [down_name]
    moved = {k: kt.server_for(k) for k in lost}
    assert down_name not in moved.values()
    for k in lost:
        assert moved[k] == next(n for n in kt.ring.nodes(k) if n != down_name)
    assert kt.set_bulk({k: b"v" for k in keys}) == len(keys)
    assert kt.get_bulk(keys) == {k: b"v" for k in keys}
    assert kt.count() == len(keys)  # fan-out leaves the dead server out
    kt.close()


# --------------------------------------------------------------------------- failover


def test_failover_under_load_from_8_threads(make):
    a, b = EmbeddedServer().start(), EmbeddedServer().start()
    switches = []
    kt = make(FailoverKyotoTycoon, [a.address, b.address], pack_type=KT_PACKER_BYTES, timeout=2,
                             on_failover=lambda old, new: switches.append((old, new)))
    name_a, name_b = f"{a.host}:{a.port}", f"{b.host}:{b.port}"
    assert kt.master == name_a
    stop = threading.Event()
    halfway = threading.Barrier(9)
    read_errors: list[BaseException] = []
    write_errors: Counter[int] = Counter()
    writes_after: Counter[int] = Counter()

    def load(n: int) -> None:
        i = 0
        passed = False
        while not stop.is_set() and i < 100_000:
            i += 1
            try:
                kt.set(f"t{n}:{i}", b"v")
                if passed:
                    writes_after[n] += 1
            except ServerUnavailable as exc:
                assert "may or may not have been applied" in str(exc)
                write_errors[n] += 1
            try:
                kt.get(f"t{n}:{i}")
            except KyotoTycoonException as exc:
                read_errors.append(exc)
            if i == 50:
                halfway.wait(10)
                passed = True

    threads = [threading.Thread(target=load, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    halfway.wait(10)
    a.stop()
    deadline = time.monotonic() + 10
    while min((writes_after[n] for n in range(8)), default=0) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join(10)
    b_keys = b.call(lambda: b.store[0].count())
    b.stop()
    assert switches == [(name_a, name_b)] and kt.master == name_b and kt.failovers == 1
    assert read_errors == []  # reads are retried on the standby
    assert all(v <= 1 for v in write_errors.values()), write_errors  # one per thread at most
    assert min(writes_after[n] for n in range(8)) >= 20  # writes go on, on the standby
    assert b_keys >= 8 * 20
    kt.switch_to(name_a)
    assert kt.master == name_a
    kt.close()


def test_read_from_slaves_then_the_master(make):
    master, slave = EmbeddedServer().start(), EmbeddedServer().start()
    try:
        kt = make(FailoverKyotoTycoon, [master.address], read_from=[slave.address], pack_type=KT_PACKER_BYTES)
        assert kt.set("k", b"on master")
        assert kt.get("k") is None  # the reads went to the slave, which has not got it
        slave.call(lambda: slave.store[0].set(b"k", b"on slave"))
        assert kt.get("k") == b"on slave"
        slave.stop()
        assert kt.get("k") == b"on master"
        kt.close()
    finally:
        master.stop()
        slave.stop()


def test_failover_resends_reads_but_never_writes(make):
    a, b = EmbeddedServer().start(), EmbeddedServer().start()
    try:
        kt = make(FailoverKyotoTycoon, [a.address, b.address], pack_type=KT_PACKER_BYTES, timeout=2)
        assert kt.increment("n", 1) == 1
        b.call(lambda: b.store[0].set(b"k", b"on b"))
        a.stop()
        with pytest.raises(ServerUnavailable, match="may or may not have been applied") as info:
            kt.increment("n", 1)
        assert info.value.server == f"{a.host}:{a.port}"
        assert b.call(lambda: b.store[0].count()) == 1  # not sent again to the standby
        assert kt.master == f"{b.host}:{b.port}"
        assert kt.increment("n", 1) == 1  # later writes go to the standby
        kt.switch_to(f"{a.host}:{a.port}")
        assert kt.get("k") == b"on b"  # a read on the dead master is answered by the standby
        assert kt.master == f"{b.host}:{b.port}"
        b.stop()
        with pytest.raises(ServerUnavailable, match="no master answered"):
            kt.get("k")
        kt.close()
    finally:
        a.stop()
        b.stop()
