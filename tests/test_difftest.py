"""The differential tester itself: generation, normalisation, comparison, shrinking, the corpus."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kyototycoon.fuzz import difftest_cli
from kyototycoon.fuzz.difftest import (
    KNOWN,
    MASK,
    Episode,
    Peer,
    Step,
    classify,
    episode_steps,
    first_divergence,
    run_seed,
    run_steps,
    shrink,
)
from kyototycoon.server import EmbeddedServer

DATABASES = ["%", "*", "casket.kct"]


@pytest.fixture(scope="module", autouse=True)
def _scratch_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """File databases (``casket.kct``) name paths relative to the working directory: not the checkout's."""
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("difftest"))
    try:
        yield
    finally:
        os.chdir(here)


@pytest.fixture(scope="module")
def twins() -> Iterator[list[Peer]]:
    """Two embedded servers with the same databases."""
    with EmbeddedServer(DATABASES) as a, EmbeddedServer(DATABASES) as b:
        yield [Peer(a.host, a.port, len(DATABASES)), Peer(b.host, b.port, len(DATABASES))]


def test_an_episode_is_a_function_of_seed_and_index() -> None:
    first = episode_steps(7, 3, 40, DATABASES)
    assert first == episode_steps(7, 3, 40, DATABASES)
    assert first != episode_steps(7, 4, 40, DATABASES)
    steps = [s for i in range(10) for s in episode_steps(1, i, 25, DATABASES)]
    assert {s.channel for s in steps} == {"http", "binary"}
    assert any(b"/rpc/cur_" in s.send for s in steps) and any(b"colenc=B" in s.send for s in steps)


def test_the_same_server_twice_never_diverges(twins: list[Peer]) -> None:
    episodes, found = run_seed(twins, DATABASES, seed=3, steps=150, episode_length=25)
    assert found == []
    assert len(episodes) == 6 and all(len(e.answers) == len(e.steps) for e in episodes)


def test_answers_drop_the_date_and_mask_what_is_volatile(twins: list[Peer]) -> None:
    put = Step("http", b"PUT /k HTTP/1.1\r\nHost: x\r\nX-Kt-Xt: 4102444800\r\nContent-Length: 1\r\n\r\nv")
    report = Step("http", b"GET /rpc/report HTTP/1.1\r\nHost: x\r\n\r\n")
    get = Step("http", b"GET /rpc/get?key=k HTTP/1.1\r\nHost: x\r\n\r\n")
    stored, reported, got = run_steps(twins[:1], [put, report, get])[0]
    assert ["location", "http://HOST/k"] in stored["headers"]
    assert "date" not in dict(stored["headers"])
    fields = dict(reported["tsv"])
    assert fields["serv_current_time"] == MASK and fields["cnt_set"] == 1  # counted from the reset
    assert fields["db_0"] == f"count=1 {MASK} path=%"
    assert ["xt", 4102444800] in got["tsv"]  # an absolute expiry stays absolute


def test_a_divergence_is_shrunk_to_the_steps_that_show_it() -> None:
    # the second server has no database named "*": every step naming it answers otherwise
    with EmbeddedServer(DATABASES) as a, EmbeddedServer(["%", "other", "casket.kct"]) as b:
        peers = [Peer(a.host, a.port, 3), Peer(b.host, b.port, 3)]
        noise = [Step("http", b"GET /rpc/set?key=n%d&value=v HTTP/1.1\r\nHost: x\r\n\r\n" % i)
                 for i in range(6)]
        culprit = Step("http", b"GET /rpc/get?key=n1&DB=%2a HTTP/1.1\r\nHost: x\r\n\r\n")
        steps = [*noise[:3], culprit, *noise[3:]]
        answers = run_steps(peers, steps)
        at = first_divergence(*answers)
        assert at == 3
        assert shrink(peers, steps, at) == [culprit]


def test_a_corpus_replays_and_tells_a_changed_answer(tmp_path: Path, twins: list[Peer],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    steps = episode_steps(0, 0, 25, DATABASES)
    (answers,) = run_steps(twins[:1], steps)
    corpus = tmp_path / "corpus.json"
    difftest_cli.write_corpus(corpus, [Episode(0, 0, steps, answers)], DATABASES, "embedded", None)
    assert difftest_cli.main(["--replay", str(corpus), "--quiet"]) == 0
    data = json.loads(corpus.read_text())
    data["episodes"][0]["steps"][-1]["answer"] = {"status": 999}
    corpus.write_text(json.dumps(data))
    assert difftest_cli.main(["--replay", str(corpus)]) == 1
    assert "1 episodes of embedded, 1 differ" in capsys.readouterr().out


@pytest.mark.parametrize(("steps", "expected"), [
    ([Step("http", b"GET /rpc/status?DB=1 HTTP/1.1\r\n\r\n")], "db-types"),
    ([Step("http", b"GET /rpc/cur_jump_back?DB=0&CUR=1 HTTP/1.1\r\n\r\n"),
      Step("http", b"GET /rpc/cur_get?CUR=1&step= HTTP/1.1\r\n\r\n")], "cursor-direction"),
    ([Step("http", b"GET /rpc/cur_jump?DB=*&CUR=1 HTTP/1.1\r\n\r\n")], "db-types"),
    ([Step("http", b"GET /rpc/match_similar?origin=a&utf= HTTP/1.1\r\n\r\n")], "match-similar-utf"),
    ([Step("http", b"GET /rpc/echo?x=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nab")], "bodiless-methods"),
    ([Step("http", b"GET /rpc/set?key=a&value=b&xt=-1 HTTP/1.1\r\n\r\n"),
      Step("http", b"GET /rpc/match_prefix?prefix= HTTP/1.1\r\n\r\n")], "expiry-lazy"),
    ([Step("http", b"GET /rpc/get?key=a HTTP/1.1\r\n\r\n")], "new"),
])
def test_divergences_are_named_from_what_the_steps_do(steps: list[Step], expected: str) -> None:
    assert classify(steps, len(steps) - 1, DATABASES) == expected
    assert expected == "new" or expected in KNOWN
