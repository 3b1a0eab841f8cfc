"""``kyototycoon difftest``: the same random requests to a real ktserver and the embedded server.

::

    kyototycoon difftest --ktserver /opt/kt/bin/ktserver --script tests/recorded/t_script.lua \\
        --seed 0 --seeds 5 --steps 1000
    kyototycoon difftest --against 127.0.0.1:1978 --db '%' --db '*'   # a server already running
    kyototycoon difftest --replay tests/recorded/difftest-ktserver.json  # the corpus, embedded only

Both servers get the same databases (``--db``, repeatable; ktserver's specs, e.g. ``%``, ``*``,
``casket.kct#bnum=1000``; the embedded server names each after its path, as ktserver does). Each
divergence is printed with a minimal reproduction. ``--record FILE`` writes what the reference
server answered, the corpus ``tests/test_server_recorded_difftest.py`` replays. Exit status: 0
when nothing diverged, 1 when something did, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from .difftest import FORMAT, Episode, Peer, classify, describe, first_divergence, run_seed, run_steps

#: ktserver's in-memory and file database specs, one of each kind the protocol tells apart
DEFAULT_DATABASES = ("%", "*", "+", "-", "casket.kct", "casket.kch")
READY_LINE = "listening server socket started"
START_TIMEOUT = 10.0


def db_name(spec: str) -> str:
    """The name ktserver gives a database: its path without ``#`` options, after the last ``/``."""
    return spec.split("#", 1)[0].rsplit("/", 1)[-1]


@contextmanager
def ktserver(binary: str, databases: Sequence[str], script: Optional[str],
             port: int) -> Iterator[tuple[str, int]]:
    """A real ktserver on 127.0.0.1:``port`` in a scratch directory (file databases go there)."""
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="kt-difftest-")
    command = [binary, "-host", "127.0.0.1", "-port", str(port), "-ls"]
    if script:
        command += ["-scr", os.path.abspath(script)]
    proc = subprocess.Popen([*command, *databases], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=workdir)
    ready: queue.Queue[bool] = queue.Queue()
    lines: list[str] = []

    def drain() -> None:  # reading the log to its end keeps the pipe from filling
        told = False
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line.rstrip())
            if not told and READY_LINE in line:
                ready.put(True)
                told = True
        if not told:
            ready.put(False)

    threading.Thread(target=drain, daemon=True).start()
    try:
        try:
            ok = ready.get(timeout=START_TIMEOUT)
        except queue.Empty:
            ok = False
        if not ok:
            raise RuntimeError("ktserver did not start:\n" + "\n".join(lines[-10:]))
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(START_TIMEOUT)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def scratch_dir(prefix: str = "kt-difftest-") -> Iterator[str]:
    """Work in a new temporary directory (removed after): file databases open relative to it."""
    here = os.getcwd()
    workdir = tempfile.mkdtemp(prefix=prefix)
    os.chdir(workdir)
    try:
        yield workdir
    finally:
        os.chdir(here)
        shutil.rmtree(workdir, ignore_errors=True)


def free_port(low: int = 20000, high: int = 32767, rng: random.Random | None = None) -> int:
    """A port nobody listens on now, below 32768 (ktserver refuses higher ones)."""
    rng = rng or random.Random()
    for _ in range(200):
        port = rng.randint(low, high)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the differential tester's options to ``parser``."""
    ref = parser.add_mutually_exclusive_group()
    ref.add_argument("--ktserver", metavar="PATH", help="start this ktserver as the reference")
    ref.add_argument("--against", metavar="HOST:PORT", help="a reference server already running "
                     "(it is cleared: a scratch server only), with the databases --db lists")
    ref.add_argument("--replay", type=Path, metavar="FILE", help="replay a recorded corpus against the "
                     "embedded server")
    parser.add_argument("--cases", type=Path, metavar="FILE", help="with --ktserver or --against: send "
                        "the hand-written episodes of this corpus file instead of random ones, and "
                        "record the reference's answers into it")
    parser.add_argument("--db", action="append", metavar="SPEC", help="a database spec, repeatable "
                        f"(default: {' '.join(DEFAULT_DATABASES).replace('%', '%%')})")
    parser.add_argument("--script", metavar="FILE", help="the Lua script both servers run "
                        "(ktserver -scr; play_script steps expect echo, set and get)")
    parser.add_argument("--port", type=int, default=0, help="the ktserver's port, below 32768 "
                        "(default: a free one)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds from --seed (default: 1)")
    parser.add_argument("--steps", type=int, default=1000, help="steps per seed (default: %(default)s)")
    parser.add_argument("--episode", type=int, default=25, help="steps per episode, each from empty "
                        "databases (default: %(default)s)")
    parser.add_argument("--no-shrink", action="store_true", help="report divergences without shrinking")
    parser.add_argument("--record", type=Path, metavar="FILE", help="write the reference's answers as a "
                        "corpus")
    parser.add_argument("--server-version", default="ktserver 0.9.56b", help="what --record says the "
                        "reference is (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="a summary line per seed only")
    parser.add_argument("--relabel", action="store_true", help="with --replay: rewrite the corpus's "
                        "known divergences by what the embedded server answers now")


def run(args: argparse.Namespace) -> int:
    """Run what ``args`` asks for; the process exit status."""
    from ..server import EmbeddedServer  # the [server] extra

    for name in ("replay", "record", "cases", "script"):  # before the run moves to a scratch directory
        if getattr(args, name) is not None:
            setattr(args, name, Path(getattr(args, name)).resolve())
    if args.replay is not None:
        return _replay(args.replay, args.quiet, args.relabel)
    databases = list(args.db or DEFAULT_DATABASES)
    names = [db_name(spec) for spec in databases]
    if args.ktserver is None and args.against is None:
        print("give --ktserver PATH, --against HOST:PORT or --replay FILE", file=sys.stderr)
        return 2
    script_args: dict[str, Any] = {"script": args.script} if args.script else {}
    with scratch_dir(), EmbeddedServer(names, **script_args) as embedded, \
            _reference(args, databases) as (host, port):
        peers = [Peer(host, port, len(names)), Peer(embedded.host, embedded.port, len(names))]
        return _run(args, peers, names)


@contextmanager
def _reference(args: argparse.Namespace, databases: Sequence[str]) -> Iterator[tuple[str, int]]:
    if args.against:
        host, _, port = args.against.rpartition(":")
        yield host or "127.0.0.1", int(port)
        return
    with ktserver(args.ktserver, databases, args.script, args.port) as address:
        yield address


def _run_cases(args: argparse.Namespace, peers: Sequence[Peer], names: Sequence[str]) -> int:
    _head, episodes = read_corpus(args.cases)
    diverged = 0
    for episode in episodes:
        answers = run_steps(peers, episode.steps)
        episode.answers = answers[0]
        at = first_divergence(answers[0], answers[1])
        episode.known = None if at is None else classify(episode.steps, at, names,
                                                          (answers[0][at], answers[1][at]))
        if at is not None:
            diverged += 1
            if not args.quiet:
                print(f"{episode.id} [{episode.known}] step {at}: {episode.steps[at].send!r}\n"
                      f"  reference {answers[0][at]!r}\n  embedded  {answers[1][at]!r}")
    write_corpus(args.cases, episodes, names, args.server_version, args.script)
    print(f"{len(episodes)} cases recorded in {args.cases}, {diverged} diverged")
    return 1 if diverged else 0


def _run(args: argparse.Namespace, peers: Sequence[Peer], names: Sequence[str]) -> int:
    if args.cases is not None:
        return _run_cases(args, peers, names)
    all_episodes: list[Episode] = []
    total = 0
    categories: Counter[str] = Counter()
    for seed in range(args.seed, args.seed + args.seeds):
        def show(div: Any) -> None:
            if not args.quiet:
                print(describe(div, peers, ("ktserver" if args.ktserver else "reference", "embedded")),
                      flush=True)

        episodes, found = run_seed(peers, names, seed, args.steps, args.episode,
                                   do_shrink=not args.no_shrink, on_divergence=show)
        all_episodes += episodes
        total += len(found)
        categories.update(d.category for d in found)
        kinds = Counter(d.category for d in found)
        print(f"seed {seed}: {args.steps} steps in {len(episodes)} episodes, {len(found)} diverged "
              f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items())) or '-'})", flush=True)
    print(f"{args.seeds} seeds, {total} divergent episodes" +
          (f": {', '.join(f'{k} {v}' for k, v in sorted(categories.items()))}" if total else ""))
    if args.record is not None:
        write_corpus(args.record, all_episodes, names, args.server_version, args.script)
        print(f"recorded {sum(len(e.steps) for e in all_episodes)} steps in {args.record}")
    return 1 if total else 0


def write_corpus(path: Path, episodes: Sequence[Episode], databases: Sequence[str], server: str,
                 script: Optional[str]) -> None:
    """The corpus as JSON: one line an episode, so diffs stay readable."""
    head = {"format": FORMAT, "server": server, "databases": list(databases),
            "script": os.path.basename(script) if script else None}
    lines = [json.dumps(head)[:-1] + ', "episodes": [']
    lines += [json.dumps(e.as_json(), separators=(",", ":")) + ("," if i < len(episodes) - 1 else "")
              for i, e in enumerate(episodes)]
    lines.append("]}")
    path.write_text("\n".join(lines) + "\n")


def read_corpus(path: Path) -> tuple[dict[str, Any], list[Episode]]:
    """The head and episodes of a corpus file."""
    data = json.loads(Path(path).read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} corpus")
    for episode in data["episodes"]:  # a hand-written case not recorded yet has no answers
        for step in episode["steps"]:
            step.setdefault("answer", None)
    return data, [Episode.from_json(e) for e in data["episodes"]]


class HeldClock:
    """The replaying server's clock: one second for a whole episode, moved on as the next starts.

    ktserver answered each recorded episode within about a second, and which records its lazy
    purge removed depends on which second each step fell in (a record set with ``xt`` 0 expires
    at the end of the second it was set in). A replay on a loaded machine runs slower: with the
    wall clock a purge could remove a record ktserver had kept (CI once saw ``status`` count 8
    where ktserver counted 9). Holding the second makes the replay as fast as the recording.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.hold()

    def __call__(self) -> float:
        return self.now

    def hold(self) -> None:
        """Read the wall clock once more: the second the next episode runs in."""
        self.now = time.time()


class ReplayPeer(Peer):
    """The embedded server a recorded corpus is replayed on, its clock held for each episode."""

    def __init__(self, host: str, port: int, databases: int, clock: HeldClock):
        super().__init__(host, port, databases)
        self.clock = clock

    def reset(self) -> None:
        self.clock.hold()
        super().reset()


@contextmanager
def replay_server(databases: Sequence[str]) -> Iterator[ReplayPeer]:
    """An embedded server with ``databases`` in a scratch directory, ready to replay episodes on.

    No idle purge: ktserver answered the steps back to back, a loaded machine may pause between
    them.
    """
    from ..server import EmbeddedServer  # the [server] extra

    clock = HeldClock()
    with scratch_dir(), EmbeddedServer(databases, idle_purge=False) as srv:
        srv.server.store.clock = clock  # read by every database at each operation
        yield ReplayPeer(srv.host, srv.port, len(databases), clock)


def replay_episode(peer: Peer, episode: Episode) -> Optional[tuple[int, Any]]:
    """Run a recorded episode on ``peer``: None when every answer matches, else (step, answer)."""
    (answers,) = run_steps([peer], episode.steps)
    at = first_divergence(episode.answers, answers)
    return None if at is None else (at, answers[at])


def _replay(path: Path, quiet: bool, relabel: bool) -> int:
    head, episodes = read_corpus(path)
    databases = head["databases"]
    bad = 0
    with replay_server(databases) as peer:
        for episode in episodes:
            result = replay_episode(peer, episode)
            if result is None:
                if episode.known and not quiet:
                    print(f"{episode.id}: matches now (was known: {episode.known})")
                episode.known = None
                continue
            at, got = result
            bad += 1
            episode.known = classify(episode.steps, at, databases, (episode.answers[at], got))
            if not quiet:
                print(f"{episode.id} [{episode.known}] step {at}: {episode.steps[at].note}\n"
                      f"  send {episode.steps[at].send!r}\n  recorded {episode.answers[at]!r}\n"
                      f"  embedded {got!r}")
    print(f"{len(episodes)} episodes of {head['server']}, {bad} differ")
    if relabel:
        write_corpus(path, episodes, databases, head["server"], head.get("script"))
        print(f"relabelled {path}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kyototycoon difftest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
