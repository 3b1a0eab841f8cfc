"""The ``kyototycoon`` command line, driven as a subprocess against a server: the embedded one, and a
real ktserver too when ``KYOTOTYCOON_TEST_KTSERVER`` names one."""

from __future__ import annotations

import importlib.util
import io
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from oracle import Target, start_target

from kyototycoon import KT_PACKER_BYTES, OP_CLEAR, OP_REMOVE, OP_SET, KyotoTycoon
from kyototycoon.cli import (
    COMMANDS,
    OP_NAMES,
    Progress,
    bytes_field,
    hex_bytes,
    import_runs,
    read_bytes_field,
)
from kyototycoon.errors import ConnectionLost

RUN_TIMEOUT = 20.0


def cli(*args: str, stdin: bytes = b"", timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kyototycoon", *args], input=stdin, capture_output=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def server(target_kind: str) -> Iterator[Target]:
    with start_target(target_kind, ["a", "b"], replication_heartbeat=0.1) as srv:
        yield srv


@pytest.fixture
def kt(server: Target) -> Iterator[KyotoTycoon]:
    with KyotoTycoon(pack_type=KT_PACKER_BYTES).connect(server.host, server.port) as client:
        client.clear(db=0)
        client.clear(db=1)
        yield client


@pytest.fixture
def on(server: Target, kt: KyotoTycoon):
    """``on("get", "k")``: run a command against the test server."""

    def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
        return cli(*args, "--port", str(server.port), stdin=stdin)

    return run


def ok(result: subprocess.CompletedProcess) -> bytes:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kyototycoon: error: ") and text in lines[0], lines


class TestRecords:
    def test_set_get_remove(self, on, kt):
        ok(on("set", "k", "v1"))
        ok(on("set", "piped", stdin=b"from\x00stdin"))
        assert ok(on("get", "k")) == b"v1\n"
        assert kt.get("piped") == b"from\x00stdin"
        ok(on("remove", "k", "piped"))
        assert kt.count() == 0

    def test_set_with_expire_and_db(self, on, kt):
        ok(on("set", "e", "v", "--expire", "100", "--db", "1"))
        value, xt = kt.get_with_expire("e", db=1)
        assert value == b"v" and xt is not None and 0 < xt - time.time() <= 101

    def test_missing_record_is_one_line_and_exit_1(self, on):
        one_line_error(on("get", "nope"), "no record: nope")
        one_line_error(on("remove", "nope"), "no record: nope")

    def test_list_all_prefix_regex_max(self, on, kt):
        kt.set_bulk({"a1": b"", "a2": b"", "b1": b"", "\u00e9": b""})
        assert ok(on("list")).splitlines() == [b"a1", b"a2", b"b1", "\u00e9".encode()]
        assert ok(on("list", "a")).splitlines() == [b"a1", b"a2"]
        assert ok(on("list", "--regex", "1$")).splitlines() == [b"a1", b"b1"]
        assert ok(on("list", "--max", "2")).splitlines() == [b"a1", b"a2"]

    def test_report_status_clear(self, on, kt):
        kt.set_bulk({"x": b"1", "y": b"2"}, db=1)
        status = dict(line.split(": ", 1) for line in ok(on("status", "--db", "b")).decode().splitlines())
        assert status["count"] == "2"
        report = dict(line.split(": ", 1) for line in ok(on("report")).decode().splitlines())
        assert report["db_total_count"] == "2" and "conf_kt_version" in report
        ok(on("clear", "--db", "1"))
        assert kt.count(db=1) == 0

    def test_unknown_database(self, on):
        one_line_error(on("status", "--db", "nosuch"), "no such database")
        one_line_error(on("list", "--db", "7"), "no such database")


class TestKtremotemgrCommands:
    """The commands ktremotemgr users reach for, with its output formats (key<TAB>value, name: value)."""

    @pytest.mark.parametrize("bin_flag", [(), ("--bin",)])
    def test_setbulk_getbulk_removebulk(self, on, kt, bin_flag):
        ok(on("setbulk", "b", "2", "a", "1", "t\tab", "x", "--db", "1", *bin_flag))
        assert kt.get_bulk(["a", "b", "t\tab"], db=1) == {"a": b"1", "b": b"2", "t\tab": b"x"}
        out = ok(on("getbulk", "b", "nope", "a", "--db", "1", *bin_flag))
        # HTTP: in key order (ktremotemgr prints a map); binary: in the order asked
        assert out == (b"b\t2\na\t1\n" if bin_flag else b"a\t1\nb\t2\n")
        ok(on("removebulk", "a", "nope", "--db", "1", *bin_flag))  # a missing key is no error
        assert kt.get_bulk(["a", "b"], db=1) == {"b": b"2"}

    def test_bulk_hex_in_and_out_and_json(self, on, kt):
        ok(on("setbulk", "--sx", "00ff", "61 62", "6b", "76"))
        assert kt.get_bulk([b"\x00\xff", "k"]) == {b"\x00\xff": b"ab", "k": b"v"}
        assert ok(on("getbulk", "--sx", "00ff", "--px")) == b"00 FF\t61 62\n"
        assert json.loads(ok(on("getbulk", "--sx", "00ff", "6b", "--json"))) == [
            {"key_b64": "AP8=", "value": "ab"}, {"key": "k", "value": "v"}]
        assert json.loads(ok(on("removebulk", "k", "gone", "--json"))) == {"removed": 1}
        one_line_error(on("getbulk", "--sx", "zz"), "not hexadecimal")

    def test_setbulk_with_expire(self, on, kt):
        ok(on("setbulk", "e", "v", "--xt", "100"))
        value, xt = kt.get_with_expire("e")
        assert value == b"v" and xt is not None and 0 < xt - time.time() <= 101

    def test_bulk_usage_errors(self, on):
        one_line_error(on("setbulk", "a", "1", "b"), "'b' has no value")
        one_line_error(on("getbulk", "a", "--bin", "--db", "b"), "database index")
        assert on("getbulk").returncode == 2

    def test_match_and_regex(self, on, kt):
        kt.set_bulk({"a1": b"", "a2": b"", "b1": b"", "c\xff": b""})
        assert ok(on("match", "a", "b")).splitlines() == [b"a1", b"a2", b"b1"]
        assert ok(on("match", "a", "--limit", "1")).splitlines() == [b"a1"]
        assert ok(on("regex", "1$", "^c")).splitlines() == [b"a1", b"b1", b"c\xc3\xbf"]
        assert ok(on("match", "b", "--px")) == b"62 31\n"
        assert ok(on("match", "zz")) == b""

    @pytest.mark.parametrize("bin_flag", [(), ("--bin",)])
    def test_script(self, on, bin_flag):
        assert ok(on("script", "echo", "y", "2", "x", "1", *bin_flag)) == b"x\t1\ny\t2\n"
        assert json.loads(ok(on("script", "echo", "x", "1", "--json", *bin_flag))) == [
            {"key": "x", "value": "1"}]
        one_line_error(on("script", "nosuch", *bin_flag), "")
        one_line_error(on("script", "echo", "x"), "'x' has no value")

    def test_script_set_then_get(self, on, kt):
        ok(on("script", "set", "key", "k", "value", "v"))
        assert kt.get("k") == b"v"

    def test_inform_and_json_tables(self, on, kt):
        kt.set_bulk({"x": b"1", "y": b"22"}, db=1)
        lines = ok(on("inform", "--db", "1")).decode().splitlines()
        assert [line.split(": ")[0] for line in lines] == ["count", "size"] and lines[0] == "count: 2"
        full = json.loads(ok(on("inform", "--db", "b", "--st", "--json")))
        assert full["count"] == "2" and "path" in full
        # a real ktserver's in-memory "size" moves between two calls (its allocator): not compared
        status = json.loads(ok(on("status", "--db", "1", "--json")))
        assert "size" in status
        status["size"] = full["size"]
        assert status == full
        report = json.loads(ok(on("report", "--json")))
        assert report["db_total_count"] == "2"

    def test_sync_and_vacuum(self, on, kt):
        ok(on("sync"))
        ok(on("sync", "--hard", "--db", "b"))
        kt.set("gone", b"v", expire=-1)  # already expired (absolute epoch 1)
        kt.set("kept", b"v")
        ok(on("vacuum", "--step", "5"))
        ok(on("vacuum"))
        assert kt.match_prefix("") == ["kept"]
        assert on("vacuum", "--step", "0").returncode == 2
        one_line_error(on("sync", "--db", "nosuch"), "no such database")

    def test_tunerepl_is_refused_by_a_server_without_an_rts_file(self, on):
        # the embedded server is never a slave; ktserver without -rts answers 501 the same way
        one_line_error(on("tunerepl", "127.0.0.1", "--mport", "1978", "--ts", "1", "--iv", "0.5"),
                       "501 the RTS file is not set")
        one_line_error(on("tunerepl", "--db", "1"), "does not take --db")

    def test_slave_is_tail(self, on, kt, server):
        start = _log_end(server)
        kt.set("k", b"v")
        event = json.loads(ok(on("slave", "--from-ts", str(start), "--count", "1")))
        assert (event["op"], event["key"], event["value"]) == ("set", "k", "v")
        assert on("slave", "--since", "1", "--from-ts", "1").returncode == 2

    def test_completion_script_knows_every_command(self):
        result = cli("completion", "bash")
        if importlib.util.find_spec("shtab") is None:
            one_line_error(result, "kyototycoon[completion]")
            return
        script = ok(result).decode()
        for command in COMMANDS:
            assert command.name in script
        assert "--hard" in script and "slave" in script
        assert cli("completion", "fish").returncode == 2


class TestImport:
    """``import``: ktremotemgr's TSV (2 fields set, 1 removes, others skipped; NUL and CR dropped)."""

    def test_sets_removes_and_skips_in_order(self, on, kt):
        kt.set("old", b"x")
        tsv = b"k1\tv1\nk2\tv\0\r2\nk1\nold\nthree\tfields\there\nk3\tv3\nk3\nk3\tagain"
        result = on("import", "--db", "0", "--batch", "2", stdin=tsv)
        assert b"imported 8 lines into db 0: 4 set, 3 removed" in ok(result) + result.stderr
        assert kt.get_bulk(["k1", "k2", "k3", "old", "three"]) == {"k2": b"v2", "k3": b"again"}

    def test_hex_file_expire_and_database_name(self, on, kt, tmp_path):
        path = tmp_path / "in.tsv"
        path.write_bytes(b"00ff\t 61 62 \n")
        ok(on("import", str(path), "--sx", "--db", "b", "--expire", "100"))
        value, xt = kt.get_with_expire(b"\x00\xff", db=1)
        assert value == b"ab" and xt is not None and 0 < xt - time.time() <= 101

    def test_bad_input_and_missing_database(self, on):
        one_line_error(on("import", "--sx", stdin=b"zz\tv\n"), "not hexadecimal")
        one_line_error(on("import", "--db", "nosuch", stdin=b"k\tv\n"), "no such database")
        one_line_error(on("import", "/nonexistent/file.tsv"), "No such file")

    def test_runs_keep_the_order_and_the_batch_size(self):
        rows = [[b"a", b"1"], [b"b", b"2"], [b"c", b"3"], [b"a"], [b"x", b"y", b"z"], [b"a"], [b"d", b"4"]]
        assert [(kind, len(run)) for kind, run in import_runs(rows, 2)] == [
            ("set", 2), ("set", 1), ("remove", 2), ("set", 1)]

    def test_hex_ignores_whitespace_like_ktremotemgr(self):
        assert hex_bytes(" 0a\t0B ") == b"\n\x0b"


class TestDumpLoad:
    RECORDS = {b"text": b"hello", b"bin\xff": b"\x00\x01\xfe", "\u00fc".encode(): "caf\u00e9".encode()}

    def test_round_trip_through_json_lines(self, on, kt, tmp_path):
        kt.set_bulk(self.RECORDS)
        dump = ok(on("dump"))
        lines = [json.loads(line) for line in dump.splitlines()]
        assert {"key": "text", "value": "hello"} in lines
        assert any("key_b64" in line and "value_b64" in line for line in lines)  # not UTF-8: base64
        assert b"\r" not in on("dump").stderr  # no progress bar when stderr is not a terminal
        path = tmp_path / "dump.jsonl"
        path.write_bytes(dump)
        result = on("load", str(path), "--db", "1", "--batch", "2")
        assert b"loaded 3 records" in ok(result) + result.stderr
        assert kt.get_bulk(list(self.RECORDS), db=1) == self.RECORDS

    def test_load_from_stdin_and_by_database_name(self, on, kt):
        ok(on("load", "--db", "b", stdin=b'{"key":"k","value":"v"}\n\n'))
        assert kt.get("k", db=1) == b"v"

    @pytest.mark.parametrize("line, why", [
        (b"not json", "Expecting value"),
        (b'["k", "v"]', "not a JSON object"),
        (b'{"key":"k"}', '"value"'),
        (b'{"key_b64":"!!","value":"v"}', "-:2"),
    ])
    def test_bad_input_names_the_line(self, on, line, why):
        one_line_error(on("load", stdin=b'{"key":"ok","value":"v"}\n' + line + b"\n"), why)

    def test_load_into_a_missing_database_fails(self, on):
        one_line_error(on("load", "--db", "5", stdin=b'{"key":"k","value":"v"}\n'), "stored 0 of 1")


class TestTail:
    def test_follow_and_filter_by_db(self, on, kt, server):
        start = _log_end(server)
        kt.set("k", b"v")
        kt.set("other", b"x", db=1)
        kt.set("bin", b"\xff")
        kt.remove("k")
        lines = ok(on("tail", "--from-ts", str(start), "--count", "4")).splitlines()
        events = [json.loads(line) for line in lines]
        assert [(e["db"], e["op"], e.get("key")) for e in events] == [
            (0, "set", "k"), (1, "set", "other"), (0, "set", "bin"), (0, "remove", "k")]
        assert events[0]["value"] == "v" and events[0]["expires"] is None
        assert events[2]["value_b64"] == "/w=="
        only_db1 = ok(on("tail", "--from-ts", str(start), "--count", "4", "--db", "1")).splitlines()
        assert [json.loads(line)["key"] for line in only_db1] == ["other"]
        after = ok(on("tail", "--after-ts", str(events[0]["ts"]), "--count", "1"))
        assert json.loads(after)["key"] == "other"

    def test_op_names_follow_the_constants(self):
        assert OP_NAMES == {OP_SET: "set", OP_REMOVE: "remove", OP_CLEAR: "clear"}

    def test_conflicting_starts_are_a_usage_error(self, on):
        assert on("tail", "--since", "1", "--from-ts", "1").returncode == 2
        one_line_error(on("tail", "--db", "b"), "database index")


def _log_end(server: Target) -> int:
    """A log timestamp after everything written so far (clear() in the fixture logs too)."""
    return server.log_end()


class TestErrorsAndUsage:
    def test_no_command_and_unknown_option_are_usage_errors(self):
        assert cli().returncode == 2
        assert cli("get", "k", "--nope").returncode == 2
        assert cli("frobnicate").returncode == 2

    def test_refused_connection_is_one_line_unless_debug(self):
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = str(probe.getsockname()[1])
        one_line_error(cli("get", "k", "--port", port), port)
        debug = cli("get", "k", "--port", port, "--debug")
        assert debug.returncode == 1 and b"Traceback" in debug.stderr

    def test_version(self):
        assert ok(cli("--version")).startswith(b"kyototycoon ")

    def test_fuzz_delegates_or_says_it_is_missing(self):
        result = cli("fuzz", "--help")
        if importlib.util.find_spec("kyototycoon.fuzz.cli") is None:
            one_line_error(result, "fuzz is not available")
        else:
            assert result.returncode == 0 and b"usage: kyototycoon fuzz" in result.stdout


class TestServeAndDemo:
    def test_serve_answers_until_terminated(self):
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "kyototycoon", "serve", "--port", str(port),
                                 "--db", "x", "--db", "y"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            client = _connect_when_ready(port, proc)
            assert client.set("k", b"v", db="y") and client.get("k", db=1) == b"v"
            client.close()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(RUN_TIMEOUT) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(RUN_TIMEOUT)
            proc.stdout.close()
            proc.stderr.close()

    def test_serve_help_is_the_servers(self):
        assert b"--snapshot" in ok(cli("serve", "--help"))

    def test_demo_on_an_embedded_server(self):
        out = ok(cli("demo")).decode()
        assert "started an embedded" in out and "stopped the embedded server" in out
        assert "get demo:greeting -> {'text': 'hello, world'}" in out
        assert "set_bulk of 3 users -> 3 stored" in out
        assert sum(line.startswith("ts=") for line in out.splitlines()) == 5
        assert "removed 5 demo records" in out

    def test_demo_on_a_given_server_leaves_it_clean(self, on, kt, server):
        kt.set("mine", b"kept")
        out = ok(on("demo")).decode()
        assert "started an embedded" not in out
        assert kt.match_prefix("") == ["mine"]


def _connect_when_ready(port: int, proc: subprocess.Popen) -> KyotoTycoon:
    """Wait for the server's port (bounded), not for a fixed time."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        try:
            return KyotoTycoon(pack_type=KT_PACKER_BYTES).connect("127.0.0.1", port, 5)
        except ConnectionLost:  # refused: not listening yet
            pass
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the server did not open its port"
        time.sleep(0.05)


class TestHelpers:
    @pytest.mark.parametrize("data", [b"", b"text", "\u00e9".encode(), b"\xff\x00", b"\x00ctl\n"])
    def test_bytes_fields_round_trip(self, data):
        assert read_bytes_field(bytes_field("v", data), "v") == data

    def test_progress_draws_only_on_a_terminal(self):
        class Tty(io.StringIO):
            def isatty(self) -> bool:
                return True

        quiet, loud = io.StringIO(), Tty()
        for stream in (quiet, loud):
            bar = Progress("dump", 4, stream=stream)
            bar.advance(4)
            bar.close()
        assert quiet.getvalue() == ""
        assert "4/4 (100%)" in loud.getvalue() and loud.getvalue().endswith("\n")



class TestExtras:
    """Without an extra, the part that needs it fails with one message naming the extra."""

    BLOCK = "import sys; sys.modules['regex'] = None; sys.modules['jinja2'] = None; "

    def test_importing_the_server_names_its_extra(self):
        result = subprocess.run([sys.executable, "-c", self.BLOCK + "import kyototycoon.server"],
                                capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == (
            "ModuleNotFoundError: kyototycoon.server needs the [server] extra (no module 'regex'): "
            "pip install 'kyototycoon[server]'")

    def test_codegen_names_its_extra_and_the_client_needs_neither(self):
        code = self.BLOCK + (
            "import kyototycoon; kyototycoon.KyotoTycoon; kyototycoon.KyotoSlave\n"
            "try:\n    import kyototycoon.codegen.generate\n"
            "except ModuleNotFoundError as exc:\n    print(exc)")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=RUN_TIMEOUT)
        assert result.returncode == 0, result.stderr
        assert "needs the [codegen] extra" in result.stdout

    @pytest.mark.parametrize("command", ["serve", "demo"])
    def test_the_command_line_says_it_in_one_line(self, command):
        code = self.BLOCK + f"from kyototycoon.cli import main; sys.exit(main([{command!r}]))"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=RUN_TIMEOUT)
        one_line_error(result, "pip install 'kyototycoon[server]'")
