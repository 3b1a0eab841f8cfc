"""How a real ktserver 0.9.56b reads ``match_regex`` patterns (glibc's POSIX ERE), recorded as data.

``tests/test_posix_regex.py`` replays the answers against the embedded server,
whose :mod:`kyototycoon.server.store.posix_regex` translates the patterns for
the ``regex`` module. Record them again (overwrites ``data/ktserver_regex.json``)::

    python tests/ktserver_regex.py --record /path/to/ktserver
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "ktserver_regex.json"

#: keys with the characters patterns trip on: specials, a newline, high bytes, digits
KEYS = [
    b"a",
    b"ab",
    b"abc",
    b"aab",
    b"xff",
    b"\xff",
    b"\xff\xfe",
    b"a\nb",
    b"a.b",
    b"a\\b",
    b"d",
    b"1",
    b"12",
    b"a b",
    b"ab{",
    b"a{2}",
    b"aa",
    b"[x]",
    b"x]",
    b"-",
    b"^a",
    b"a$",
    b"$",
    b"*a",
    b"+",
    b"?",
    b"(",
    b")",
    b"()",
    b"|",
    b"abab",
    b"word here",
    b"\t",
    b"A",
    b"\xe9",
    b"_",
    b"}",
    b"{",
    b"a{,2}",
]

#: written by hand: every escape, anchor, bracket form, interval and stacked quantifier
CHOSEN = [
    rb"\xff",
    rb"xff",
    rb"\d",
    rb"\w",
    rb"\W",
    rb"\s",
    rb"\S",
    rb"\bb",
    rb"a\b",
    rb"\<w",
    rb"e\>",
    rb"\`a",
    rb"b\'",
    rb"[\d]",
    rb"[\]",
    rb"[[:digit:]]",
    rb"[[:alpha:]]+$",
    rb"[[:space:]]",
    rb"^a{2}$",
    rb"a{",
    rb"a{,2}",
    rb"a{2,}",
    rb"{",
    rb"}",
    rb"(a|b)\1",
    rb"(ab)\1",
    rb"^$",
    rb"$",
    rb"^",
    rb"a$",
    rb"^a",
    rb"a.b",
    rb"a\.b",
    rb"a\nb",
    rb"\n",
    rb"*a",
    rb"a**",
    rb"a*?",
    rb"a+?",
    rb"(?:a)",
    rb"(?i)a",
    rb"()",
    rb"(",
    rb")",
    rb"a|",
    rb"|a",
    rb"[a",
    rb"[]x]",
    rb"[^]x]",
    rb"[a-]",
    rb"[-a]",
    rb"[z-a]",
    rb"\\",
    rb"\\\\",
    rb"a\\b",
    rb"\t",
    rb"\e",
    rb"\x41",
    rb"\101",
    rb"\Q",
    rb"[.a.]",
    rb"[=a=]",
    rb"[[:foo:]]",
    rb"^\(",
    rb"\(",
    rb"\{",
    rb"a\{2\}",
    rb"a\|b",
    rb"\+",
    rb"\?",
    rb"A",
    rb"[[:upper:]]",
    rb"[\xe9]",
    rb"\xe9",
    b"\xe9",
    rb"[^a]",
    rb"[^\n]",
    rb".",
    rb"^.$",
    rb"^..$",
    rb"\1",
    rb"(a)\2",
    rb"a{1,2}{2}",
    rb"a+*",
    rb"^*",
    rb"x|*",
    rb"(*a)",
    rb"(+)",
    rb"a{1}{2}",
    rb"\]",
    rb"]",
    rb"[[]",
    rb"[[:alpha:]-]",
    rb"[a\]]",
    rb"\w+\s\w+",
    rb"[\w]",
    rb"[\s]",
    rb"\_",
    rb"\-",
    rb"\/",
    rb"$*",
    rb"a{x}",
    rb"a{1,x}",
    rb"a{2,1}",
    rb"a{32768}",
    rb"a{32767}",
    rb"(a)(b)\2",
    rb"(a\1)",
    rb"\w*",
    rb"\b*",
    rb"^+",
    rb"[a-c-e]",
    rb"[--0]",
    rb"[]-a]",
    rb"[[.-.]]",
    rb"[[.ab.]]",
    rb"[[:alpha:]",
    rb"[a-[.z.]]",
    rb"a{1,2",
    rb"\{1\}",
    rb"a{}",
    rb"a{,}",
    rb"[^]",
    rb"(|)",
    rb"(a|)+",
    rb"\'",
    rb"x\`",
    rb"^$|a",
    b"a\\",
    rb"\<",
    rb"\>*",
    rb"\`*",
    rb"a\'*",
    rb"(a)*\1",
    rb"((a)b)\2",
    rb"[\]a]",
    rb"[a-a]",
    rb"[%--]",
    rb"[!-/]",
    rb"[[:punct:]]",
    rb"[[:cntrl:]]",
    rb"[[:xdigit:]]+$",
    rb"[[:print:]]",
    rb"[[:graph:]]",
    rb"[[:blank:]]",
    rb"[[=a=]b]",
    rb"a|b|",
    rb"(ab|a)(c|bcd)",
    rb"\W\w",
    rb"\Bb",
    rb"b\B",
    rb"a{0}",
    rb"a{0,0}b",
    rb"(){2}",
    rb"a??",
    rb"a?*",
    rb"a{2}*",
    rb"a*{2}",
    rb"\(*",
    rb"(a)|\1",
    rb"[^[:alpha:]]",
    rb"x{1}{}",
    rb"[a-\]",
    rb"\.*",
    b"ab\x00zz",
]

_ALPHABET = [
    b"a",
    b"b",
    b"(",
    b")",
    b"|",
    b"*",
    b"+",
    b"?",
    b"{",
    b"}",
    b"1",
    b"2",
    b",",
    b"[",
    b"]",
    b"^",
    b"$",
    b".",
    b"\\",
    b"-",
    b":",
    b"w",
    b"x",
    b"\n",
    b"\xff",
    b" ",
]


def patterns() -> list[bytes]:
    """The chosen patterns and 600 random strings of the characters that matter (seeded)."""
    rng = random.Random(7)
    randoms = {b"".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 7))) for _ in range(600)}
    return list(dict.fromkeys([*CHOSEN, *sorted(randoms)]))


def answers(rpc: Any, pats: list[bytes]) -> list[list[Any]]:
    """``[pattern, status, sorted matching keys or the error]`` per pattern (latin-1 text),
    through ``rpc(name, params, db) -> (status, out)`` on a database holding :data:`KEYS`."""
    rpc("clear", {}, 0)
    for key in KEYS:
        rpc("set", {b"key": key, b"value": b""}, 0)
    out = []
    for pattern in pats:
        status, got = rpc("match_regex", {b"regex": pattern, b"max": b"1000"}, 0)
        found = sorted(k[1:] for k in got if k[:1] == b"_") if status == 200 else got.get(b"ERROR", b"")
        out.append(
            [
                pattern.decode("latin-1"),
                status,
                [k.decode("latin-1") for k in found] if status == 200 else found.decode("latin-1"),
            ]
        )
    return out


def record(binary: str) -> dict[str, Any]:
    from oracle import KtServer, WireTarget

    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    with KtServer(binary, ["%"]) as server:
        target = WireTarget(server.host, server.port, ["%"])
        try:
            got = answers(target.rpc, patterns())
        finally:
            target.close()
    return {
        "server": version,
        "command": "python tests/ktserver_regex.py --record KTSERVER",
        "keys": [k.decode("latin-1") for k in KEYS],
        "answers": got,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", metavar="KTSERVER", required=True, help="the ktserver binary to ask")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    DATA.write_text(json.dumps(record(args.record), indent=0, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
