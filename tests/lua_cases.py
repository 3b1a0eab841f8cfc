"""The Lua cases run against both servers: tests/lua/kt_cases.lua, the calls made, and how answers are kept.

``python tests/lua_cases.py HOST PORT VERSION`` records what a server (the real ktserver,
started with ``-scr tests/lua/kt_cases.lua '%' '%'``) answers into
``tests/data/lua_cases_ktserver.json``; ``tests/test_lua_kt.py`` replays the calls against
the embedded server and expects the same answers. Bytes are kept as latin-1 text.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon
from kyototycoon.errors import ServerError

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "lua", "kt_cases.lua")
RECORDING = os.path.join(HERE, "data", "lua_cases_ktserver.json")

#: (procedure, input map): every call is made over HTTP and over the binary protocol
CALLS: list[tuple[str, dict[str, str]]] = [
    ("echo", {"k\x00\t\xff": "v\x00\n\xff", "plain": "x", "": "empty key"}),
    ("numbers", {}),
    ("retcode", {"rv": "0"}), ("retcode", {"rv": "1"}), ("retcode", {"rv": "2"}),
    ("retcode", {"rv": "3"}), ("retcode", {"rv": "4"}), ("retcode", {"rv": "5"}),
    ("retcode", {"rv": "99"}), ("retcode", {"rv": "-1"}), ("retcode", {"rv": "2.6"}),
    ("nothing", {}), ("garbage", {}), ("raise", {}), ("no_such_procedure", {}),
    ("funcs", {}), ("errors", {}), ("dbops", {}), ("expiry", {}), ("visitors", {}),
    ("cursors", {}), ("transactions", {}), ("multidb", {"name": "%"}),
    ("invalid", {"fn": "atoi"}), ("invalid", {"fn": "split"}), ("invalid", {"fn": "set"}),
    ("invalid", {"fn": "get"}), ("invalid", {"fn": "cursor_jump"}), ("invalid", {"fn": "error_new"}),
]


def _b(text: str) -> bytes:
    return text.encode("latin-1")


def _t(data: bytes | str) -> str:
    return data.decode("latin-1") if isinstance(data, bytes) else data


def answer(kt: KyotoTycoon, proc: str, inmap: dict[str, str]) -> dict[str, Any]:
    """One call's answer as kept in the recording: ``{"out": {...}}`` or ``{"error": status}``."""
    try:
        out = kt.play_script(proc, {_b(k): _b(v) for k, v in inmap.items()})
    except ServerError as exc:
        return {"error": exc.status, "message": exc.message}
    return {"out": dict(sorted((_t(k), _t(v)) for k, v in out.items()))}


def run_calls(host: str, port: int) -> list[dict[str, Any]]:
    results = []
    for binary in (False, True):
        kt = KyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES)
        kt.open(host, port, timeout=10)
        try:
            for proc, inmap in CALLS:
                results.append({"protocol": "binary" if binary else "http", "procedure": proc,
                                "inmap": inmap, "answer": answer(kt, proc, inmap)})
        finally:
            kt.close()
    return results


def main(argv: list[str]) -> int:
    host, port, version = argv[0], int(argv[1]), argv[2]
    data = {"server": f"ktserver {version}", "script": "tests/lua/kt_cases.lua",
            "databases": ["%", "%"], "results": run_calls(host, port)}
    with open(RECORDING, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, ensure_ascii=True, sort_keys=True)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
