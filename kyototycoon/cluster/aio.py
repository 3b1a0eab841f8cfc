"""The asyncio driver of the cluster plans: AsyncShardedKyotoTycoon and AsyncFailoverKyotoTycoon.

The constructors, methods and rules of :class:`~kyototycoon.cluster.ShardedKyotoTycoon`
and :class:`~kyototycoon.cluster.FailoverKyotoTycoon`, awaited, on
:class:`~kyototycoon.aio.AsyncKyotoTycoon` clients; a plan's calls to
several servers run at once as tasks (``asyncio.gather``). A task cancelled
in the middle of a call cancels its calls to the servers (their connections
close, as :class:`~kyototycoon.aio.AsyncKyotoTycoon`'s do) and marks no
server dead.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from kyototycoon.aio import AsyncCursor, AsyncKyotoTycoon

from . import core
from .core import Job, Server, Steps

__all__ = ["AsyncFailoverKyotoTycoon", "AsyncShardedKyotoTycoon"]


async def _call(srv: Server, job: Job) -> Any:
    """One call on one server: its answer, or the exception it raised."""
    method, args, kwargs = job
    try:
        if not srv.opened:
            await _open(srv)
        return await getattr(srv.client, method)(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001  (the plan decides what it means)
        return exc


async def _each(jobs: dict[Server, Job]) -> dict[Server, Any]:
    """Every job at once (a task each); what each gave."""
    if len(jobs) == 1:  # one server: no task
        [(srv, job)] = jobs.items()
        return {srv: await _call(srv, job)}
    answers = await asyncio.gather(*[_call(srv, job) for srv, job in jobs.items()])
    return dict(zip(jobs, answers))


async def _open(srv: Server) -> None:
    if srv.alock is None:
        srv.alock = asyncio.Lock()  # made in the loop that uses it (Python 3.9 binds a lock to one)
    async with srv.alock:
        if not srv.opened:
            await srv.client.open(srv.host, srv.port, timeout=srv.timeout)
            srv.opened = True


class _ServerCursor(AsyncCursor):
    """An :class:`~kyototycoon.aio.AsyncCursor` on a cluster client's server, opened on its first call."""

    def __init__(self, srv: Server) -> None:
        super().__init__(srv.client)
        self._srv = srv

    async def _connection(self) -> Any:
        if not self._srv.opened:
            await _open(self._srv)
        return await super()._connection()


class _Driver:
    """What both asyncio cluster clients do with their plans: run them, open and close the servers."""

    _plan: Callable[[str, tuple, dict], Steps]
    _all_servers: Callable[[], list[Server]]

    async def _drive(self, steps: Steps) -> Any:
        run = core.Run(steps)
        while run.jobs:
            run.send(await _each(run.jobs))
        return run.value

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> bool:
        """Close every server's idle connections (those in use close when their call ends); True."""
        for srv in self._all_servers():
            srv.opened = False
            await srv.client.close()
        return True


def _method(name: str) -> Callable[..., Any]:
    async def method(self: _Driver, *args: Any, **kwargs: Any) -> Any:
        return await self._drive(self._plan(name, args, kwargs))

    return method


class AsyncShardedKyotoTycoon(_Driver, core.ShardedPlans):
    """:class:`~kyototycoon.cluster.ShardedKyotoTycoon` on asyncio: the same constructor and rules, awaited.

    Bulk and fan-out calls send their parts at once as tasks. ``cursor(server=...)``
    returns an :class:`~kyototycoon.aio.AsyncCursor` (``async with``, ``async for``);
    ``await server(name)`` is the plain :class:`~kyototycoon.aio.AsyncKyotoTycoon` of one server.
    """

    client_class = AsyncKyotoTycoon

    async def server(self, name: str) -> AsyncKyotoTycoon:
        """The plain client of server ``name`` (opened if need be)."""
        srv = self._server(name)
        if not srv.opened:
            await _open(srv)
        return srv.client

    def cursor(self, server: str | None = None) -> AsyncCursor:
        """A cursor over one server's records (its connection opens on the cursor's first call)."""
        return _ServerCursor(self._cursor_server(server))


class AsyncFailoverKyotoTycoon(_Driver, core.FailoverPlans):
    """:class:`~kyototycoon.cluster.FailoverKyotoTycoon` on asyncio: the same constructor and rules, awaited.

    ``on_failover(old, new)`` is called (not awaited) once, however many tasks saw the master fail.
    """

    client_class = AsyncKyotoTycoon

    def cursor(self) -> AsyncCursor:
        """A cursor on the active master (it does not follow a failover)."""
        return _ServerCursor(self._current)


core.generate(AsyncShardedKyotoTycoon, core.SHARDED_METHODS, _method, AsyncKyotoTycoon)
core.generate(AsyncFailoverKyotoTycoon, core.FAILOVER_METHODS, _method, AsyncKyotoTycoon)
