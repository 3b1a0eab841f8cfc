"""The fuzzer against servers: misbehaving fakes it must catch, and a bounded session on ours."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kyototycoon._codec import binary as binary_codec
from kyototycoon.fuzz import cli
from kyototycoon.fuzz.cases import Case
from kyototycoon.fuzz.session import Limits, read_reproducer, run_case, run_session
from kyototycoon.server import EmbeddedServer

PROBE = binary_codec.encode_get_bulk_request(0, [])
PROBE_ANSWER = binary_codec.encode_get_bulk_response([])
GET = Case("binary", "binary.get_bulk_request/valid", binary_codec.encode_get_bulk_request(0, [(0, b"k")]))
QUICK = Limits(timeout=0.3, probe_timeout=0.3, grace=0.1)


class FakeServer:
    """Answers the liveness probe; does ``behaviour`` to everything else."""

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self.listener.getsockname()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.workers: list[threading.Thread] = []

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass  # already closed by the "crash" behaviour
        self.listener.close()
        self.thread.join(5)
        for worker in self.workers:
            worker.join(5)

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # listener closed
            worker = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self.workers.append(worker)
            worker.start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if data == PROBE:
                conn.sendall(PROBE_ANSWER)
            elif self.behaviour == "hang":
                self.stopping.wait(2)  # holds the connection without answering
            elif self.behaviour == "garbage":
                conn.sendall(b"\x00garbage")
            elif self.behaviour == "crash":
                self.listener.shutdown(socket.SHUT_RDWR)  # stop listening now: the probe is refused
            # "close": just close


@pytest.mark.parametrize(
    ("behaviour", "finding"),
    [("hang", "hang"), ("close", "closed"), ("garbage", "bad-answer"), ("crash", "crash")],
)
def test_each_kind_of_misbehaviour_is_a_finding(behaviour, finding):
    with FakeServer(behaviour) as fake:
        assert run_case(fake.host, fake.port, GET, QUICK).finding == finding


def test_closing_when_nothing_is_owed_is_fine():
    no_reply = Case("binary", "no-reply", binary_codec.encode_set_bulk_request(1, [(0, 0, b"k", b"v")]))
    with FakeServer("close") as fake:
        assert run_case(fake.host, fake.port, no_reply, QUICK).finding is None


def test_findings_are_written_and_replay(tmp_path):
    with FakeServer("hang") as fake:
        args = _args("--port", str(fake.port), "--seconds", "5", "--cases", "3", "--timeout", "0.3",
                     "--out", str(tmp_path))
        assert cli.run(args) == 1
        files = sorted(tmp_path.glob("*.json"))
        assert files, "a hang must leave a reproducer"
        record, data = read_reproducer(files[0])
        assert record["finding"] in ("hang", "closed") and record["seed"] == 0 and data
        assert cli.run(_args("--port", str(fake.port), "--timeout", "0.3", "--replay", str(files[0]))) == 1
    with EmbeddedServer() as srv:
        assert cli.run(_args("--port", str(srv.port), "--replay", str(files[0]))) == 0


def test_replay_of_a_decoder_finding_runs_the_parser(tmp_path):
    path = tmp_path / "leak.json"
    path.write_text(json.dumps({"format": "kyototycoon-fuzz/1", "target": "http:requests", "finding": "leak",
                                "detail": "", "data": "R0VUIC8gSFRUUC8xLjENCg0K"}))
    assert cli.run(_args("--replay", str(path))) == 0  # our parser no longer misbehaves on it


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


# ------------------------------------------------------------------ the embedded server (the CI session)


def test_bounded_session_against_the_embedded_server(tmp_path):
    with EmbeddedServer() as srv:
        report = run_session(srv.host, srv.port, seed=0, seconds=5.0, max_cases=3000,
                             limits=Limits(timeout=3, probe_timeout=3, grace=0.5), out_dir=tmp_path)
    found = [(case.label, outcome.finding, outcome.detail, path) for case, outcome, path in report.findings]
    assert found == []
    assert report.cases >= 200 and report.owed > 0
    assert {label.split(".")[0].split("/")[0] for label in report.labels} == {"binary", "http", "replication"}


def test_module_runs_on_its_own():
    done = subprocess.run([sys.executable, "-m", "kyototycoon.fuzz", "--decoders", "--seconds", "1",
                           "--cases", "100", "--out", "unused-dir"], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stderr
    assert "100 inputs" in done.stdout
