"""Lua scripts as ``play_script`` procedures: a pool of worker threads, one Lua state each.

Kyoto Tycoon gives every worker thread its own Lua state with the script loaded
(``ScriptProcessor`` per thread); so does :class:`LuaScript`: a procedure call is queued
to the pool and runs on a worker, off the event loop, so a slow or sleeping script
blocks only the connection that called it. Store access from Lua goes back to the loop
(see :mod:`.host`).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import queue
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

from kyototycoon.errors import KyotoTycoonException
from kyototycoon.server.lua.host import Host, ScriptExpired
from kyototycoon.server.scripts import RV_INTERNAL, RV_TIMEOUT

if TYPE_CHECKING:
    from kyototycoon.server.context import HandlerContext

_log = logging.getLogger("kyototycoon.server.lua")

#: lupa modules tried in order: Lua 5.1 is what Kyoto Tycoon builds against; LuaJIT speaks it too
LUA_MODULES = ("lupa.lua51", "lupa.luajit21", "lupa.luajit20")
#: ktserver's default number of worker threads (-th)
DEFAULT_THREADS = 16

_PRELUDE = os.path.join(os.path.dirname(__file__), "kt.lua")


class LuaError(KyotoTycoonException):
    """A script that cannot be used: Lua is missing, the file is unreadable, or it does not compile."""


def lua_module() -> Any:
    """The lupa runtime module to use (Lua 5.1 when the installed lupa has it)."""
    for name in LUA_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise LuaError("Lua scripts need lupa with Lua 5.1 or LuaJIT: pip install 'kyototycoon[server]'")


class _State:
    """One worker's Lua state: the kt module and the script loaded, as ScriptProcessor::load does."""

    def __init__(self, script: LuaScript, thid: int):
        self.lua, self.host = open_state(script.db_names, thid, script.timeout)
        g = self.lua.globals()
        self.call_proc = g[b"__kt_call__"]
        chunk, message = _compile(self.lua, script)
        if chunk is None:  # checked at start already; the file may have changed since
            _log.error("[SCRIPT]: (init): %s", _text(message))
            return
        ok, message = _pcall(self.lua, chunk)
        if not ok:
            _log.error("[SCRIPT]: (init): %s", _text(message))

    def call(self, server: HandlerContext, loop: Any, name: bytes, inmap: Mapping[bytes, bytes]
             ) -> tuple[int, dict[bytes, bytes]]:
        host = self.host
        host.begin_call(server, loop)
        try:
            rv, out = self.call_proc(name, self.lua.table_from(inmap))
            expired = host.expired()
        except Exception as exc:  # noqa: BLE001 -- a Lua error that escaped pcall (memory): RVEINTERNAL
            rv, out, expired = -1, str(exc).encode(), host.expired()
        finally:
            host.end_call()
        if rv == -1:
            _log.error("[SCRIPT]: %s: %s", name.decode("latin-1"), _text(out))
            return (RV_TIMEOUT if expired else RV_INTERNAL), {}
        return int(rv), ({} if out is None else dict(out.items()))


def _compile(lua: Any, script: LuaScript) -> tuple[Any, Any]:
    """``loadstring`` of the script: ``(chunk, None)`` or ``(None, Lua's message)``."""
    result = lua.globals()[b"loadstring"](script.source, script.chunk_name)
    return result if isinstance(result, tuple) else (result, None)


def _pcall(lua: Any, func: Any) -> tuple[bool, Any]:
    result = lua.globals()[b"pcall"](func)
    return (result, None) if not isinstance(result, tuple) else (result[0], result[1])


def _text(message: Any) -> str:
    if isinstance(message, bytes):
        return message.decode("utf-8", "replace")
    return str(message)


class LuaScript:
    """A Lua script file whose global functions are ``play_script`` procedures.

    The file is compiled at construction (a syntax error raises :class:`LuaError` with
    Lua's one-line message) and loaded once per worker thread when that worker first
    runs a call. ``threads`` workers run calls at once (ktserver's ``-th``); ``timeout``
    seconds (None = unbounded, as in ktserver) end a call with ``RVETIMEOUT``.
    ``db_names`` are the server's databases, for ``kt.dbs``.
    """

    def __init__(self, path: str | os.PathLike[str], db_names: list[str], *, threads: int = DEFAULT_THREADS,
                 timeout: Optional[float] = None):
        self.path = os.fspath(path)
        self.db_names = list(db_names)
        self.threads = max(1, int(threads))
        self.timeout = timeout if timeout is None or timeout > 0 else None
        try:
            with open(self.path, "rb") as fh:
                self.source = fh.read()
        except OSError as exc:
            raise LuaError(f"{self.path}: {exc.strerror or exc}") from None
        self.chunk_name = b"@" + self.path.encode()
        self.names = self._probe()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _probe(self) -> list[str]:
        """Compile the file (a syntax error raises LuaError) and list the functions it defines."""
        lua = lua_module().LuaRuntime(encoding=None, register_eval=False, register_builtins=False)
        chunk, message = _compile(lua, self)
        if chunk is None:
            raise LuaError(f"{self.path}: {_text(message)}")
        return _probe_names(self)

    def procedures(self) -> dict[str, LuaProcedure]:
        """One :class:`LuaProcedure` per global function the script defines."""
        return {name: LuaProcedure(self, name) for name in self.names}

    async def play(self, server: HandlerContext, name: str, inmap: Mapping[bytes, bytes]
                   ) -> tuple[int, dict[bytes, bytes]]:
        """Run procedure ``name`` on a worker; ``(return code, output map)``."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._ensure_workers()
        self._jobs.put((server, loop, future, name.encode("latin-1"), dict(inmap)))
        return await future

    def _ensure_workers(self) -> None:
        if len(self._workers) >= self.threads:
            return
        with self._lock:
            while len(self._workers) < self.threads:
                thid = len(self._workers)
                worker = threading.Thread(target=self._work, args=(thid,), daemon=True,
                                          name=f"kyototycoon-lua-{thid}")
                self._workers.append(worker)
                worker.start()

    def _work(self, thid: int) -> None:
        state: Optional[_State] = None
        while True:
            server, loop, future, name, inmap = self._jobs.get()
            try:
                if state is None:
                    state = _State(self, thid)
                result: Any = state.call(server, loop, name, inmap)
            except (ScriptExpired, Exception) as exc:  # noqa: BLE001 -- reported to the caller, worker lives on
                _log.error("[SCRIPT]: %s: %s", name.decode("latin-1"), exc)
                result = (RV_INTERNAL, {})
            try:
                loop.call_soon_threadsafe(_deliver, future, result)
            except RuntimeError:
                pass  # the loop is gone: nobody waits for this answer


def _deliver(future: asyncio.Future, result: tuple[int, dict[bytes, bytes]]) -> None:
    if not future.done():
        future.set_result(result)


def open_state(db_names: list[str], thid: int, timeout: Optional[float]) -> tuple[Any, Host]:
    """A new Lua state with the ``kt`` module (``__kyototycoon__``, also ``kt``) defined."""
    lua = lua_module().LuaRuntime(encoding=None, unpack_returned_tuples=True, register_eval=False,
                                  register_builtins=False)
    host = Host(lua, thid, timeout)
    lua.execute(_prelude(), host.table(db_names))
    lua.globals()[b"python"] = None  # lupa's bridge module: not part of ktserver's environment
    return lua, host


_PRELUDE_SOURCE: list[bytes] = []


def _prelude() -> bytes:
    if not _PRELUDE_SOURCE:
        with open(_PRELUDE, "rb") as fh:
            _PRELUDE_SOURCE.append(fh.read())
    return _PRELUDE_SOURCE[0]


def _probe_names(script: LuaScript) -> list[str]:
    """The global functions the script's top level defines, run in a state without databases."""
    lua, _host = open_state(script.db_names, 0, None)
    g = lua.globals()
    before = set(g)
    chunk, _message = _compile(lua, script)
    ok, message = _pcall(lua, chunk)
    if not ok:
        _log.warning("[SCRIPT]: (init) without databases: %s", _text(message))
    lua_type = g[b"type"]
    return sorted(k.decode("latin-1") for k in g
                  if isinstance(k, bytes) and k not in before and lua_type(g[k]) == b"function")


class LuaProcedure:
    """One global function of a :class:`LuaScript`, as a ``play_script`` procedure.

    It runs off the event loop: callers ``await proc.play(server, inmap)`` for
    ``(return code, output map)`` instead of calling it.
    """

    deferred = True

    def __init__(self, script: LuaScript, name: str):
        self.script = script
        self.name = name

    async def play(self, server: HandlerContext, inmap: Mapping[bytes, bytes]
                   ) -> tuple[int, dict[bytes, bytes]]:
        return await self.script.play(server, self.name, inmap)

    def __repr__(self) -> str:
        return f"LuaProcedure({self.script.path!r}, {self.name!r})"
