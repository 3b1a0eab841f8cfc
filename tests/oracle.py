"""The server a test runs against: the embedded one, or a real ktserver (the oracle).

``KYOTOTYCOON_TEST_KTSERVER=/path/to/ktserver`` makes the end-to-end suites run
against a real Kyoto Tycoon too (see the README's contributors section). A
:class:`Target` is what those tests hold: ``.host``/``.port``, the database
names, and helpers that read what the server stored *without the client*:
straight from the embedded server's store, or over a raw TSV-RPC connection
(built from :mod:`kyototycoon.protocol`, not the client) on a real server.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

from server_fixtures import Wire

from kyototycoon import OP_REMOVE, KyotoSlave
from kyototycoon.errors import NoRecord
from kyototycoon.fuzz import difftest_cli
from kyototycoon.protocol import tsv
from kyototycoon.protocol.http import build_request
from kyototycoon.replication import seconds_to_ts
from kyototycoon.server import EmbeddedServer
from kyototycoon.spec.binary import XT_MAX

KTSERVER_ENV = "KYOTOTYCOON_TEST_KTSERVER"
#: "LOW-HIGH": where to look for free ports (ktserver refuses 32768 and above)
PORTS_ENV = "KYOTOTYCOON_TEST_KTSERVER_PORTS"
DEFAULT_PORTS = (20000, 32767)
SCRIPT = Path(__file__).resolve().parent / "recorded" / "t_script.lua"
START_TIMEOUT = 10.0
READY_LINE = "listening server socket started"
SKIP_MESSAGE = f"no real server: set {KTSERVER_ENV}=/path/to/ktserver (README, Contributors) to run this too"
KINDS = ("embedded", "ktserver")
MARK_KEY = b"__oracle_mark__"
_marks = itertools.count()


def ktserver_binary() -> Optional[str]:
    """The ktserver the environment names, or None."""
    return os.environ.get(KTSERVER_ENV) or None


def port_range() -> tuple[int, int]:
    raw = os.environ.get(PORTS_ENV)
    if not raw:
        return DEFAULT_PORTS
    low, _, high = raw.partition("-")
    return int(low), int(high or low)


def free_port(rng: random.Random | None = None) -> int:
    """A port in :func:`port_range` nobody listens on now (ktserver binds it right after)."""
    return difftest_cli.free_port(*port_range(), rng=rng)


def ktserver_db_spec(name: str) -> str:
    """A database argument: ``%`` as it is, a name as an in-memory B+ tree of that name."""
    return name if name in ("%", "*", ":", "-", "+") or "#" in name else f"{name}#type=%"


class KtServer:
    """A real ktserver on 127.0.0.1, a free port, an update log and the tests' Lua script; stop() ends it."""

    def __init__(self, binary: str, databases: Sequence[str] = ("%", "%"), *, sid: int = 1,
                 extra: Sequence[str] = (), script: Path = SCRIPT):
        self.binary = binary
        self.script = script
        self.databases = list(databases)
        self.sid = sid
        self.extra = list(extra)
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.workdir = ""
        self.lines: list[str] = []

    def command(self, port: int) -> list[str]:
        return [self.binary, "-host", self.host, "-port", str(port), "-ls", "-ulog",
                os.path.join(self.workdir, "ulog"), "-sid", str(self.sid), "-scr", str(self.script),
                *self.extra, *(ktserver_db_spec(d) for d in self.databases)]

    def start(self) -> KtServer:
        self.workdir = tempfile.mkdtemp(prefix="kt-oracle-")
        for _ in range(5):  # another process may take the port between the probe and the bind
            port = free_port()
            if self._launch(port):
                self.port = port
                return self
        self.stop()
        raise RuntimeError("ktserver did not start:\n" + "\n".join(self.lines[-20:]))

    def _launch(self, port: int) -> bool:
        proc = subprocess.Popen(self.command(port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, cwd=self.workdir)
        ready: queue.Queue[bool] = queue.Queue()

        def drain() -> None:
            # -ls keeps the log to system lines; reading it to the end keeps the pipe from filling
            told = False
            for line in proc.stdout:
                self.lines.append(line.rstrip())
                if not told and READY_LINE in line:
                    ready.put(True)
                    told = True
            if not told:
                ready.put(False)

        threading.Thread(target=drain, daemon=True).start()
        try:
            ok = ready.get(timeout=START_TIMEOUT)
        except queue.Empty:
            ok = False
        if ok:
            self.proc = proc
            return True
        proc.kill()
        proc.wait(START_TIMEOUT)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(START_TIMEOUT)
        self.proc = None
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = ""

    def __enter__(self) -> KtServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ------------------------------------------------------------------ what the tests hold


DbRef = Any  # an index or a name, as the client takes it


class Target:
    """A running server under test and ways to read its records without the client."""

    kind = "?"

    def __init__(self, host: str, port: int, names: Sequence[str]):
        self.host = host
        self.port = port
        self.names = list(names)

    def index(self, db: DbRef) -> int:
        return self.names.index(db) if isinstance(db, str) else int(db)

    # each kind implements these
    def stored(self, key: str | bytes, db: DbRef = 0) -> tuple[bytes, int] | None:
        """``(value, absolute xt)`` the server holds for ``key`` (``XT_MAX``: never expires), or None."""
        raise NotImplementedError

    def keys(self, db: DbRef = 0) -> list[bytes]:
        """Every key of ``db`` in the server's order."""
        raise NotImplementedError

    def clear(self, db: DbRef | None = None) -> None:
        """Empty ``db``, or every database."""
        raise NotImplementedError

    def log_end(self) -> int:
        """An update-log timestamp after everything written so far: replay from it to see later writes."""
        raise NotImplementedError

    def put(self, records: dict[bytes, bytes], db: DbRef = 0) -> None:
        """Store ``records`` (never expiring) without the client."""
        raise NotImplementedError

    # derived
    def stored_value(self, key: str | bytes, db: DbRef = 0) -> bytes | None:
        rec = self.stored(key, db)
        return None if rec is None else rec[0]

    def items(self, db: DbRef = 0) -> dict[bytes, bytes]:
        keys = self.keys(db)
        return {k: self.stored_value(k, db) for k in keys}


def _key(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key


class EmbeddedTarget(Target):
    """The embedded server, read through its store on the server's own loop."""

    kind = "embedded"

    def __init__(self, server: EmbeddedServer):
        super().__init__(server.host, server.port, [db.name for db in server.store.databases])
        self.server = server

    def stored(self, key: str | bytes, db: DbRef = 0) -> tuple[bytes, int] | None:
        def read() -> tuple[bytes, int] | None:
            try:
                return self.server.store[db].get(_key(key))
            except NoRecord:
                return None

        return self.server.call(read)

    def keys(self, db: DbRef = 0) -> list[bytes]:
        return self.server.call(lambda: [k for k, _, _ in self.server.store[db].items()])

    def clear(self, db: DbRef | None = None) -> None:
        def run() -> None:
            for d in self.server.store.databases if db is None else [self.server.store[db]]:
                d.clear()

        self.server.call(run)

    def log_end(self) -> int:
        return self.server.call(lambda: self.server.store.last_ts) + 1

    def put(self, records: dict[bytes, bytes], db: DbRef = 0) -> None:
        self.server.call(lambda: [self.server.store[db].set(k, v, None) for k, v in records.items()])


class WireTarget(Target):
    """A server read over TSV-RPC on one raw connection of its own (every field Base64-encoded)."""

    kind = "ktserver"

    def __init__(self, host: str, port: int, names: Sequence[str]):
        super().__init__(host, port, names)
        self._wire: Optional[Wire] = None
        self._lock = threading.Lock()

    def rpc(self, name: str, params: dict[bytes, bytes], db: DbRef = 0) -> tuple[int, dict[bytes, bytes]]:
        """``(status, output map)`` of one call; DB goes in the body, encoded with the rest."""
        pairs = [(b"DB", b"%d" % self.index(db)), *params.items()]
        body, colenc = tsv.encode_records(pairs, "B")
        request = build_request("POST", f"/rpc/{name}", [(b"Content-Type", tsv.content_type(colenc))], body)
        with self._lock:
            for attempt in range(2):  # the server may have closed the kept-alive connection
                if self._wire is None:
                    self._wire = Wire(self.host, self.port)
                try:
                    self._wire.send(request)
                    response, _raw = self._wire.read_response("POST")
                    break
                except (ConnectionError, OSError):
                    self._wire.close()
                    self._wire = None
                    if attempt:
                        raise
        ctype = response.headers.get("content-type", "")
        colenc_out = tsv.parse_content_type(ctype)[1]
        return response.status, dict(tsv.decode_records(response.body, colenc_out))

    def stored(self, key: str | bytes, db: DbRef = 0) -> tuple[bytes, int] | None:
        status, out = self.rpc("get", {b"key": _key(key)}, db)
        if status == 450:
            return None
        assert status == 200, (status, out)
        return out[b"value"], int(out.get(b"xt", b"%d" % XT_MAX))

    def keys(self, db: DbRef = 0) -> list[bytes]:
        status, out = self.rpc("match_prefix", {b"prefix": b""}, db)
        assert status == 200, (status, out)
        return sorted(k[1:] for k in out if k[:1] == b"_")

    def clear(self, db: DbRef | None = None) -> None:
        for index in range(len(self.names)) if db is None else [self.index(db)]:
            status, out = self.rpc("clear", {}, index)
            assert status == 200, (status, out)

    def log_end(self) -> int:
        # No procedure tells the log's end: write a marker, find it in the stream, start after it.
        mark = MARK_KEY + b"%d" % next(_marks)
        since = seconds_to_ts(time.time() - 2)
        self.rpc("set", {b"key": mark, b"value": b""})
        self.rpc("remove", {b"key": mark})
        slave = KyotoSlave(self.sid_for_probe, self.host, self.port, timeout=START_TIMEOUT)
        watchdog = threading.Timer(START_TIMEOUT, slave.stop)
        watchdog.start()
        try:
            for event in slave.consume(from_ts=since):
                if event.get("key") == mark and event["op"] == OP_REMOVE:
                    return event["ts"] + 1
        finally:
            watchdog.cancel()
            slave.close()
        raise AssertionError("the marker never showed up in the update log")

    sid_for_probe = 99

    def put(self, records: dict[bytes, bytes], db: DbRef = 0) -> None:
        for key, value in records.items():
            status, out = self.rpc("set", {b"key": key, b"value": value}, db)
            assert status == 200, (status, out)

    def close(self) -> None:
        if self._wire is not None:
            self._wire.close()
            self._wire = None


@contextlib.contextmanager
def start_target(kind: str, databases: Sequence[str], **embedded: Any) -> Iterator[Target]:
    """A server of ``kind`` (``embedded`` or ``ktserver``) with ``databases``; stopped on exit.

    ``embedded`` are EmbeddedServer settings (a real server takes its defaults).
    """
    if kind == "embedded":
        with EmbeddedServer(list(databases), **embedded) as server:
            yield EmbeddedTarget(server)
        return
    binary = ktserver_binary()
    if binary is None:
        import pytest

        pytest.skip(SKIP_MESSAGE)
    with KtServer(binary, databases) as server:
        target = WireTarget(server.host, server.port, databases)
        try:
            yield target
        finally:
            target.close()
