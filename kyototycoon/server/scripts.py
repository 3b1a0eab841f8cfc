"""``play_script`` procedures: Python callables registered with the server.

Kyoto Tycoon runs Lua procedures that map an input record map to an output
one; here a procedure is ``proc(store, inmap) -> outmap`` with ``bytes``
keys and values. A procedure fails by raising a
:class:`~kyototycoon.errors.ServerError`: its ``status`` becomes the answer's
(400 for bad input, 450 for a logical failure such as a missing record), and
the message is always ``the scripting procedure failed``, as ktserver says.

The shipped ``echo``, ``set`` and ``get`` behave like the Lua script the
conformance transcripts were recorded with.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Callable

from kyototycoon import errors
from kyototycoon.server.textnum import atoi

if TYPE_CHECKING:
    from kyototycoon.server.store import Store

Record = dict[bytes, bytes]
ScriptProcedure = Callable[["Store", Mapping[bytes, bytes]], Mapping[bytes, bytes]]


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

    def register(self, name: str, proc: ScriptProcedure | None = None):
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


def default_scripts() -> ScriptRegistry:
    """A registry holding ``echo``, ``set`` and ``get``."""
    return ScriptRegistry({"echo": script_echo, "set": script_set, "get": script_get})

