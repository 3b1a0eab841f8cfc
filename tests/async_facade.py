"""Blocking facades over the asyncio client, so one end-to-end suite drives both clients.

:class:`LoopThread` runs an event loop (uvloop's when it is installed) in a
thread of its own; :class:`BlockingFacade` makes each coroutine method of an
``AsyncKyotoTycoon`` (or ``AsyncCursor``) a blocking call on that loop, and
every other attribute reads through. Tests written for ``KyotoTycoon`` then
run unchanged against ``AsyncKyotoTycoon``, threads included (all their calls
share the one loop, as tasks would).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, Callable

from kyototycoon.client.policy import TCPConnector

try:
    import uvloop
except ImportError:  # optional: the stock loop then
    uvloop = None

#: the event loop the facades run on, for test ids and reports
LOOP_NAME = "uvloop" if uvloop is not None else "asyncio"
#: every loop the asyncio tests run on: asyncio's, and uvloop's when it is installed
LOOPS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])


def loop_runner(kind: str, timeout: float = 60) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine to its end (at most ``timeout`` seconds) on a new loop of ``kind``."""
    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, timeout))
        finally:
            loop.close()

    return runner


class CountingConnector(TCPConnector):
    """TCP, counting the connections made."""

    def __init__(self) -> None:
        super().__init__()
        self.made = 0

    async def open(self, *args: Any) -> Any:
        self.made += 1
        return await super().open(*args)


class SilentServer:
    """Accepts connections, reads requests, never answers."""

    async def __aenter__(self) -> SilentServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await asyncio.sleep(0.05)  # the client's connections closed: let the server's end too


def new_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


class LoopThread:
    """An event loop running in a daemon thread until :meth:`stop`."""

    def __init__(self) -> None:
        self.loop = new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="aio-facade", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class BlockingFacade:
    """``target``'s coroutine methods as blocking calls on ``loop``; other attributes as they are."""

    def __init__(self, target: Any, loop: LoopThread) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_loop", loop)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name == "cursor":
            return lambda *args: CursorFacade(attr(*args), self._loop)
        if inspect.iscoroutinefunction(attr):
            return lambda *args, **kwargs: self._loop.run(attr(*args, **kwargs))
        return attr

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)

    def __enter__(self) -> BlockingFacade:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class CursorFacade(BlockingFacade):
    """An ``AsyncCursor`` as a blocking cursor: ``with``, ``for`` and every method."""

    def __enter__(self) -> CursorFacade:
        self._loop.run(self._target.__aenter__())
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._loop.run(self._target.__aexit__(*exc_info))

    def __iter__(self) -> Iterator[Any]:
        walk = self._target.__aiter__()
        while True:
            try:
                yield self._loop.run(walk.__anext__())
            except StopAsyncIteration:
                return


def client(driver: str, loop: LoopThread, **kwargs: Any) -> Any:
    """A ``KyotoTycoon`` (``driver="sync"``) or an ``AsyncKyotoTycoon`` behind a facade (``"async"``)."""
    from kyototycoon import KyotoTycoon
    from kyototycoon.aio import AsyncKyotoTycoon

    return BlockingFacade(AsyncKyotoTycoon(**kwargs), loop) if driver == "async" else KyotoTycoon(**kwargs)
