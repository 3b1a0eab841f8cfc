"""The request handlers see the server through HandlerContext only; core.Server provides all of it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import kyototycoon.server as server_pkg
from kyototycoon.server.config import ServerConfig
from kyototycoon.server.context import HandlerContext
from kyototycoon.server.core import Server

HANDLERS = ["rpc.py", "http_app.py", "binary_app.py", "memcache.py", "replication.py", "scripts.py",
            "slave.py", "lua/host.py", "lua/runtime.py"]


def test_server_provides_the_whole_context():
    server = Server(ServerConfig(port=0))
    names = set(HandlerContext.__annotations__) | {
        n for n, _ in inspect.getmembers(HandlerContext) if not n.startswith("_")}
    assert {"store", "config", "counters", "report", "synchronize", "server_name"} <= names
    missing = [n for n in sorted(names) if not hasattr(server, n)]
    assert missing == []


def test_handlers_do_not_import_the_server_core():
    root = Path(server_pkg.__file__).parent
    for name in HANDLERS:
        tree = ast.parse((root / name).read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "kyototycoon.server.core" not in imported, name
