"""What a real ktserver 0.9.56b answered to the differential tester's random requests, replayed.

``tests/recorded/difftest-ktserver.json`` was recorded by
``kyototycoon difftest --ktserver ktserver --script tests/recorded/t_script.lua --seeds 5
--steps 1000 --record ...`` (README, Differential testing): 5 seeds of 1,000 steps in episodes
from empty databases of six types (``%``, ``*``, ``+``, ``-``, ``casket.kct``, ``casket.kch``),
over TSV-RPC under every colenc, forms and queries, REST and the binary protocol, plus the shrunk
reproduction of each divergence found (``-min``). ``tests/recorded/difftest-cases.json`` holds
hand-written episodes, one for each divergence fixed in the embedded server, recorded with
``kyototycoon difftest --ktserver ktserver --db % --db '*' --cases FILE``. Each episode is sent to
the embedded server with the same databases and must get the same answers, normalised as the
tester normalises them.

An episode whose ``known`` names a divergence of :data:`kyototycoon.fuzz.difftest.KNOWN` that is
not fixed yet is a strict xfail with that reason: when the fix lands it passes, the xfail fails,
and ``kyototycoon difftest --replay FILE --relabel`` clears the mark.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kyototycoon.fuzz.difftest import KNOWN, Episode, Peer, Step, first_divergence, run_steps, same
from kyototycoon.fuzz.difftest_cli import read_corpus, replay_server

RECORDED = Path(__file__).parent / "recorded"
HEAD, EPISODES = read_corpus(RECORDED / "difftest-ktserver.json")
CASES_HEAD, CASES = read_corpus(RECORDED / "difftest-cases.json")


def test_the_corpus_is_of_the_real_server() -> None:
    for head in (HEAD, CASES_HEAD):
        assert head["server"].startswith("ktserver 0.9.56b")
    assert sum(len(e.steps) for e in EPISODES) >= 5000
    assert {e.seed for e in EPISODES} == {0, 1, 2, 3, 4}
    assert all(e.known in KNOWN for e in EPISODES if e.known), "every known divergence has a reason"


def test_the_corpus_covers_every_protocol() -> None:
    sends = [s.send for e in EPISODES for s in e.steps]
    assert any(s.startswith(b"\xb8") for s in sends) and any(s.startswith(b"\xba") for s in sends)
    for colenc in (b"colenc=U", b"colenc=B", b"colenc=Q", b"x-www-form-urlencoded"):
        assert any(colenc in s for s in sends), colenc
    for rest in (b"GET /", b"HEAD /", b"PUT /", b"DELETE /"):
        assert any(s.startswith(rest) and not s.startswith(rest + b"rpc/") for s in sends), rest


def _peer(databases: list[str]) -> Iterator[Peer]:
    # file databases (casket.kct, ...) name paths relative to the server's directory: a scratch
    # one; its clock holds one second for each episode (difftest_cli.HeldClock says why)
    with replay_server(databases) as peer:
        yield peer


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    yield from _peer(HEAD["databases"])


@pytest.fixture(scope="module")
def cases_peer() -> Iterator[Peer]:
    yield from _peer(CASES_HEAD["databases"])


def _case(episode: Episode) -> object:
    marks = [pytest.mark.xfail(reason=f"{episode.known}: {KNOWN[episode.known]}", strict=True)] \
        if episode.known else []
    return pytest.param(episode, id=episode.id, marks=marks)


def _replay(peer: Peer, episode: Episode) -> None:
    (answers,) = run_steps([peer], episode.steps)
    at = first_divergence(episode.answers, answers)
    assert at is None, (f"step {at}: {episode.steps[at].send!r}\n ktserver: {episode.answers[at]!r}\n"
                        f" embedded: {answers[at]!r}")


@pytest.mark.parametrize("episode", [_case(e) for e in EPISODES])
def test_the_embedded_server_answers_as_ktserver_did(peer: Peer, episode: Episode) -> None:
    _replay(peer, episode)


@pytest.mark.parametrize("episode", [_case(e) for e in CASES])
def test_the_fixed_divergences_stay_fixed(cases_peer: Peer, episode: Episode) -> None:
    _replay(cases_peer, episode)


def test_relative_expiries_compare_with_a_second_of_slack() -> None:
    assert same({"tsv": [["xt", ["rel", 60]]]}, {"tsv": [["xt", ["rel", 59]]]})
    assert not same({"tsv": [["xt", ["rel", 60]]]}, {"tsv": [["xt", ["rel", 58]]]})
    assert not same({"tsv": [["xt", 1798810809]]}, {"tsv": [["xt", 1798810810]]})


def test_the_replay_holds_the_second_ktserver_answered_in() -> None:
    # s0-e30 sets a record with xt 0 (it expires when its second ends); the lazy purge, whose score
    # carries over from the episodes before (clear keeps it, on ktserver too), walks over it before
    # status counts the records and a get reads it: on ktserver, all in the same second. Replayed
    # with a clock that moves on a second a step, as a slow machine's wall clock may, they differ.
    at = next(i for i, e in enumerate(EPISODES) if e.id == "s0-e30")
    assert _replay_diverges(EPISODES[: at + 1], tick=0.0) is None
    ticking = _replay_diverges(EPISODES[: at + 1], tick=1.0)
    assert ticking is not None and ticking >= 19, ticking


def _replay_diverges(episodes: list[Episode], tick: float) -> int | None:
    """On a new server: the episodes in order, the clock held, then the last one's clock moved
    on ``tick`` seconds after each step; the step at which that last one first diverges."""
    with replay_server(HEAD["databases"]) as peer:
        for episode in episodes[:-1]:
            _replay(peer, episode)
        ask = peer.ask

        def ask_then_tick(step: Step, raw: bool = False) -> Any:
            answer = ask(step, raw)
            peer.clock.now += tick
            return answer

        peer.ask = ask_then_tick  # type: ignore[method-assign]
        (answers,) = run_steps([peer], episodes[-1].steps)
    return first_divergence(episodes[-1].answers, answers)
