"""Replay the facts recorded on a real ktserver 0.9.56b (``data/ktserver_facts.json``) on the embedded server.

Cursor direction per database type, what a hash database's cursor refuses,
and ``status`` per type (see ``ktserver_facts.py`` for how they were recorded).
Cases that depend on the iteration order of ``:``, ``-``, ``.kch`` or ``.kcd``
are expected to differ: the embedded server walks those in key order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from ktserver_facts import DATA, RAW_REQUESTS, ask_raw, run_case, ulog_events
from oracle import WireTarget

from kyototycoon.server import EmbeddedServer

FACTS = json.loads(DATA.read_text(encoding="utf-8"))
CASES = FACTS["cases"]
SPECS = list(dict.fromkeys(c["db"] for c in CASES))
#: status fields that depend on the database's history (memory kept after a clear, file fragments)
VOLATILE = ("size", "realsize", "frgcnt")


def masked(answers: list) -> list:
    return [[status, {k: v for k, v in out.items() if k not in VOLATILE}] for status, out in answers]


def test_recorded_on_the_real_server():
    assert "0.9.56b" in FACTS["server"]
    assert len(CASES) > 100


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Iterator[WireTarget]:
    # the file databases (a.kct...) are written at their relative paths when the server stops
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("facts"))
        with EmbeddedServer(SPECS) as server:
            wire = WireTarget(server.host, server.port, SPECS)
            yield wire
            wire.close()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_same_answers(request, target, case):
    if case["order"]:  # some happen to agree (four keys may hash in key order): not strict
        request.applymarker(pytest.mark.xfail(reason="hash iteration order: the embedded server walks "
                                              "in key order", strict=False))
    got = run_case(target.rpc, SPECS.index(case["db"]), case)
    if case["name"].startswith("status/"):
        got, want = masked(got), masked(case["answers"])
    else:
        want = case["answers"]
    assert got == want


@pytest.mark.parametrize("name", sorted(RAW_REQUESTS))
def test_raw_requests_answered_byte_for_byte(target, name):
    """Control bytes in the request line; bodiless requests whose TSV colenc decodes the query."""
    assert ask_raw(target.port, RAW_REQUESTS[name]).decode("latin-1") == FACTS["raw_requests"][name]


def test_update_log_records_what_ktserver_records():
    """Which writes log what: a remove (and remove_bulk) of a missing key is logged, a failed seize,
    cas, replace or add is not, a clear is one record."""
    with EmbeddedServer(["%"]) as server:
        wire = WireTarget(server.host, server.port, ["%"])
        try:
            assert ulog_events(wire, FACTS["ulog"]["calls"]) == FACTS["ulog"]["events"]
        finally:
            wire.close()
