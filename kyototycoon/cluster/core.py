"""What the cluster clients decide, without I/O: servers and their health, routing, merging, failover.

Both drivers (:mod:`.sync`, threads; :mod:`.aio`, asyncio tasks) run the
same plans. A plan (:data:`Steps`) is a generator: it yields the calls to
make at once, ``{server: (method, args, kwargs)}``, is sent back what each
one gave (its answer, or the exception it raised) and finally returns the
call's answer or raises. A driver only carries calls to servers and back;
everything else (which server a key goes to, which are dead, what a lost
server means for a bulk call, when to fail over) is here, once.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any, Callable, Optional, Union

from kyototycoon.client import KyotoTycoon
from kyototycoon.errors import ConnectionLost, ServerUnavailable

from .ring import KetamaRing, key_bytes

__all__ = ["KEYED_METHODS", "READ_METHODS", "FailoverPlans", "Run", "Server", "ServerSpec", "ShardedPlans",
           "Steps"]

#: ``(host, port)``, ``(host, port, weight)`` or ``"host:port"``
ServerSpec = Union[tuple[str, int], tuple[str, int, int], str]

#: ``(method name, args, kwargs)``: one call to make on a server
Job = tuple[str, tuple, dict]
#: a plan: yields ``{server: job}`` to run at once, is sent ``{server: answer or exception}``
Steps = Generator[dict["Server", Job], Any, Any]


class Run:
    """A plan run step by step by a driver: ``jobs`` to do next (empty once done), then ``value``.

    A driver's loop is ``while run.jobs: run.send(<what the jobs gave>)``, then ``run.value``.
    """

    __slots__ = ("jobs", "steps", "value")

    def __init__(self, steps: Steps):
        self.steps = steps
        self.value: Any = None
        self.jobs: dict[Server, Job] = {}
        self.send(None)

    def send(self, outcomes: dict[Server, Any] | None) -> None:
        try:
            self.jobs = self.steps.send(outcomes)
        except StopIteration as stop:
            self.jobs = {}
            self.value = stop.value


def parse_spec(spec: ServerSpec) -> tuple[str, int, int]:
    """``(host, port, weight)`` of a server as the constructors take it."""
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


class Server:
    """One server of a cluster client: its plain client (opened by the driver on first use) and its health."""

    def __init__(self, name: str, host: str, port: int, weight: int, client: Any, timeout: float | None):
        self.name = name
        self.host = host
        self.port = port
        self.weight = weight
        self.client = client  # a KyotoTycoon or an AsyncKyotoTycoon, not opened yet
        self.timeout = timeout  # connecting, and each answer
        self.opened = False
        self.lock = threading.Lock()  # the blocking driver's, to open the client once
        self.alock: Any = None  # the asyncio driver's (an asyncio.Lock, made in the loop that uses it)
        self.failures = 0  # in a row
        self.dead_until = 0.0  # monotonic time before which the server is not tried

    def __repr__(self) -> str:
        return f"<server {self.name} failures={self.failures}>"

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


def make_servers(specs: Sequence[ServerSpec], name_format: str, client_class: Callable[..., Any],
                 client_options: dict[str, Any], timeout: float | None) -> dict[str, Server]:
    """``{name: Server}`` for ``specs``, each with a new (unopened) ``client_class(**client_options)``."""
    if not specs:
        raise ValueError("at least one server is needed")
    if "exceptions" in client_options and not client_options["exceptions"]:
        raise DeprecationWarning("not raising exceptions on error has been removed")
    out: dict[str, Server] = {}
    for spec in specs:
        host, port, weight = parse_spec(spec)
        name = name_format.format(host=host, port=port)
        if name in out:
            raise ValueError(f"server {name} is given twice")
        client = client_class(**client_options)  # bad options fail here, not on first use
        out[name] = Server(name, host, port, weight, client, timeout)
    return out


# --------------------------------------------------------------------------- the tables

#: Methods that only read: a failover client retries them on the standby (and on ``read_from``).
READ_METHODS = frozenset({
    "get", "get_with_expire", "get_int", "check", "check_with_expire", "get_bulk", "count", "size",
    "status", "report", "match_prefix", "match_regex", "match_similar", "echo", "void",
})


def public_methods() -> dict[str, Callable[..., Any]]:
    """KyotoTycoon's public methods, except those about the connection itself."""
    skip = {"open", "connect", "close", "cursor"}
    return {n: f for n, f in vars(KyotoTycoon).items()
            if not n.startswith("_") and callable(f) and n not in skip}


def _keyed_methods() -> frozenset[str]:
    """Methods on one record: those whose first parameter is the key (found by introspection)."""
    out = set()
    for name, func in public_methods().items():
        params = list(inspect.signature(func).parameters)
        if len(params) > 1 and params[1] == "key":
            out.add(name)
    return frozenset(out)


KEYED_METHODS = _keyed_methods()


def _merge_keys(results: Iterable[list], limit: Any) -> list:
    """Keys from several servers, in key (byte) order, cut to ``limit`` as one server would."""
    keys = sorted(itertools.chain.from_iterable(results), key=key_bytes)
    return keys[:limit] if isinstance(limit, int) and limit > 0 else keys


def _limit_arg(args: tuple, kwargs: dict) -> Any:
    return args[1] if len(args) > 1 else kwargs.get("limit")


def _merge_dicts(results: Iterable[dict]) -> dict:
    """The parts' items in one dict: the largest part (a fresh dict of its server's answer) takes the rest."""
    parts = sorted(results, key=len)
    if not parts:
        return {}
    out = parts.pop()
    for part in parts:
        out.update(part)
    return out


# name -> how the answers of every server merge: (answers by server name, args, kwargs) -> answer
FANOUT: dict[str, Callable[[dict[str, Any], tuple, dict], Any]] = {
    "match_prefix": lambda r, a, k: _merge_keys(r.values(), _limit_arg(a, k)),
    "match_regex": lambda r, a, k: _merge_keys(r.values(), _limit_arg(a, k)),
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


# name -> (its first argument's name, split by server: (its value, keys by server) -> parts, merge)
BULK: dict[str, tuple[str, Callable[[Any, dict[str, list]], dict[str, Any]], Callable[[Iterable], Any]]] = {
    "get_bulk": ("keys", lambda keys, groups: groups, _merge_dicts),
    "remove_bulk": ("keys", lambda keys, groups: groups, sum),
    "set_bulk": ("kv_dict", _items_by_server, sum),
}

#: what a sharded client has, besides KyotoTycoon's connection methods
SHARDED_METHODS = sorted(KEYED_METHODS | set(BULK) | set(FANOUT))
#: what a failover client has
FAILOVER_METHODS = sorted(public_methods())


def generate(cls: type, names: Iterable[str], make: Callable[[str], Callable[..., Any]],
             like: type = KyotoTycoon) -> None:
    """Give ``cls`` a method for each name, made by ``make(name)``, with the doc and signature of ``like``'s.
    """
    for name in names:
        method = functools.wraps(getattr(like, name))(make(name))
        method.__module__ = cls.__module__
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, method)


def _answer(value: Any) -> Any:
    """A call's outcome as its answer: an exception is raised."""
    if isinstance(value, BaseException):
        raise value
    return value


# --------------------------------------------------------------------------- sharding


class ShardedPlans:
    """The state and the plans of a sharded client (the drivers add the I/O)."""

    #: the plain client a server gets (the driver's)
    client_class: Callable[..., Any] = KyotoTycoon

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
        self.timeout = timeout
        self._servers = make_servers(servers, name_format, self.client_class, client_options, timeout)
        self.ring = KetamaRing({s.name: s.weight for s in self._servers.values()})

    def _all_servers(self) -> list[Server]:
        return list(self._servers.values())

    @property
    def servers(self) -> list[str]:
        """The servers' names, as the ring knows them."""
        return list(self._servers)

    def dead_servers(self) -> list[str]:
        """The servers marked dead now."""
        now = time.monotonic()
        return [s.name for s in self._servers.values() if s.dead(now)]

    def _server(self, name: str) -> Server:
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

    def _cursor_server(self, server: str | None) -> Server:
        if server is None:
            raise ValueError(f"a sharded cursor needs server=, one of: {', '.join(self._servers)}")
        srv = self._server(server)
        if srv.dead(time.monotonic()):
            raise self._dead(srv)
        return srv

    def _dead(self, srv: Server) -> ServerUnavailable:
        return ServerUnavailable(f"server {srv.name} is marked dead (after {srv.failures} failures; "
                                 f"tried again {self.dead_timeout} s after the last)", srv.name)

    def _lost(self, srv: Server, exc: BaseException) -> ServerUnavailable:
        """``srv`` failed with ``exc`` (a ConnectionLost): counted, and the error to raise."""
        srv.failed(self.retry_attempts, self.dead_timeout)
        error = ServerUnavailable(f"server {srv.name}: {exc}", srv.name)
        error.__cause__ = exc
        return error

    def _split(self, keys: Iterable[Any]) -> dict[str, list]:
        """``keys`` by the server each goes to now."""
        groups = self.ring.split(keys)
        if self.remove_dead:
            now = time.monotonic()
            for name in [n for n in groups if self._servers[n].dead(now)]:
                for key in groups.pop(name):
                    groups.setdefault(self.server_for(key), []).append(key)
        return groups

    def _route(self, method: str, args: tuple, kwargs: dict) -> tuple[dict[Server, Job], Any]:
        """The calls ``method`` makes, and how their answers merge (None: the one answer as it is)."""
        servers = self._servers
        if method in BULK:
            param, parts, merge = BULK[method]
            first = args[0] if args else kwargs.pop(param)
            rest = args[1:]
            groups = parts(first, self._split(first))
            return {servers[name]: (method, (part, *rest), kwargs) for name, part in groups.items()}, \
                lambda results: merge(results.values())
        if method in FANOUT:
            now = time.monotonic()
            fanout = FANOUT[method]
            targets = [s for s in servers.values() if not (self.remove_dead and s.dead(now))]
            jobs = {s: (method, args, kwargs) for s in targets}
            return jobs, lambda results: fanout(results, args, kwargs)
        key: Any = args[0] if args else kwargs.get("key")  # None: server_for says what is wrong
        return {servers[self.server_for(key)]: (method, args, kwargs)}, None

    def _plan(self, method: str, args: tuple, kwargs: dict) -> Steps:
        """``method`` on the servers it concerns, keeping their health up to date."""
        return self._steps(*self._route(method, args, kwargs))

    def _steps(self, jobs: dict[Server, Job], merge: Callable[[dict[str, Any]], Any] | None) -> Steps:
        """``jobs`` run, their answers merged (``merge`` None: one job, its answer as it is)."""
        now = time.monotonic()
        live = {srv: job for srv, job in jobs.items() if not srv.dead(now)}
        outcomes = (yield live) if live else {}
        results: dict[str, Any] = {}
        failure: Optional[ServerUnavailable] = None
        other: Optional[BaseException] = None  # an error that is not the server's: raised as it is
        for srv in jobs:
            value = outcomes[srv] if srv in live else self._dead(srv)
            if not isinstance(value, BaseException):
                srv.succeeded()
                results[srv.name] = value
                continue
            if isinstance(value, ServerUnavailable):
                error = value
            elif isinstance(value, ConnectionLost):
                error = self._lost(srv, value)
            else:
                other = other or value
                continue
            failure = failure or error
        if other is not None:
            raise other
        if merge is None:  # one server
            if failure is not None:
                raise failure
            return next(iter(results.values()))
        merged = merge(results)
        if failure is not None:
            failure.partial = merged
            raise failure
        return merged


# --------------------------------------------------------------------------- failover


class FailoverPlans:
    """The state and the plans of a failover client (the drivers add the I/O)."""

    client_class: Callable[..., Any] = KyotoTycoon

    def __init__(self, masters: Sequence[ServerSpec], *, on_failover: Callable[[str, str], Any] | None = None,
                 read_from: Sequence[ServerSpec] = (), timeout: float | None = 30, **client_options: Any):
        self.timeout = timeout
        self._masters = make_servers(masters, "{host}:{port}", self.client_class, client_options, timeout)
        self._readers = list(make_servers(read_from, "{host}:{port}", self.client_class,
                                          client_options, timeout).values()) if read_from else []
        self._order = list(self._masters.values())
        self._current = self._order[0]
        self._lock = threading.Lock()
        self._next_reader = itertools.count()
        self.on_failover = on_failover
        #: how many times the client switched master on its own
        self.failovers = 0

    def _all_servers(self) -> list[Server]:
        return [*self._order, *self._readers]

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

    def _fail_over(self, failed: Server) -> Server:
        """Move off ``failed`` (once, however many threads or tasks saw it fail); the master now active."""
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

    def _plan(self, method: str, args: tuple, kwargs: dict) -> Steps:
        """``method`` on a reader or the active master; a read moves on to the next master, a write not."""
        job = (method, args, kwargs)
        read = method in READ_METHODS
        if read and self._readers:
            reader = self._readers[next(self._next_reader) % len(self._readers)]
            value = (yield {reader: job})[reader]
            if not isinstance(value, ConnectionLost):
                return _answer(value)
            # the masters answer instead
        srv = self._current
        for _attempt in range(len(self._order)):
            value = (yield {srv: job})[srv]
            if not isinstance(value, ConnectionLost):
                return _answer(value)
            new = self._fail_over(srv)
            if not read:
                raise ServerUnavailable(
                    f"{method} on {srv.name} failed ({value}): it may or may not have been applied; "
                    f"now using {new.name}", srv.name) from value
            last, srv = value, new
        raise ServerUnavailable(f"{method}: no master answered (last: {last})", srv.name) from last
