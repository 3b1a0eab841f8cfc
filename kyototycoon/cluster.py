"""Clients for more than one server: :class:`ShardedKyotoTycoon` and :class:`FailoverKyotoTycoon`.

Both keep the API of :class:`~kyototycoon.KyotoTycoon` and run it on plain
``KyotoTycoon`` clients, one a server. Their methods are generated from the
tables below (which method goes where, how answers merge), not written one by
one.

**Key placement** (:class:`KetamaRing`) is ketama's, the continuum libketama
and libmemcached build, made by ``uhashring`` (``hash_fn="ketama"``): a server
named ``NAME`` of weight ``w`` gets ``floor(40 * n * w / sum(w))`` MD5 digests
of ``"NAME-0"``, ``"NAME-1"``... (``n`` servers), each giving 4 points (its
little-endian 32-bit words); a key goes to the first point at or after the
first little-endian word of ``md5(key bytes)``, wrapping round. A server is
named ``"host:port"`` by default (libketama's convention; libmemcached leaves
the port out when it is 11211: ``name_format="{host}"`` gives that). A client
in another language that builds its ring from the same names and weights
places every key on the same server.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import inspect
import itertools
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional, Union

from uhashring import HashRing

from kyototycoon.client import KyotoTycoon
from kyototycoon.client.cursor import Cursor
from kyototycoon.errors import ConnectionLost, ServerUnavailable

__all__ = ["FailoverKyotoTycoon", "KetamaRing", "ServerSpec", "ShardedKyotoTycoon", "key_hash"]

#: ``(host, port)``, ``(host, port, weight)`` or ``"host:port"``
ServerSpec = Union[tuple[str, int], tuple[str, int, int], str]


_FIRST_WORD = struct.Struct("<I").unpack_from


def key_hash(key: bytes) -> int:
    """ketama's hash of a key: the first little-endian 32-bit word of its MD5 digest."""
    return int.from_bytes(hashlib.md5(key).digest()[:4], "little")


def _key_bytes(key: Any) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"key must be str or bytes, not {type(key).__name__}")


class KetamaRing:
    """A ketama continuum over named, weighted servers (built by ``uhashring``).

    The lookup is done here, on the ring's points, so that ``bytes`` keys hash
    as their bytes (``uhashring`` hashes ``str(key)``) and a key whose hash
    equals a point lands on that point, as in libketama (``uhashring`` takes the
    next one).
    """

    #: keys whose place is remembered (the ring never changes, so neither do they); then it starts over
    CACHE_SIZE = 1 << 16

    def __init__(self, weights: Mapping[str, int]):
        if not weights:
            raise ValueError("a ring needs at least one server")
        self.uhashring = HashRing({name: {"weight": w} for name, w in weights.items()}, hash_fn="ketama")
        points = self.uhashring.get_points()
        self._points = [p for p, _ in points]
        self._names = [n for _, n in points]
        self.names = list(weights)
        # MD5 and a search cost about 2 µs a key in Python, more than a bulk call spends on it
        # otherwise: a key seen before is a dict lookup.
        self._cache: dict[str | bytes, str] = {}

    def _index(self, key: bytes) -> int:
        i = bisect.bisect_left(self._points, key_hash(key))
        return 0 if i == len(self._points) else i

    def node(self, key: str | bytes) -> str:
        """The name of the server that holds ``key``."""
        try:
            return self._cache[key]
        except (KeyError, TypeError):  # TypeError: an unhashable key (bytearray, memoryview)
            pass
        name = self._names[self._index(_key_bytes(key))]
        if type(key) is str or type(key) is bytes:
            cache = self._cache
            if len(cache) >= self.CACHE_SIZE:
                cache.clear()
            cache[key] = name
        return name

    def forget(self) -> None:
        """Drop the remembered places of keys (they are found again on next use)."""
        self._cache.clear()

    def split(self, keys: Iterable[Any]) -> dict[str, list]:
        """``keys`` grouped by the server that holds them (the hot loop of bulk calls: node() inlined)."""
        groups: dict[str, list] = {name: [] for name in self.names}
        cache = self._cache
        points, names, count = self._points, self._names, len(self._points)
        md5, first_word, search = hashlib.md5, _FIRST_WORD, bisect.bisect_left
        for key in keys:
            try:
                groups[cache[key]].append(key)
                continue
            except (KeyError, TypeError):
                pass
            kind = type(key)
            if kind is not str and kind is not bytes:
                groups[self.node(key)].append(key)
                continue
            i = search(points, first_word(md5(key.encode() if kind is str else key).digest())[0])
            name = names[i if i < count else 0]
            if len(cache) >= self.CACHE_SIZE:
                cache.clear()
            cache[key] = name
            groups[name].append(key)
        return {name: part for name, part in groups.items() if part}

    def nodes(self, key: str | bytes) -> Iterator[str]:
        """Every server, in the order the ring offers them to ``key`` (its own first)."""
        start = self._index(_key_bytes(key))
        seen: set[str] = set()
        count = len(self._names)
        for i in range(count):
            name = self._names[(start + i) % count]
            if name not in seen:
                seen.add(name)
                yield name
                if len(seen) == len(self.names):
                    return


def _parse_spec(spec: ServerSpec) -> tuple[str, int, int]:
    if isinstance(spec, str):
        host, sep, port_text = spec.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ValueError(f"a server is 'host:port', got {spec!r}")
        return host, int(port_text), 1
    if len(spec) == 2:
        return spec[0], int(spec[1]), 1
    if len(spec) == 3:
        host, port, weight = spec
        if type(weight) is not int or weight < 1:
            raise ValueError(f"a server's weight must be a positive int, got {weight!r}")
        return host, int(port), weight
    raise ValueError(f"a server is (host, port) or (host, port, weight), got {spec!r}")


class _Server:
    """One server of a cluster client: its lazily opened client and its health."""

    def __init__(self, name: str, host: str, port: int, weight: int, factory: Callable[[], KyotoTycoon],
                 timeout: float | None):
        self.name = name
        self.host = host
        self.port = port
        self.weight = weight
        self._factory = factory
        self._timeout = timeout
        self._client: Optional[KyotoTycoon] = None
        self._lock = threading.Lock()
        self.failures = 0  # in a row
        self.dead_until = 0.0  # monotonic time before which the server is not tried

    def __repr__(self) -> str:
        return f"<server {self.name} failures={self.failures}>"

    def client(self) -> KyotoTycoon:
        """The server's client, opened on first use (so a server may be down when the cluster starts)."""
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    client = self._factory()
                    client.open(self.host, self.port, timeout=self._timeout)
                    self._client = client
        return client

    def dead(self, now: float) -> bool:
        return self.dead_until > now

    def failed(self, retry_attempts: int, dead_timeout: float) -> None:
        self.failures += 1
        if self.failures >= retry_attempts:
            self.dead_until = time.monotonic() + dead_timeout

    def succeeded(self) -> None:
        if self.failures:
            self.failures = 0
            self.dead_until = 0.0

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _servers(specs: Sequence[ServerSpec], name_format: str, client_options: dict[str, Any],
             timeout: float | None) -> dict[str, _Server]:
    if not specs:
        raise ValueError("at least one server is needed")
    if "exceptions" in client_options and not client_options["exceptions"]:
        raise DeprecationWarning("not raising exceptions on error has been removed")

    def factory() -> KyotoTycoon:
        return KyotoTycoon(**client_options)

    factory()  # bad client options fail here, not on first use
    out: dict[str, _Server] = {}
    for spec in specs:
        host, port, weight = _parse_spec(spec)
        name = name_format.format(host=host, port=port)
        if name in out:
            raise ValueError(f"server {name} is given twice")
        out[name] = _Server(name, host, port, weight, factory, timeout)
    return out


# --------------------------------------------------------------------------- the tables

#: Methods that only read: a failover client retries them on the standby (and on ``read_from``).
READ_METHODS = frozenset({
    "get", "get_with_expire", "get_int", "check", "check_with_expire", "get_bulk", "count", "size",
    "status", "report", "match_prefix", "match_regex", "match_similar", "echo", "void",
})


def _public_methods() -> dict[str, Callable[..., Any]]:
    """KyotoTycoon's public methods, except those about the connection itself."""
    skip = {"open", "connect", "close", "cursor"}
    return {n: f for n, f in vars(KyotoTycoon).items()
            if not n.startswith("_") and callable(f) and n not in skip}


def _keyed_methods() -> frozenset[str]:
    """Methods on one record: those whose first parameter is the key (found by introspection)."""
    out = set()
    for name, func in _public_methods().items():
        params = list(inspect.signature(func).parameters)
        if len(params) > 1 and params[1] == "key":
            out.add(name)
    return frozenset(out)


KEYED_METHODS = _keyed_methods()


def _merge_keys(results: Sequence[list], limit: Any) -> list:
    """Keys from several servers, in key (byte) order, cut to ``limit`` as one server would."""
    keys = sorted(itertools.chain.from_iterable(results), key=_key_bytes)
    return keys[:limit] if isinstance(limit, int) and limit > 0 else keys


def _limit_arg(args: tuple, kwargs: dict) -> Any:
    return args[1] if len(args) > 1 else kwargs.get("limit")


def _merge_dicts(results: Sequence[Mapping]) -> dict:
    out: dict = {}
    for part in results:
        out.update(part)
    return out


# name -> how the answers of every server merge: (answers by server name, args, kwargs) -> answer
_FANOUT: dict[str, Callable[[dict[str, Any], tuple, dict], Any]] = {
    "match_prefix": lambda r, a, k: _merge_keys(list(r.values()), _limit_arg(a, k)),
    "match_regex": lambda r, a, k: _merge_keys(list(r.values()), _limit_arg(a, k)),
    "count": lambda r, a, k: sum(r.values()),
    "size": lambda r, a, k: sum(r.values()),
    "clear": lambda r, a, k: all(r.values()),
    "vacuum": lambda r, a, k: all(r.values()),
    "synchronize": lambda r, a, k: all(r.values()),
    "void": lambda r, a, k: all(r.values()),
    "report": lambda r, a, k: dict(r),  # server name -> that server's report
    "status": lambda r, a, k: dict(r),
}

def _items_by_server(kv: Mapping[Any, Any], groups: dict[str, list]) -> dict[str, dict]:
    return {name: {k: kv[k] for k in part} for name, part in groups.items()}


# name -> (the first argument split by server: (its value, keys by server) -> parts; merge the answers)
_BULK: dict[str, tuple[Callable[[Any, dict[str, list]], dict[str, Any]], Callable[[list], Any]]] = {
    "get_bulk": (lambda keys, groups: groups, _merge_dicts),
    "remove_bulk": (lambda keys, groups: groups, sum),
    "set_bulk": (_items_by_server, sum),
}


def _generated(cls: type, names: Iterable[str], make: Callable[[str], Callable[..., Any]]) -> None:
    """Give ``cls`` a method for each name, made by ``make(name)``, with KyotoTycoon's doc and signature."""
    methods = _public_methods()
    for name in names:
        method = functools.wraps(methods[name])(make(name))
        method.__module__ = cls.__module__
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, method)


# --------------------------------------------------------------------------- sharding


class ShardedKyotoTycoon:
    """Keys spread over several servers by ketama consistent hashing.

    ``servers`` are ``(host, port)``, ``(host, port, weight)`` or ``"host:port"``;
    ``client_options`` are :class:`~kyototycoon.KyotoTycoon`'s (``binary``,
    ``pack_type``, ``custom_packer``); ``timeout`` is each server's
    (connecting and each answer). Connections open on first use.

    - Methods on one key go to the key's server (:meth:`server_for`).
    - ``get_bulk``/``set_bulk``/``remove_bulk`` split the keys by server, send
      the parts at once (one thread a server) and merge the answers.
    - ``match_prefix``/``match_regex`` (merged in key order, cut to ``limit``),
      ``count``/``size`` (summed), ``clear``/``vacuum``/``synchronize``/``void``
      ask every server; ``report``/``status`` return ``{server name: answer}``.
    - Cursors are per server: ``cursor(server="host:port")``; anything else,
      on :meth:`server` (the plain client of one server).

    A call that fails with :class:`~kyototycoon.errors.ConnectionLost` raises
    :class:`~kyototycoon.errors.ServerUnavailable` naming the server. After
    ``retry_attempts`` failures in a row it is marked dead for
    ``dead_timeout`` seconds: its keys raise at once (``remove_dead=False``)
    or go to the next server on the ring (``remove_dead=True``), and fan-out
    calls leave it out. The first call after ``dead_timeout`` tries it again.
    A bulk or fan-out call that loses a server raises with ``partial``, the
    merged answers of the others.
    """

    def __init__(self, servers: Sequence[ServerSpec], *, retry_attempts: int = 2, dead_timeout: float = 30.0,
                 remove_dead: bool = False, timeout: float | None = 30, name_format: str = "{host}:{port}",
                 **client_options: Any):
        if type(retry_attempts) is not int or retry_attempts < 1:
            raise ValueError(f"retry_attempts must be a positive int, got {retry_attempts!r}")
        if dead_timeout < 0:
            raise ValueError(f"dead_timeout must not be negative, got {dead_timeout!r}")
        self.retry_attempts = retry_attempts
        self.dead_timeout = dead_timeout
        self.remove_dead = remove_dead
        self._servers = _servers(servers, name_format, client_options, timeout)
        self.ring = KetamaRing({s.name: s.weight for s in self._servers.values()})
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pool_lock = threading.Lock()

    # ------------------------------------------------------------ servers

    @property
    def servers(self) -> list[str]:
        """The servers' names, as the ring knows them."""
        return list(self._servers)

    def dead_servers(self) -> list[str]:
        """The servers marked dead now."""
        now = time.monotonic()
        return [s.name for s in self._servers.values() if s.dead(now)]

    def server(self, name: str) -> KyotoTycoon:
        """The plain client of server ``name`` (opened if need be)."""
        return self._server(name).client()

    def _server(self, name: str) -> _Server:
        try:
            return self._servers[name]
        except KeyError:
            raise ValueError(f"no server {name!r} (servers: {', '.join(self._servers)})") from None

    def server_for(self, key: str | bytes) -> str:
        """The server that ``key`` goes to now (another one if its own is dead and ``remove_dead``)."""
        name = self.ring.node(key)
        if not self.remove_dead:
            return name
        now = time.monotonic()
        if not self._servers[name].dead(now):
            return name
        for other in self.ring.nodes(key):
            if not self._servers[other].dead(now):
                return other
        return name  # all dead: the key's own server raises

    def cursor(self, server: str | None = None) -> Cursor:
        """A cursor over one server's records (keys are not in one order across servers)."""
        if server is None:
            raise ValueError(f"a sharded cursor needs server=, one of: {', '.join(self._servers)}")
        return self._run(self._server(server), "cursor", (), {})

    def __enter__(self) -> ShardedKyotoTycoon:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> bool:
        """Close every server's connections and the worker threads; True."""
        for srv in self._servers.values():
            srv.close()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
        return True

    # ------------------------------------------------------------ calls

    def _run(self, srv: _Server, method: str, args: tuple, kwargs: dict) -> Any:
        """``method`` on one server, keeping its health up to date."""
        if srv.dead(time.monotonic()):
            raise ServerUnavailable(f"server {srv.name} is marked dead (after {srv.failures} failures; "
                                    f"tried again {self.dead_timeout} s after the last)", srv.name)
        try:
            result = getattr(srv.client(), method)(*args, **kwargs)
        except ConnectionLost as exc:
            srv.failed(self.retry_attempts, self.dead_timeout)
            raise ServerUnavailable(f"server {srv.name}: {exc}", srv.name) from exc
        srv.succeeded()
        return result

    def _executor(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                pool = self._pool
                if pool is None:
                    pool = self._pool = ThreadPoolExecutor(len(self._servers), "kyototycoon-shard")
        return pool

    def _each(self, calls: dict[str, tuple]) -> tuple[dict[str, Any], Optional[ServerUnavailable]]:
        """Run ``{server: (method, args, kwargs)}`` at once; the answers, and the first failure."""
        names = list(calls)
        futures: dict[str, Future] = {}
        if len(names) > 1:
            pool = self._executor()
            for name in names[1:]:
                method, args, kwargs = calls[name]
                futures[name] = pool.submit(self._run, self._servers[name], method, args, kwargs)
        results: dict[str, Any] = {}
        failure: Optional[ServerUnavailable] = None
        # the first part runs on the calling thread: one hand-over fewer
        for name in names:
            try:
                if name in futures:
                    results[name] = futures[name].result()
                else:
                    method, args, kwargs = calls[name]
                    results[name] = self._run(self._servers[name], method, args, kwargs)
            except ServerUnavailable as exc:
                failure = failure or exc
        return results, failure

    def _keyed(self, method: str, args: tuple, kwargs: dict) -> Any:
        key: Any = args[0] if args else kwargs.get("key")  # None: server_for says what is wrong
        return self._run(self._servers[self.server_for(key)], method, args, kwargs)

    def _split(self, keys: Iterable[Any]) -> dict[str, list]:
        """``keys`` by the server each goes to now."""
        groups = self.ring.split(keys)
        if self.remove_dead:
            now = time.monotonic()
            for name in [n for n in groups if self._servers[n].dead(now)]:
                for key in groups.pop(name):
                    groups.setdefault(self.server_for(key), []).append(key)
        return groups

    def _bulk(self, method: str, args: tuple, kwargs: dict) -> Any:
        parts, merge = _BULK[method]
        first = args[0] if args else kwargs.pop("keys" if method != "set_bulk" else "kv_dict")
        groups = parts(first, self._split(first))
        rest = args[1:]
        results, failure = self._each({name: (method, (part, *rest), kwargs)
                                       for name, part in groups.items()})
        merged = merge(list(results.values()))
        if failure is not None:
            failure.partial = merged
            raise failure
        return merged

    def _fanout(self, method: str, args: tuple, kwargs: dict) -> Any:
        now = time.monotonic()
        targets = [s.name for s in self._servers.values() if not (self.remove_dead and s.dead(now))]
        results, failure = self._each({name: (method, args, kwargs) for name in targets})
        merged = _FANOUT[method](results, args, kwargs)
        if failure is not None:
            failure.partial = merged
            raise failure
        return merged


def _sharded_method(name: str) -> Callable[..., Any]:
    if name in _BULK:
        runner = ShardedKyotoTycoon._bulk
    elif name in _FANOUT:
        runner = ShardedKyotoTycoon._fanout
    else:
        runner = ShardedKyotoTycoon._keyed

    def method(self: ShardedKyotoTycoon, *args: Any, **kwargs: Any) -> Any:
        return runner(self, name, args, kwargs)

    return method


_generated(ShardedKyotoTycoon, sorted(KEYED_METHODS | set(_BULK) | set(_FANOUT)), _sharded_method)


# --------------------------------------------------------------------------- failover


class FailoverKyotoTycoon:
    """The :class:`~kyototycoon.KyotoTycoon` API on one of several masters (a dual-master pair).

    Calls go to the active master (:attr:`master`, ``"host:port"``). When it
    fails with :class:`~kyototycoon.errors.ConnectionLost`, the client
    switches to the next master in the list and calls
    ``on_failover(old, new)``; a read is then retried there, a write raises
    :class:`~kyototycoon.errors.ServerUnavailable` saying it may or may not
    have been applied (it is never sent twice). It switches back only when
    told (:meth:`switch_to`) or when that master fails in turn.

    ``read_from`` lists slaves that take the reads (round robin, the master
    when they fail). A slave is behind its master by its replication delay
    (``repl_delay`` in its ``report``): a read there may miss a write just
    acknowledged by the master.
    """

    def __init__(self, masters: Sequence[ServerSpec], *, on_failover: Callable[[str, str], Any] | None = None,
                 read_from: Sequence[ServerSpec] = (), timeout: float | None = 30, **client_options: Any):
        self._masters = _servers(masters, "{host}:{port}", client_options, timeout)
        self._readers = list(_servers(read_from, "{host}:{port}", client_options, timeout).values()) \
            if read_from else []
        self._order = list(self._masters.values())
        self._current = self._order[0]
        self._lock = threading.Lock()
        self._next_reader = itertools.count()
        self.on_failover = on_failover
        #: how many times the client switched master on its own
        self.failovers = 0

    @property
    def master(self) -> str:
        """The active master's name."""
        return self._current.name

    @property
    def masters(self) -> list[str]:
        return [s.name for s in self._order]

    def switch_to(self, name: str) -> None:
        """Make ``name`` the active master (e.g. back to the first once it has caught up)."""
        try:
            srv = self._masters[name]
        except KeyError:
            raise ValueError(f"no master {name!r} (masters: {', '.join(self._masters)})") from None
        with self._lock:
            self._current = srv

    def cursor(self) -> Cursor:
        """A cursor on the active master (it does not follow a failover)."""
        return self._current.client().cursor()

    def __enter__(self) -> FailoverKyotoTycoon:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> bool:
        """Close every connection; True."""
        for srv in [*self._order, *self._readers]:
            srv.close()
        return True

    def _fail_over(self, failed: _Server) -> _Server:
        """Move off ``failed`` (once, however many threads saw it fail); the master now active."""
        with self._lock:
            current = self._current
            if current is not failed:
                return current  # another thread switched already
            new = self._order[(self._order.index(failed) + 1) % len(self._order)]
            self._current = new
            self.failovers += 1
        if self.on_failover is not None:
            self.on_failover(failed.name, new.name)
        return new

    def _call(self, method: str, args: tuple, kwargs: dict) -> Any:
        read = method in READ_METHODS
        if read and self._readers:
            reader = self._readers[next(self._next_reader) % len(self._readers)]
            try:
                return getattr(reader.client(), method)(*args, **kwargs)
            except ConnectionLost:
                pass  # the masters answer instead
        srv = self._current
        for _attempt in range(len(self._order)):
            try:
                return getattr(srv.client(), method)(*args, **kwargs)
            except ConnectionLost as exc:
                new = self._fail_over(srv)
                if not read:
                    raise ServerUnavailable(
                        f"{method} on {srv.name} failed ({exc}): it may or may not have been applied; "
                        f"now using {new.name}", srv.name) from exc
                last, srv = exc, new
        raise ServerUnavailable(f"{method}: no master answered (last: {last})", srv.name) from last


def _failover_method(name: str) -> Callable[..., Any]:
    def method(self: FailoverKyotoTycoon, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, args, kwargs)

    return method


_generated(FailoverKyotoTycoon, sorted(_public_methods()), _failover_method)
