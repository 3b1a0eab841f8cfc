"""The ``kyototycoon`` command line (also ``python -m kyototycoon``).

Like ``ktremotemgr``, the subcommand comes first and its options follow::

    kyototycoon set greeting hello --port 1978
    kyototycoon get greeting
    kyototycoon list user: --db 1
    kyototycoon tail --since 1700000000 | jq .key
    kyototycoon dump backup.jsonl && kyototycoon load backup.jsonl --db 1
    kyototycoon getbulk a b --bin ; kyototycoon import records.tsv
    kyototycoon serve --port 1978
    kyototycoon demo

Exit codes: 0 success, 1 failure (one line on stderr; ``--debug`` shows the
traceback), 2 usage error. The subcommands are the :data:`COMMANDS` table.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import importlib
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Optional, Union

from .errors import KyotoTycoonException, NoRecord
from .spec.replication import XT_MAX, Op

PROG = "kyototycoon"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1978
DEFAULT_TIMEOUT = 30.0
DEFAULT_BATCH = 1000
#: server id a ``tail`` announces; records carrying it would be filtered out, so pick one no server uses
TAIL_SID = 0xFFFF

Database = Union[int, str]


class CommandError(Exception):
    """A failure to report as one line on stderr (exit 1)."""


# ---------------------------------------------------------------------------
# helpers shared by the commands


def database(text: str) -> Database:
    """``--db``: an index (digits) or a database name."""
    return int(text) if text.isascii() and text.isdigit() else text  # "²" is a digit to isdigit()


def positive(text: str) -> int:
    """An integer option that must be at least 1."""
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def arg_bytes(text: str) -> bytes:
    """A command-line argument as the bytes the user typed (undecodable bytes survive)."""
    return os.fsencode(text)


def text_bytes(value: Union[str, bytes]) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def bytes_field(name: str, data: bytes) -> dict[str, str]:
    """``{name: text}`` when ``data`` is UTF-8, else ``{name_b64: base64}`` (the JSON-lines format)."""
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_b64": base64.b64encode(data).decode("ascii")}


def read_bytes_field(obj: dict[str, Any], name: str) -> bytes:
    """The inverse of :func:`bytes_field`; :class:`ValueError` when neither form is there."""
    if isinstance(obj.get(name), str):
        return obj[name].encode("utf-8")
    if isinstance(obj.get(f"{name}_b64"), str):
        return base64.b64decode(obj[f"{name}_b64"], validate=True)
    raise ValueError(f'needs "{name}" (text) or "{name}_b64" (base64)')


def json_line(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def hex_bytes(text: Union[str, bytes]) -> bytes:
    """``--sx``: hexadecimal digits (whitespace between them ignored, as ktremotemgr does) as bytes."""
    digits = "".join((text.decode("ascii", "replace") if isinstance(text, bytes) else text).split())
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise CommandError(f"not hexadecimal: {digits[:40]!r}") from None


def hex_text(data: bytes) -> bytes:
    """``--px``: bytes as space-separated upper-case hex pairs, like ktremotemgr's ``-px``."""
    return data.hex(" ").upper().encode("ascii")


class Progress:
    """A one-line progress counter on a terminal's stderr; silent when stderr is not a tty."""

    INTERVAL = 0.1  # seconds between redraws

    def __init__(self, label: str, total: Optional[int] = None, stream: Optional[IO[str]] = None):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty()
        self.label = label
        self.total = total
        self.done = 0
        self._drawn = 0.0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.enabled and time.monotonic() - self._drawn >= self.INTERVAL:
            self._draw()

    def _draw(self) -> None:
        self._drawn = time.monotonic()
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            line = f"{self.label} [{bar:<30}] {self.done}/{self.total} ({share:.0%})"
        else:
            line = f"{self.label} {self.done} records"
        self.stream.write(f"\r{line}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


def address(args: argparse.Namespace) -> tuple[str, int]:
    return args.host or DEFAULT_HOST, DEFAULT_PORT if args.port is None else args.port


def db_of(args: argparse.Namespace) -> Database:
    return 0 if args.db is None else args.db


def connect(args: argparse.Namespace, binary: bool = False) -> Any:
    """A client on raw bytes (no packing) for the command's server."""
    from .client import KyotoTycoon
    from .packers import KT_PACKER_BYTES

    host, port = address(args)
    return KyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES).connect(host, port, args.timeout)


def stdout() -> IO[bytes]:
    return sys.stdout.buffer


@contextlib.contextmanager
def output_file(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield stdout()
        stdout().flush()
    else:
        with open(path, "wb") as fh:
            yield fh


@contextlib.contextmanager
def input_file(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
    else:
        with open(path, "rb") as fh:
            yield fh


def walk_keys(kt: Any, db: Database) -> Iterator[bytes]:
    """Every key of ``db`` in the server's order, with a cursor (one request a key)."""
    with kt.cursor() as cursor:
        if not cursor.jump(db=db):
            return
        while True:
            try:
                yield text_bytes(cursor.get_key(step=True))
            except NoRecord:  # stepped past the last record
                return


def walk_records(kt: Any, db: Database) -> Iterator[tuple[bytes, bytes]]:
    """Every ``(key, value)`` of ``db`` with a cursor (one request a record)."""
    with kt.cursor() as cursor:
        if not cursor.jump(db=db):
            return
        while True:
            try:
                key, value = cursor.get(step=True)
            except NoRecord:  # stepped past the last record
                return
            yield text_bytes(key), value


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# ---------------------------------------------------------------------------
# commands


def cmd_get(args: argparse.Namespace) -> int:
    with connect(args) as kt:
        value = kt.get(arg_bytes(args.key), db=db_of(args))
    if value is None:
        raise CommandError(f"no record: {args.key}")
    stdout().write(value + b"\n")
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    value = sys.stdin.buffer.read() if args.value is None else arg_bytes(args.value)
    with connect(args) as kt:
        kt.set(arg_bytes(args.key), value, expire=args.expire, db=db_of(args))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with connect(args) as kt:
        missing = [key for key in args.keys if not kt.remove(arg_bytes(key), db=db_of(args))]
    if missing:
        raise CommandError(f"no record: {', '.join(missing)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    db = db_of(args)
    with connect(args) as kt:
        if args.regex is not None:
            keys: Iterable[bytes] = map(text_bytes, kt.match_regex(arg_bytes(args.regex), args.max, db=db))
        elif args.prefix is not None:
            keys = map(text_bytes, kt.match_prefix(arg_bytes(args.prefix), args.max, db=db))
        else:
            kt.count(db=db)  # a clear "no such database" before a cursor is opened on it
            keys = itertools.islice(walk_keys(kt, db), args.max)
        out = stdout()
        for key in keys:
            out.write(key + b"\n")
    return 0


# Commands that differ only by the client method they call and how its answer is printed are
# built by these factories from the COMMANDS table, not written out one function each.

Runner = Callable[[argparse.Namespace], int]


def call_procedure(method: str, uses_db: bool = True, **options: str) -> Runner:
    """A command that calls ``method`` (keyword arguments from ``options``: kwarg -> option) and prints
    nothing, like ``clear``, ``sync``, ``vacuum``, ``tunerepl``."""

    def run(args: argparse.Namespace) -> int:
        kwargs = {kwarg: getattr(args, option) for kwarg, option in options.items()}
        if uses_db:
            kwargs["db"] = db_of(args)
        elif args.db is not None:
            raise CommandError(f"{args.command} does not take --db")
        with connect(args) as kt:
            getattr(kt, method)(**kwargs)
        return 0

    return run


def print_table(args: argparse.Namespace, table: dict[str, str]) -> None:
    """``name: value`` lines (ktremotemgr's report and inform), or one JSON object with ``--json``."""
    out = stdout()
    if args.json:
        out.write(json_line(table))
        return
    for name, value in table.items():
        out.write(f"{name}: {value}\n".encode())


def show_table(fetch: Callable[[Any, argparse.Namespace], dict[str, str]]) -> Runner:
    """A command printing the table ``fetch(client, args)`` returns (``report``, ``status``, ``inform``)."""

    def run(args: argparse.Namespace) -> int:
        with connect(args) as kt:
            print_table(args, fetch(kt, args))
        return 0

    return run


INFORM_FIELDS = ("count", "size")  # what ktremotemgr inform prints without -st


def inform(kt: Any, args: argparse.Namespace) -> dict[str, str]:
    status = kt.status(db=db_of(args))
    return status if args.all else {name: status.get(name, "") for name in INFORM_FIELDS}


def print_records(args: argparse.Namespace, records: Iterable[tuple[bytes, bytes]]) -> None:
    """``key<TAB>value`` lines as ktremotemgr prints them (``--px``: in hex), or with ``--json`` one JSON
    array of ``{"key", "value"}`` objects (``key_b64``/``value_b64`` where not UTF-8, as ``dump`` writes)."""
    out = stdout()
    if args.json:
        out.write(json_line([{**bytes_field("key", k), **bytes_field("value", v)} for k, v in records]))
        return
    show = hex_text if getattr(args, "px", False) else bytes
    for key, value in records:
        out.write(show(key) + b"\t" + show(value) + b"\n")


def input_arg(args: argparse.Namespace, text: str) -> bytes:
    """A key or value argument: as typed, or hex-decoded with ``--sx``."""
    return hex_bytes(text) if getattr(args, "sx", False) else arg_bytes(text)


def pairs_of(args: argparse.Namespace, items: Sequence[str], what: str) -> dict[bytes, bytes]:
    """``key value key value ...`` as a dict (a repeated key: the last value, like ktremotemgr's map)."""
    if len(items) % 2:
        raise CommandError(f"{what} takes key value pairs; {items[-1]!r} has no value")
    return {input_arg(args, k): input_arg(args, v) for k, v in zip(items[::2], items[1::2])}


def bulk_client(args: argparse.Namespace) -> Any:
    """The client for a ``--bin``-capable command: binary protocol with ``--bin``, HTTP otherwise."""
    if args.bin and isinstance(args.db, str):  # ktremotemgr would atoi() a name into database 0
        raise CommandError("--bin takes a database index, not a name (the binary protocol has no names)")
    return connect(args, binary=args.bin)


def text_bytes_map(result: dict[Any, bytes]) -> dict[bytes, bytes]:
    return {text_bytes(k): v for k, v in result.items()}


def cmd_script(args: argparse.Namespace) -> int:
    params = pairs_of(args, args.params, "script")
    with bulk_client(args) as kt:
        result = text_bytes_map(kt.play_script(args.name, params))
    print_records(args, sorted(result.items()))  # ktremotemgr prints its std::map: in key order
    return 0


def cmd_ulog_list(args: argparse.Namespace) -> int:
    with connect(args) as kt:
        for path, size, ts in kt.ulog_list():
            print(f"{path}\t{size}\t{ts}")
    return 0


def cmd_ulog_remove(args: argparse.Namespace) -> int:
    with connect(args) as kt:
        kt.ulog_remove(args.ts)
    return 0


def cmd_getbulk(args: argparse.Namespace) -> int:
    keys = [input_arg(args, key) for key in args.keys]
    with bulk_client(args) as kt:
        found = text_bytes_map(kt.get_bulk(keys, db=db_of(args)))
    if args.bin:  # ktremotemgr: the binary answer in request order, the HTTP one as a map (key order)
        records = [(key, found[key]) for key in dict.fromkeys(keys) if key in found]
    else:
        records = sorted(found.items())
    print_records(args, records)
    return 0


def cmd_setbulk(args: argparse.Namespace) -> int:
    records = pairs_of(args, args.pairs, "setbulk")
    with bulk_client(args) as kt:
        stored = kt.set_bulk(records, expire=args.expire, db=db_of(args))
    if stored != len(records):  # as ktremotemgr: fewer stored than given is a failure
        raise CommandError(f"the server stored {stored} of {len(records)} records")
    return 0


def cmd_removebulk(args: argparse.Namespace) -> int:
    keys = [input_arg(args, key) for key in args.keys]
    with bulk_client(args) as kt:
        removed = kt.remove_bulk(keys, db=db_of(args))
    if args.json:
        stdout().write(json_line({"removed": removed}))
    return 0  # missing keys are not an error, as in ktremotemgr


def match_keys(method: str) -> Runner:
    """``match``/``regex``: the keys each pattern matches, one a line, pattern by pattern."""

    def run(args: argparse.Namespace) -> int:
        show = hex_text if args.px else bytes
        out = stdout()
        with connect(args) as kt:
            for pattern in args.patterns:
                for key in getattr(kt, method)(arg_bytes(pattern), args.limit, db=db_of(args)):
                    out.write(show(text_bytes(key)) + b"\n")
        return 0

    return run


OP_NAMES = {int(op): op.name.lower() for op in Op}


def event_json(event: dict[str, Any]) -> dict[str, Any]:
    """A replication event as a JSON object (``op`` by name, bytes as text or base64)."""
    out: dict[str, Any] = {"ts": event["ts"], "sid": event["sid"], "db": event["db"],
                           "op": OP_NAMES.get(event["op"], event["op"])}
    if "key" in event:
        out.update(bytes_field("key", event["key"]))
    if "value" in event:
        out.update(bytes_field("value", event["value"]))
        out["expires"] = None if event["expires"] == XT_MAX else event["expires"]
    return out


def cmd_tail(args: argparse.Namespace) -> int:
    from .replication import KyotoSlave

    if isinstance(args.db, str):  # log records carry the database index only
        raise CommandError("tail --db takes a database index, not a name")
    host, port = address(args)
    slave = KyotoSlave(args.sid, host, port, args.timeout, white_sid=args.white_sid, reconnect=args.reconnect)
    stream = slave.consume(args.since, from_ts=args.from_ts, after_ts=args.after_ts)
    out = stdout()
    try:
        for event in itertools.islice(stream, args.count):
            if args.db is not None and event["db"] != args.db:
                continue
            out.write(json_line(event_json(event)))
            out.flush()  # one event per line, as it happens: for pipes
    finally:
        _close(stream)
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    db = db_of(args)
    with connect(args) as kt, output_file(args.file) as out:
        progress = Progress("dump", kt.count(db=db))
        try:
            for key, value in walk_records(kt, db):
                out.write(json_line({**bytes_field("key", key), **bytes_field("value", value)}))
                progress.advance()
        finally:
            progress.close()
    return 0


def _records_from(lines: Iterable[bytes], source: str) -> Iterator[tuple[bytes, bytes]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            yield read_bytes_field(obj, "key"), read_bytes_field(obj, "value")
        except (ValueError, binascii.Error) as exc:
            raise CommandError(f"{source}:{number}: {exc}") from exc


def cmd_load(args: argparse.Namespace) -> int:
    db = db_of(args)
    # the binary protocol addresses databases by index only; a name goes over HTTP
    with connect(args, binary=isinstance(db, int)) as kt, input_file(args.file) as src:
        size = os.fstat(src.fileno()).st_size if src.seekable() else 0
        progress = Progress("load", None)
        total = 0
        try:
            for batch in batches(_records_from(src, args.file), args.batch):
                records = dict(batch)  # a key repeated within a batch: the last value wins, as in order
                stored = kt.set_bulk(records, db=db)
                total += stored
                if stored < len(records):  # the binary protocol counts a missing database as 0 hits
                    raise CommandError(f"the server stored {stored} of {len(records)} records "
                                       f"(does database {db} exist?)")
                progress.advance(len(batch))
                if size:
                    progress.label = f"load {src.tell() * 100 // size}%"
        finally:
            progress.close()
    sys.stderr.write(f"loaded {total} records into db {db}\n")
    return 0


def tsv_lines(src: IO[bytes], sx: bool) -> Iterator[list[bytes]]:
    """The fields of each line, read as ktremotemgr import reads them: NUL and CR bytes are dropped,
    fields are split on TAB, and with ``--sx`` each field is hex-decoded."""
    for line in src:
        fields = line.rstrip(b"\n").replace(b"\0", b"").replace(b"\r", b"").split(b"\t")
        yield [hex_bytes(f) for f in fields] if sx else fields


def import_runs(rows: Iterable[list[bytes]], size: int) -> Iterator[tuple[str, list[list[bytes]]]]:
    """Consecutive lines of the same kind, ``("set"|"remove", rows)``, at most ``size`` a run.

    A two-field line sets, a one-field line removes, any other is skipped (as in ktremotemgr);
    batching only runs of one kind keeps the file's order (a set then a remove of a key removes it).
    """
    kinds = {2: "set", 1: "remove"}
    run: list[list[bytes]] = []
    kind = ""
    for row in rows:
        row_kind = kinds.get(len(row))
        if row_kind is None:
            continue
        if run and (row_kind != kind or len(run) >= size):
            yield kind, run
            run = []
        kind = row_kind
        run.append(row)
    if run:
        yield kind, run


def cmd_import(args: argparse.Namespace) -> int:
    db = db_of(args)
    counts = {"lines": 0, "set": 0, "remove": 0}
    with connect(args) as kt, input_file(args.file) as src:
        progress = Progress("import", None)

        def counted(rows: Iterator[list[bytes]]) -> Iterator[list[bytes]]:
            for row in rows:
                counts["lines"] += 1
                yield row

        try:
            for kind, run in import_runs(counted(tsv_lines(src, args.sx)), args.batch):
                if kind == "set":
                    records = {row[0]: row[1] for row in run}
                    stored = kt.set_bulk(records, expire=args.expire, db=db)
                    if stored < len(records):
                        raise CommandError(f"the server stored {stored} of {len(records)} records")
                else:
                    kt.remove_bulk([row[0] for row in run], db=db)  # a missing key is no error
                counts[kind] += len(run)
                progress.advance(len(run))
        finally:
            progress.close()
    sys.stderr.write(f"imported {counts['lines']} lines into db {db}: {counts['set']} set, "
                     f"{counts['remove']} removed\n")
    return 0


def _delegate(module: str, what: str, extra: Sequence[str]) -> int:
    """Hand the remaining arguments to another module's ``add_arguments``/``run`` or ``main``."""
    try:
        target = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            raise CommandError(f"{what} is not available in this installation ({module} is missing)") from exc
        raise
    if hasattr(target, "add_arguments"):
        parser = argparse.ArgumentParser(prog=f"{PROG} {what}")
        target.add_arguments(parser)
        return int(target.run(parser.parse_args(extra)) or 0)
    return int(target.main(list(extra)) or 0)


def cmd_serve(args: argparse.Namespace) -> int:
    return _delegate("kyototycoon.server", "serve", args.extra)


def cmd_fuzz(args: argparse.Namespace) -> int:
    return _delegate("kyototycoon.fuzz.cli", "fuzz", args.extra)


def cmd_completion(args: argparse.Namespace) -> int:
    """Print a completion script generated from the parser itself, so it never lags the commands."""
    try:
        import shtab
    except ModuleNotFoundError:
        raise CommandError("completion needs shtab: pip install 'kyototycoon[completion]'") from None
    stdout().write(shtab.complete(build_parser(), shell=args.shell).encode())
    return 0


DEMO_PREFIX = "demo:"
DEMO_USERS = ("ada", "grace", "linus")


def demo_session(host: str, port: int, timeout: float, say: Callable[[str], None]) -> None:
    """A short real session against ``host:port``: what ``kyototycoon demo`` shows."""
    from .client import KyotoTycoon
    from .packers import KT_PACKER_BYTES, KT_PACKER_JSON
    from .replication import KyotoSlave

    with KyotoTycoon(pack_type=KT_PACKER_JSON).connect(host, port, timeout) as kt, \
            KyotoTycoon(binary=True, pack_type=KT_PACKER_JSON).connect(host, port, timeout) as bulk:
        slave = KyotoSlave(TAIL_SID, host, port, timeout)
        stream = slave.consume()  # from now on: the writes below come back as events
        say("\n# HTTP (TSV-RPC): set, get, increment")
        kt.set(f"{DEMO_PREFIX}greeting", {"text": "hello, world"})
        say(f"get {DEMO_PREFIX}greeting -> {kt.get(f'{DEMO_PREFIX}greeting')!r}")
        say(f"increment {DEMO_PREFIX}visits -> {kt.increment(f'{DEMO_PREFIX}visits', 1)}")
        users = {f"{DEMO_PREFIX}user:{i}": {"id": i, "name": name} for i, name in enumerate(DEMO_USERS)}
        say("\n# binary protocol: one set_bulk request")
        say(f"set_bulk of {len(users)} users -> {bulk.set_bulk(users)} stored")
        say("\n# cursor walk from the first demo key: the bytes as stored")
        raw = KyotoTycoon(pack_type=KT_PACKER_BYTES).connect(host, port, timeout)
        with raw, raw.cursor() as cursor:
            if cursor.jump(DEMO_PREFIX):
                for _ in range(len(users) + 2):
                    key, value = cursor.get(step=True)
                    if key is None or not str(key).startswith(DEMO_PREFIX):
                        break
                    say(f"{key} = {value!r}")
        written = 2 + len(users)
        say(f"\n# replication: the update log streamed to a slave (sid {TAIL_SID})")
        watchdog = threading.Timer(timeout, slave.stop)  # never wait forever for the master
        watchdog.start()
        try:
            seen = 0
            for event in stream:
                key = event.get("key", b"")
                if not key.startswith(DEMO_PREFIX.encode()):
                    continue  # someone else's write on a shared server
                value = event.get("value", b"")
                say(f"ts={event['ts']} db={event['db']} {OP_NAMES[event['op']]} {key.decode()} {value!r}")
                seen += 1
                if seen == written:
                    break
        finally:
            watchdog.cancel()
            _close(stream)
        removed = kt.remove_bulk([f"{DEMO_PREFIX}greeting", f"{DEMO_PREFIX}visits", *users])
        say(f"\n# cleanup: removed {removed} demo records; {kt.count()} records left in db 0")
        if seen < written:
            raise CommandError(f"only {seen} of {written} replication events arrived in {timeout:g} s")


def cmd_demo(args: argparse.Namespace) -> int:
    if args.host is None and args.port is None:
        from .server import EmbeddedServer

        with EmbeddedServer() as server:
            print(f"started an embedded Kyoto Tycoon-compatible server on {server.host}:{server.port}")
            demo_session(server.host, server.port, args.timeout, print)
        print("\nstopped the embedded server")
    else:
        host, port = address(args)
        demo_session(host, port, args.timeout, print)
    return 0


# ---------------------------------------------------------------------------
# the command table


@dataclass(frozen=True)
class Arg:
    """One ``add_argument`` call."""

    flags: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: tuple[Arg, ...] = ()
    connects: bool = True  # takes --host/--port/--db/--timeout
    delegates: bool = False  # passes its remaining arguments on (serve, fuzz)
    aliases: tuple[str, ...] = ()


START_OPTIONS = (
    arg("--since", type=float, metavar="SECONDS", help="start at this time, in seconds since the epoch "
        "(default: now)"),
    arg("--from-ts", type=int, metavar="TS", help="start at this exact log timestamp (inclusive)"),
    arg("--after-ts", type=int, metavar="TS", help="resume just after this log timestamp (the last seen)"),
)
# options several commands share, as ktremotemgr's -bin, -sx, -px, -xt
JSON = arg("--json", action="store_true", help="print one JSON value instead of text lines")
BIN = arg("--bin", action="store_true", help="use the binary protocol (database by index only)")
SX = arg("--sx", action="store_true", help="keys and values are given in hexadecimal")
PX = arg("--px", action="store_true", help="print keys and values in hexadecimal")
EXPIRE = arg("--expire", "--xt", type=int, metavar="SECONDS",
             help="expire after SECONDS (negative: at that epoch)")
LIMIT = arg("--limit", "--max", type=int, metavar="N", help="at most N keys per pattern")

COMMANDS: tuple[Command, ...] = (
    Command("get", "print the value of a record", cmd_get, (arg("key"),)),
    Command("set", "store a record (the value is read from stdin when not given)", cmd_set, (
        arg("key"), arg("value", nargs="?"), EXPIRE)),
    Command("remove", "remove records", cmd_remove, (arg("keys", nargs="+", metavar="key"),)),
    Command("list", "list keys: all (cursor walk), by prefix, or by regex", cmd_list, (
        arg("prefix", nargs="?"),
        arg("--regex", help="keys matching this regular expression instead"),
        arg("--max", type=int, metavar="N", help="at most N keys"))),
    Command("match", "print the keys that start with each prefix", match_keys("match_prefix"), (
        arg("patterns", nargs="+", metavar="prefix"), LIMIT, PX)),
    Command("regex", "print the keys that match each regular expression", match_keys("match_regex"), (
        arg("patterns", nargs="+", metavar="regex"), LIMIT, PX)),
    Command("getbulk", "print the records of the keys that exist, key<TAB>value", cmd_getbulk, (
        arg("keys", nargs="+", metavar="key"), BIN, SX, PX, JSON)),
    Command("setbulk", "store records given as key value pairs", cmd_setbulk, (
        arg("pairs", nargs="+", metavar="key value"), BIN, SX, EXPIRE)),
    Command("removebulk", "remove records (missing keys are no error)", cmd_removebulk, (
        arg("keys", nargs="+", metavar="key"), BIN, SX, JSON)),
    Command("script", "call a server-side script procedure with key value pairs", cmd_script, (
        arg("name"), arg("params", nargs="*", metavar="key value"), BIN, PX, JSON)),
    Command("report", "print the server's report", show_table(lambda kt, args: kt.report()), (JSON,)),
    Command("status", "print a database's status", show_table(lambda kt, args: kt.status(db=db_of(args))),
            (JSON,)),
    Command("inform", "print a database's record count and size (--all: its whole status)",
            show_table(inform), (arg("--all", "--st", action="store_true", help="every status field"),
                                 JSON)),
    Command("clear", "remove every record of a database", call_procedure("clear")),
    Command("sync", "flush a database to its storage", call_procedure("synchronize", hard="hard",
                                                                      command="command"), (
        arg("--hard", action="store_true", help="physically, to the device"),
        arg("--command", "--cmd", metavar="CMD", help="then run this server command on the file"))),
    Command("vacuum", "remove expired records", call_procedure("vacuum", step="step"), (
        arg("--step", type=positive, metavar="N", help="at most N records (default all)"),)),
    Command("tunerepl", "point the server's replication at a master (no host: stop)",
            call_procedure("tune_replication", uses_db=False, host="mhost", port="mport",
                           timestamp="ts", interval="iv"), (
        arg("mhost", nargs="?", metavar="master-host"),
        arg("--mport", type=int, metavar="PORT", help="the master's port"),
        arg("--ts", type=int, metavar="TS", help="start at this log timestamp"),
        arg("--iv", type=float, metavar="SECONDS", help="seconds between updates"))),
    Command("import", "store and remove records from TSV lines, as ktremotemgr import", cmd_import, (
        arg("file", nargs="?", default="-", help="input file (default stdin)"), SX, EXPIRE,
        arg("--batch", type=positive, default=DEFAULT_BATCH, metavar="N", help="records per request"))),
    Command("ulog-list", "list the server's update-log files: path, size, greatest timestamp", cmd_ulog_list),
    Command("ulog-remove", "delete update-log files up to a timestamp (never the current one)",
            cmd_ulog_remove,
            (arg("ts", nargs="?", type=int, help="log timestamp (default: all but the current)"),)),
    Command("tail", "follow the replication stream, one JSON object per event", cmd_tail, (
        *START_OPTIONS,
        arg("--sid", type=int, default=TAIL_SID, help=f"server id to announce (default {TAIL_SID})"),
        arg("--white-sid", action="store_true", help="only the records written with --sid"),
        arg("--reconnect", action="store_true", help="reconnect when the master goes away"),
        arg("--count", type=positive, metavar="N", help="stop after N events")), aliases=("slave",)),
    Command("dump", "write a database as JSON lines (base64 where not UTF-8)", cmd_dump, (
        arg("file", nargs="?", default="-", help="output file (default stdout)"),)),
    Command("load", "store JSON lines written by dump, in bulk batches", cmd_load, (
        arg("file", nargs="?", default="-", help="input file (default stdin)"),
        arg("--batch", type=positive, default=DEFAULT_BATCH, metavar="N", help="records per request"))),
    Command("demo", "start an embedded server (unless --host/--port) and show a session", cmd_demo),
    Command("serve", "run the embedded server (see: kyototycoon serve --help)", cmd_serve,
            connects=False, delegates=True),
    Command("fuzz", "fuzz a server (see: kyototycoon fuzz --help)", cmd_fuzz,
            connects=False, delegates=True),
    Command("completion", "print a shell completion script (needs the [completion] extra)", cmd_completion,
            (arg("shell", choices=("bash", "zsh", "tcsh")),), connects=False),
)


def connection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("--host", help=f"server address (default {DEFAULT_HOST})")
    group.add_argument("--port", type=int, help=f"server port (default {DEFAULT_PORT})")
    group.add_argument("--db", type=database, help="database index or name (default 0)")
    group.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                       help=f"seconds to wait for the server (default {DEFAULT_TIMEOUT:g})")
    group.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Kyoto Tycoon client, replication tail and "
                                     "embedded server.", epilog="Options follow the command, e.g. "
                                     f"'{PROG} get KEY --port 1978'.")
    from .__about__ import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)
    parents = [connection_options()]
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help,
                                  parents=parents if command.connects else [],
                                  add_help=not command.delegates, aliases=command.aliases)
        for argument in command.arguments:
            sub.add_argument(*argument.flags, **argument.options)
        sub.set_defaults(command_spec=command)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    command: Command = args.command_spec
    if command.delegates:
        args.extra = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if command.name == "tail":  # also as "slave"
        starts = [o for o in ("since", "from_ts", "after_ts") if getattr(args, o) is not None]
        if len(starts) > 1:
            parser.error("give at most one of --since, --from-ts, --after-ts")
    debug = getattr(args, "debug", False)
    try:
        return command.run(args)
    except ModuleNotFoundError as exc:
        if debug or not _missing_extra(exc):
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)  # names the extra to install
        return 1
    except (CommandError, KyotoTycoonException, OSError) as exc:
        if isinstance(exc, BrokenPipeError):  # the reader went away (| head): not an error
            _silence_stdout()
            return 0
        if debug:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        return 130


def _close(stream: Iterator[Any]) -> None:
    """End a replication stream now (its generator's cleanup runs here, not when it is collected)."""
    if isinstance(stream, Generator):
        stream.close()


def _missing_extra(exc: ModuleNotFoundError) -> bool:
    from ._extras import EXTRAS

    return any((exc.name or "").split(".")[0] in modules for modules in EXTRAS.values())


def _silence_stdout() -> None:
    # Python flushes stdout at exit; a closed pipe would raise again there
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
