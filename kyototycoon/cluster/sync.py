"""The blocking driver of the cluster plans: :class:`ShardedKyotoTycoon` and :class:`FailoverKyotoTycoon`.

A plan's calls to several servers run at once on a thread pool (one thread
a server; the first call on the calling thread).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional

from kyototycoon.client import KyotoTycoon
from kyototycoon.client.cursor import Cursor

from . import core
from .core import Job, Server, Steps

__all__ = ["FailoverKyotoTycoon", "ShardedKyotoTycoon"]


def _call(srv: Server, job: Job) -> Any:
    """One call on one server: its answer, or the exception it raised."""
    method, args, kwargs = job
    try:
        if not srv.opened:
            _open(srv)
        return getattr(srv.client, method)(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001  (the plan decides what it means)
        return exc


def _open(srv: Server) -> None:
    with srv.lock:
        if not srv.opened:
            srv.client.open(srv.host, srv.port, timeout=srv.timeout)
            srv.opened = True


def _opened(srv: Server) -> Any:
    """``srv``'s plain client, opened (ConnectionLost if it cannot be)."""
    if not srv.opened:
        _open(srv)
    return srv.client


class _Driver:
    """What both blocking cluster clients do with their plans: run them, open and close the servers."""

    _plan: Callable[[str, tuple, dict], Steps]
    _all_servers: Callable[[], list[Server]]
    _pool: Optional[ThreadPoolExecutor] = None
    _pool_lock = threading.Lock()  # making a pool (any client's: they are made once)


    def _run(self, method: str, args: tuple, kwargs: dict) -> Any:
        return self._drive(self._plan(method, args, kwargs))

    def _drive(self, steps: Steps) -> Any:
        run = core.Run(steps)
        while run.jobs:
            run.send(self._each(run.jobs))
        return run.value

    def _each(self, jobs: dict[Server, Job]) -> dict[Server, Any]:
        """Every job at once; what each gave."""
        servers = list(jobs)
        futures: dict[Server, Future] = {}
        if len(servers) > 1:
            pool = self._executor()
            for srv in servers[1:]:
                futures[srv] = pool.submit(_call, srv, jobs[srv])
        # the first part runs on the calling thread: one hand-over fewer
        first = servers[0]
        outcomes = {first: _call(first, jobs[first])}
        for srv, future in futures.items():
            outcomes[srv] = future.result()
        return outcomes

    def _executor(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                pool = self._pool
                if pool is None:
                    pool = self._pool = ThreadPoolExecutor(len(self._all_servers()), "kyototycoon-shard")
        return pool

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> bool:
        """Close every server's connections and the worker threads; True."""
        for srv in self._all_servers():
            with srv.lock:
                srv.opened = False
                srv.client.close()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
        return True


def _method(name: str) -> Callable[..., Any]:
    def method(self: _Driver, *args: Any, **kwargs: Any) -> Any:
        return self._run(name, args, kwargs)

    return method


class ShardedKyotoTycoon(_Driver, core.ShardedPlans):
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

    client_class = KyotoTycoon

    def server(self, name: str) -> KyotoTycoon:
        """The plain client of server ``name`` (opened if need be)."""
        return _opened(self._server(name))

    def cursor(self, server: str | None = None) -> Cursor:
        """A cursor over one server's records (keys are not in one order across servers)."""
        return self._drive(self._steps({self._cursor_server(server): ("cursor", (), {})}, None))


class FailoverKyotoTycoon(_Driver, core.FailoverPlans):
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

    client_class = KyotoTycoon

    def cursor(self) -> Cursor:
        """A cursor on the active master (it does not follow a failover)."""
        return _opened(self._current).cursor()


core.generate(ShardedKyotoTycoon, core.SHARDED_METHODS, _method)
core.generate(FailoverKyotoTycoon, core.FAILOVER_METHODS, _method)
