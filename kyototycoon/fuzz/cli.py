"""``kyototycoon fuzz``: fuzz a server over the network, or this package's own parsers.

::

    kyototycoon fuzz --host 127.0.0.1 --port 1978 --seconds 60 --seed 7
    kyototycoon fuzz --decoders --seconds 60
    kyototycoon fuzz --replay fuzz-findings/hang-server-7-1234.json --host 127.0.0.1 --port 1978

Exit status: 0 when nothing was found, 1 when something was (or a replayed
finding still reproduces), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cases import Case
from .session import FORMAT, Limits, Outcome, probe, read_reproducer, run_case, run_session, write_reproducer
from .targets import Finding, all_targets, check, fuzz_decoders

DEFAULT_OUT = Path("fuzz-findings")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fuzzer's options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="server to fuzz (default: %(default)s)")
    parser.add_argument("--port", type=int, default=1978, help="its port (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="session seed: the same seed, the same cases")
    parser.add_argument("--cases", type=int, default=None, help="stop after this many cases")
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for an owed answer or the probe (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="directory for reproducer files (default: %(default)s)"
    )
    parser.add_argument(
        "--decoders",
        action="store_true",
        help="fuzz this package's own decoders and parsers instead of a server",
    )
    parser.add_argument("--replay", type=Path, metavar="FILE", help="run one reproducer file again")


def run(args: argparse.Namespace) -> int:
    """Run what ``args`` asks for; the process exit status."""
    limits = Limits(timeout=args.timeout, probe_timeout=args.timeout, grace=min(0.5, args.timeout))
    if args.replay is not None:
        return _replay(args.replay, args.host, args.port, limits)
    if args.decoders:
        return _fuzz_decoders(args)
    return _fuzz_server(args, limits)


def _fuzz_server(args: argparse.Namespace, limits: Limits) -> int:
    alive = probe(args.host, args.port, limits.probe_timeout)
    if alive.finding is not None:
        print(f"{args.host}:{args.port} does not answer a get_bulk: {alive.detail}", file=sys.stderr)
        return 2

    def report_finding(case: Case, outcome: Outcome, path: Path | None) -> None:
        print(f"{outcome.finding}: {case.label}: {outcome.detail} -> {path}", flush=True)

    print(f"fuzzing {args.host}:{args.port} for {args.seconds:g} s, seed {args.seed}", flush=True)
    report = run_session(
        args.host,
        args.port,
        seed=args.seed,
        seconds=args.seconds,
        max_cases=args.cases,
        limits=limits,
        out_dir=args.out,
        on_finding=report_finding,
    )
    kinds = sorted({label.split("/")[0] for label in report.labels})
    print(
        f"{report.cases} cases ({', '.join(kinds)}), {report.owed} answers owed, "
        f"{len(report.findings)} findings" + (f"; stopped at {report.stopped}" if report.stopped else "")
    )
    return 1 if report.findings else 0


def _fuzz_decoders(args: argparse.Namespace) -> int:
    def report_finding(finding: Finding, index: int) -> None:
        record = {
            "target": finding.target,
            "finding": finding.finding,
            "detail": finding.detail,
            "seed": args.seed,
            "index": index,
        }
        path = write_reproducer(args.out, record, finding.data)
        print(f"{finding.finding}: {finding.target}: {finding.detail} -> {path}", flush=True)

    print(f"fuzzing the decoders for {args.seconds:g} s, seed {args.seed}", flush=True)
    report = fuzz_decoders(
        seed=args.seed, seconds=args.seconds, max_cases=args.cases, on_finding=report_finding
    )
    print(f"{report.cases} inputs over {len(all_targets())} parsers, {len(report.findings)} findings")
    return 1 if report.findings else 0


def _replay(path: Path, host: str, port: int, limits: Limits) -> int:
    try:
        record, data = read_reproducer(path)
    except (OSError, ValueError, KeyError) as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 2
    print(f"replaying {record['finding']} ({record.get('label') or record['target']}): {record['detail']}")
    if record["target"] == "server":
        from .cases import Case  # only here: a replay needs no session

        outcome = run_case(host, port, Case("replay", record.get("label", "replay"), data), limits)
        found, detail = outcome.finding, outcome.detail
    else:
        target = all_targets().get(record["target"])
        if target is None:
            print(f"{path}: unknown target {record['target']!r} ({FORMAT})", file=sys.stderr)
            return 2
        result = check(target, data)
        found, detail = (result.finding, result.detail) if result else (None, "")
    if found is None:
        print("does not reproduce: the server (or parser) behaved")
        return 0
    print(f"reproduces: {found}: {detail}")
    return 1
