"""Kyoto Tycoon's Lua scripting extension for the embedded server (``ktserver -scr``).

:class:`LuaScript` loads a script file; each of its global functions becomes a
:class:`LuaProcedure` for ``play_script``, called as ktserver calls it
(``function(inmap, outmap) ... return kt.RVSUCCESS end``) with the ``kt`` module of
``myscript.cc``. Needs ``lupa`` (the ``server`` extra).
"""

from __future__ import annotations

from kyototycoon.server.lua.runtime import (
    DEFAULT_THREADS,
    LuaError,
    LuaProcedure,
    LuaScript,
    lua_module,
)

__all__ = ["DEFAULT_THREADS", "LuaError", "LuaProcedure", "LuaScript", "lua_module"]
