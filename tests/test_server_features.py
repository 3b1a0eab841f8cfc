"""Embedded-server behaviour the transcripts do not show: replication options, snapshots,
signals with a waiter, scripts, protocol mixing, the CLI entry point."""

from __future__ import annotations

import threading

import pytest
from server_fixtures import Wire

from kyototycoon._codec import binary as codec
from kyototycoon._codec import replication as repl
from kyototycoon.protocol import tsv
from kyototycoon.server import EmbeddedServer, ServerConfig, add_server_arguments, config_from_args
from kyototycoon.spec.binary import XT_NONE
from kyototycoon.spec.replication import Flag, Op


def rpc(wire: Wire, procedure: str, /, **params: str | bytes):
    body, colenc = tsv.encode_records(
        [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in params.items()])
    response = wire.request("POST", f"/rpc/{procedure}", [(b"Content-Type", tsv.content_type(colenc))], body)
    _mime, enc = tsv.parse_content_type(response.header("content-type"))
    return response.status, dict(tsv.decode_records(response.body, enc))


@pytest.fixture
def server():
    with EmbeddedServer(["a", "b"]) as srv:
        yield srv


# ---------------------------------------------------------------- replication


def _stream(server: EmbeddedServer, flags: int, sid: int, frames: int) -> list:
    with Wire(server.host, server.port) as slave:
        slave.send(repl.encode_replication_request(flags, 0, sid))
        assert slave.read_exact(1) == b"\xb1"
        return [slave.read_frame(repl.MASTER_FRAMES_DECODERS)[0] for _ in range(frames)]


def test_replication_skips_the_slaves_own_sid_unless_white(server: EmbeddedServer) -> None:
    with Wire(server.host, server.port) as w:
        assert rpc(w, "set", key="k", value="v")[0] == 200
    # the master's records carry sid 1: a slave with sid 1 gets nothing but the caught-up frame
    (only,) = _stream(server, 0, 1, 1)
    assert isinstance(only, repl.CaughtUp)
    # ...unless it asks for exactly its own sid
    record, caught_up = _stream(server, int(Flag.WHITE_SID), 1, 2)
    message, _ = repl.decode_log_message(record.message)
    assert (message.op, message.body.key, message.body.value) == (Op.SET, b"k", b"v")
    assert isinstance(caught_up, repl.CaughtUp) and caught_up.ts >= record.ts
    # a slave with another sid gets it by default, and nothing with WHITE_SID
    assert isinstance(_stream(server, 0, 2, 1)[0], repl.LogFrame)
    assert isinstance(_stream(server, int(Flag.WHITE_SID), 2, 1)[0], repl.CaughtUp)


def test_replication_heartbeat_and_live_records(server: EmbeddedServer) -> None:
    server.server.config.replication_heartbeat = 0.2
    with Wire(server.host, server.port) as slave, Wire(server.host, server.port) as writer:
        slave.send(repl.encode_replication_request(0, 0, 9))
        assert slave.read_exact(1) == b"\xb1"
        beats = []
        for _ in range(3):  # an idle master keeps sending caught-up frames, each acknowledged
            frame, _raw = slave.read_frame(repl.MASTER_FRAMES_DECODERS, timeout=2)
            assert isinstance(frame, repl.CaughtUp)
            beats.append(frame.ts)
            slave.send(repl.encode_caught_up_ack())
        assert beats == sorted(beats)
        assert rpc(writer, "set", key="live", value="1", DB="b")[0] == 200
        frame, _raw = slave.read_frame(repl.MASTER_FRAMES_DECODERS, timeout=2)
        while isinstance(frame, repl.CaughtUp):
            slave.send(repl.encode_caught_up_ack())
            frame, _raw = slave.read_frame(repl.MASTER_FRAMES_DECODERS, timeout=2)
        message, _ = repl.decode_log_message(frame.message)
        assert (message.db, message.body.key) == (1, b"live")


def test_replication_stream_ends_on_a_wrong_ack(server: EmbeddedServer) -> None:
    with Wire(server.host, server.port) as slave:
        slave.send(repl.encode_replication_request(0, 0, 9))
        assert slave.read_exact(1) == b"\xb1"
        frame, _raw = slave.read_frame(repl.MASTER_FRAMES_DECODERS)
        assert isinstance(frame, repl.CaughtUp)
        slave.send(b"\x00")
        assert slave.read_until_closed() == b""


def test_update_log_is_bounded() -> None:
    with EmbeddedServer(ulog_bytes=2000) as srv, Wire(srv.host, srv.port) as w:
        for i in range(200):
            assert rpc(w, "set", key=f"k{i}", value="x" * 20)[0] == 200
        assert 0 < srv.call(srv.store.log_count) < 200


# ---------------------------------------------------------------- snapshots


def test_snapshot_survives_a_restart(tmp_path) -> None:
    path = tmp_path / "kt.snap"
    with EmbeddedServer(["a", "b"], snapshot=str(path)) as srv, Wire(srv.host, srv.port) as w:
        assert rpc(w, "set", key="k", value="v", DB="b", xt="-4102444800")[0] == 200
    assert path.exists() and not list(tmp_path.glob(".snapshot-*"))  # temp file renamed away
    with EmbeddedServer(["a", "b"], snapshot=str(path)) as srv, Wire(srv.host, srv.port) as w:
        assert rpc(w, "get", key="k", DB="b") == (200, {b"value": b"v", b"xt": b"4102444800"})


def test_synchronize_writes_the_snapshot(tmp_path) -> None:
    path = tmp_path / "kt.snap"
    with EmbeddedServer(snapshot=str(path)) as srv, Wire(srv.host, srv.port) as w:
        rpc(w, "set", key="k", value="v")
        assert rpc(w, "synchronize")[0] == 200
        assert path.stat().st_size > 0


# ---------------------------------------------------------------- rpc extras


def test_signal_wakes_a_waiter(server: EmbeddedServer) -> None:
    result = {}

    def waiter() -> None:
        with Wire(server.host, server.port) as w:
            result["get"] = rpc(w, "get", key="k", WAIT="ready", WAITTIME="5")

    thread = threading.Thread(target=waiter)
    thread.start()
    with Wire(server.host, server.port) as w:
        signaled = {}
        for _ in range(500):  # until the waiter is registered (bounded)
            if server.call(lambda: server.store.signal_waiters("ready")):
                signaled = rpc(w, "set", key="k", value="v", SIGNAL="ready")[1]
                break
            threading.Event().wait(0.01)
    thread.join(5)
    assert signaled == {b"SIGNALED": b"1"}
    assert result["get"] == (200, {b"value": b"v"})


def test_registered_script_and_cursor_delete(server: EmbeddedServer) -> None:
    @server.server.config.scripts.register("upper")
    def upper(store, inmap):
        return {k: v.upper() for k, v in inmap.items()}

    with Wire(server.host, server.port) as w:
        assert rpc(w, "play_script", name="upper", _a="xy") == (200, {b"_a": b"XY"})
        assert rpc(w, "play_script", name="bad name") == (400, {b"ERROR": b"invalid parameters"})
        rpc(w, "set", key="k", value="v")
        assert rpc(w, "cur_jump", CUR="1")[0] == 200
        assert rpc(w, "cur_delete", CUR="1")[0] == 200
        # a cursor that does not exist: ktserver creates it, then has no handler for cur_delete
        assert rpc(w, "cur_delete", CUR="1")[0] == 501
        assert rpc(w, "cur_get", CUR="7", DB="zz") == (400, {b"ERROR": b"no such cursor"})
        assert rpc(w, "tune_replication")[0] == 501
        assert rpc(w, "match_regex", regex="(a+)+$")[0] == 200


def test_binary_and_http_share_one_connection(server: EmbeddedServer) -> None:
    with Wire(server.host, server.port) as w:
        w.send(codec.encode_set_bulk_request(0, [(1, XT_NONE, b"k", b"v")]))
        assert w.read_frame(codec.RESPONSES_DECODERS)[0].hits == 1
        assert rpc(w, "get", key="k", DB="1") == (200, {b"value": b"v"})
        w.send(codec.encode_get_bulk_request(0, [(1, b"k")]))
        assert w.read_frame(codec.RESPONSES_DECODERS)[0].records[0][3] == b"v"


def test_rest_xt_as_iso_date_and_db_by_name(server: EmbeddedServer) -> None:
    with Wire(server.host, server.port) as w:
        r = w.request("PUT", "/b/key", [(b"X-Kt-Xt", b"2100-01-01T00:00:00Z")], b"v")
        assert r.status == 201 and r.header("location") == f"http://localhost:{server.port}/b/key"
        r = w.request("GET", "/1/key")
        assert (r.body, r.header("x-kt-xt")) == (b"v", "Fri, 01 Jan 2100 00:00:00 GMT")
        assert w.request("POST", "/key").status == 501


# ---------------------------------------------------------------- entry points


def test_cli_options_make_a_config() -> None:
    import argparse

    args = add_server_arguments(argparse.ArgumentParser()).parse_args(
        ["--port", "0", "--db", "x", "--db", "y", "--memcache-port", "11211", "--snapshot", "f"])
    config = config_from_args(args)
    assert isinstance(config, ServerConfig)
    assert (config.port, config.databases) == (0, ["x", "y"])
    assert (config.memcache_port, config.snapshot) == (11211, "f")
    assert config.host == "127.0.0.1"


def test_embedded_server_binds_loopback_on_a_free_port() -> None:
    with EmbeddedServer() as one, EmbeddedServer() as two:
        assert one.host == two.host == "127.0.0.1"
        assert one.port != two.port and one.port > 0
    with pytest.raises(OSError), Wire(one.host, one.port, timeout=1):
        pass
