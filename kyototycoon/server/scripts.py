"""``play_script`` procedures: Python callables registered with the server.

Kyoto Tycoon runs Lua procedures that map an input record map to an output
one; here a procedure is ``proc(store, inmap) -> outmap`` with ``bytes``
keys and values. A procedure fails by raising a
:class:`~kyototycoon.errors.ServerError`: its ``status`` becomes the answer's
(400 for bad input, 450 for a logical failure such as a missing record), and
the message is always ``the scripting procedure failed``, as ktserver says.

The shipped ``echo``, ``set`` and ``get`` behave like the Lua script the
conformance transcripts were recorded with.

Lua procedures (:mod:`kyototycoon.server.lua`) sit in the same registry: they
are *deferred* (``proc.deferred`` is true) and run off the event loop through
``await proc.play(server, inmap)``. :func:`play` calls either kind and gives
ktserver's return code (``RV_*``) with the output map; :data:`RV_STATUS` maps
the code to the HTTP status, as ktserver's RPC layer does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Iterator, Mapping
from typing import TYPE_CHECKING, Callable, Optional, Union, overload

from kyototycoon import errors
from kyototycoon.server.textnum import atoi

if TYPE_CHECKING:
    from kyototycoon.server.core import Server
    from kyototycoon.server.store import Store

_log = logging.getLogger(__name__)

Record = dict[bytes, bytes]
ScriptProcedure = Callable[["Store", Mapping[bytes, bytes]], Mapping[bytes, bytes]]
#: a procedure's return code and output map
Played = tuple[int, Record]

#: ktserver's RPCClient::ReturnValue codes, as Lua sees them in kt.RV*
RV_SUCCESS, RV_NOIMPL, RV_INVALID, RV_LOGIC, RV_TIMEOUT, RV_INTERNAL = 0, 1, 2, 3, 4, 5
#: return code -> HTTP status (ktrpc.h); any other code is 500
RV_STATUS = {RV_SUCCESS: 200, RV_NOIMPL: 501, RV_INVALID: 400, RV_LOGIC: 450, RV_TIMEOUT: 503}
_STATUS_RV = {status: rv for rv, status in RV_STATUS.items()}


def _invalid() -> errors.InvalidParameters:
    return errors.InvalidParameters(400, "invalid parameters")


def script_echo(store: Store, inmap: Mapping[bytes, bytes]) -> Record:
    """Copy every input record to the output."""
    return dict(inmap)


def script_set(store: Store, inmap: Mapping[bytes, bytes]) -> Record:
    """Store ``key`` -> ``value`` in the first database (``xt`` optional)."""
    key, value = inmap.get(b"key"), inmap.get(b"value")
    if key is None or value is None:
        raise _invalid()
    xt = inmap.get(b"xt")
    store.databases[0].set(key, value, None if xt is None else atoi(xt))
    return {}


def script_get(store: Store, inmap: Mapping[bytes, bytes]) -> Record:
    """Output ``value`` and ``xt`` of ``key``; 450 when the record is missing."""
    key = inmap.get(b"key")
    if key is None:
        raise _invalid()
    value, xt = store.databases[0].get(key)
    return {b"value": value, b"xt": b"%d" % xt}


class ScriptRegistry(Mapping[str, ScriptProcedure]):
    """Procedures by name; ``registry.register(name, proc)`` or use it as a decorator."""

    def __init__(self, procedures: Mapping[str, ScriptProcedure] | None = None):
        self._procedures: dict[str, ScriptProcedure] = dict(procedures or {})

    @overload
    def register(self, name: str) -> Callable[[ScriptProcedure], ScriptProcedure]: ...

    @overload
    def register(self, name: str, proc: ScriptProcedure) -> ScriptProcedure: ...

    def register(self, name: str, proc: ScriptProcedure | None = None
                 ) -> ScriptProcedure | Callable[[ScriptProcedure], ScriptProcedure]:
        """Register ``proc`` as ``name``; without ``proc``, return a decorator."""
        if proc is None:
            def decorator(func: ScriptProcedure) -> ScriptProcedure:
                self._procedures[name] = func
                return func
            return decorator
        self._procedures[name] = proc
        return proc

    def __getitem__(self, name: str) -> ScriptProcedure:
        return self._procedures[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._procedures)

    def __len__(self) -> int:
        return len(self._procedures)

    def load_lua(self, path: str | os.PathLike[str], db_names: list[str], *, threads: Optional[int] = None,
                 timeout: Optional[float] = None) -> list[str]:
        """Register every global function of the Lua script at ``path``; returns their names.

        Lua functions take the place of Python procedures of the same name. Raises
        :class:`~kyototycoon.server.lua.LuaError` (one line) when Lua is not installed
        or the script does not compile.
        """
        from kyototycoon.server.lua import DEFAULT_THREADS, LuaScript

        script = LuaScript(path, db_names, threads=threads or DEFAULT_THREADS, timeout=timeout)
        for name, proc in script.procedures().items():
            self._procedures[name] = proc  # type: ignore[assignment]
        return script.names


def play(server: Server, name: str, inmap: Record) -> Union[Played, Awaitable[Played]]:
    """Call procedure ``name``: ``(return code, output map)``, or an awaitable of it for Lua ones.

    Python procedures run right here, on the loop; a :class:`~kyototycoon.errors.ServerError`
    they raise becomes the return code of its status, any other exception ``RV_INTERNAL``.
    """
    proc = server.config.scripts.get(name)
    if proc is None:
        return RV_NOIMPL, {}
    if getattr(proc, "deferred", False):
        return proc.play(server, inmap)  # type: ignore[attr-defined]
    try:
        return RV_SUCCESS, dict(proc(server.store, inmap))
    except errors.ServerError as exc:
        return _STATUS_RV.get(exc.status or 500, RV_INTERNAL), {}
    except Exception:  # noqa: BLE001 -- user code: a bug in a script is a 500 for that call, as in ktserver
        _log.exception("script procedure %s failed", name)
        return RV_INTERNAL, {}


def rpc_failure(rv: int) -> errors.ServerError:
    """The error ktserver's ``play_script`` answers for a return code other than RV_SUCCESS."""
    message = "no such scripting procedure" if rv == RV_NOIMPL else "the scripting procedure failed"
    return errors.ServerError(RV_STATUS.get(rv, 500), message)


def default_scripts() -> ScriptRegistry:
    """A registry holding ``echo``, ``set`` and ``get``."""
    return ScriptRegistry({"echo": script_echo, "set": script_set, "get": script_get})

