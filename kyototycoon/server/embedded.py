"""Run the server on a background thread: for tests and applications that are not asyncio.

::

    with EmbeddedServer() as srv:
        KyotoTycoon().open(srv.host, srv.port)

It binds 127.0.0.1 on a free port unless told otherwise, returns once the
port accepts connections, and on exit stops the server cleanly (connections
closed, snapshot written if configured) and joins the thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from typing import Any, Callable, Optional, TypeVar

from kyototycoon.server.config import ServerConfig
from kyototycoon.server.core import Server
from kyototycoon.server.store import Store

T = TypeVar("T")

#: seconds ``start()`` waits for the server thread to bind before giving up
START_TIMEOUT = 10.0


class EmbeddedServer:
    """A :class:`~kyototycoon.server.core.Server` on its own thread and event loop.

    Keyword arguments are :class:`~kyototycoon.server.config.ServerConfig`
    fields (``port`` defaults to 0, a free port); ``databases`` may also be
    given positionally, e.g. ``EmbeddedServer(["a", "b"])``. Use
    ``memcache_port=0`` for a memcached listener on a free port.

    ``script="file.lua"`` loads a Kyoto Tycoon Lua script: its global functions
    become ``play_script`` procedures (``script_timeout`` seconds bound each call,
    ``script_threads`` Lua workers run them). A script that does not compile raises
    :class:`~kyototycoon.server.lua.LuaError`.
    """

    def __init__(self, databases: Sequence[str] | None = None, *, config: ServerConfig | None = None,
                 script: str | os.PathLike[str] | None = None, script_timeout: Optional[float] = None,
                 script_threads: Optional[int] = None, **settings: Any):
        if config is None:
            settings.setdefault("port", 0)
            if databases is not None:
                settings["databases"] = list(databases)
            config = ServerConfig(**settings)
        elif settings or databases is not None:
            raise TypeError("pass either config= or settings, not both")
        if script is not None:
            config.scripts.load_lua(script, config.databases, threads=script_threads, timeout=script_timeout)
        self.config = config
        self.server = Server(config)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None

    # ------------------------------------------------------------ addresses

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        return self.server.port

    @property
    def memcache_port(self) -> Optional[int]:
        return self.server.memcache_port

    @property
    def address(self) -> tuple[str, int]:
        return self.server.host, self.server.port

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    @property
    def store(self) -> Store:
        """The server's store. Only touch it through :meth:`call` while the server runs."""
        return self.server.store

    # ------------------------------------------------------------ lifecycle

    def start(self) -> EmbeddedServer:
        """Start the thread and wait until the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._main, name="kyototycoon-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("the embedded server did not start in time")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self) -> None:
        """Stop the server and join its thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.stop(), loop).result(START_TIMEOUT)
            thread.join(START_TIMEOUT)
        self._loop = None

    def call(self, func: Callable[[], T], timeout: float = START_TIMEOUT) -> T:
        """Run ``func()`` on the server's loop (e.g. ``srv.call(lambda: srv.store[0].count())``)."""
        if self._loop is None:
            raise RuntimeError("not running")

        async def run() -> T:
            return func()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        try:
            await self.server.start()
        except BaseException as exc:  # noqa: BLE001 -- handed to the starting thread, which re-raises it
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self.server.serve_forever()
