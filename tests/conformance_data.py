"""Loader for the recorded Kyoto Tycoon 0.9.56b transcripts in ``tests/conformance/``.

Tests import it as ``from conformance_data import cases, case, ...`` (pytest puts
``tests/`` on ``sys.path``) or as ``tests.conformance_data``.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

TRANSCRIPT = Path(__file__).resolve().parent / "conformance" / "ktserver-0.9.56b.jsonl"

_DATE_RE = re.compile(rb"\r\nDate: [^\r\n]*\r\n")
_HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"TRACE ", b"CONNECT ")


@dataclass(frozen=True)
class Step:
    """One request written and the exact bytes the server answered to it."""

    send: bytes
    recv: bytes
    volatile: tuple[str, ...] = ()
    port: str | None = None  # "memc" or "http" in memc/* cases, else None

    @property
    def is_http(self) -> bool:
        """True when ``send`` is an HTTP request (not binary, not memcached)."""
        return self.port != "memc" and self.send.startswith(_HTTP_METHODS)

    @property
    def body_volatile(self) -> bool:
        return "body" in self.volatile


@dataclass(frozen=True)
class Case:
    """A recorded case: its steps on one connection (two for memc/*)."""

    name: str
    about: str
    steps: tuple[Step, ...]
    updates: tuple[bytes, ...] = field(default=())  # repl/stream: requests sent first elsewhere


@cache
def _load() -> tuple[dict, tuple[Case, ...]]:
    header: dict = {}
    out = []
    with TRANSCRIPT.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            obj = json.loads(line)
            if "header" in obj:
                header = obj["header"]
                continue
            steps = tuple(
                Step(
                    send=base64.b64decode(s["send"]),
                    recv=base64.b64decode(s["recv"]),
                    volatile=tuple(s.get("volatile", ())),
                    port=s.get("port"),
                )
                for s in obj["steps"]
            )
            updates = tuple(base64.b64decode(u) for u in obj.get("updates", ()))
            out.append(Case(obj["case"], obj.get("about", ""), steps, updates))
    return header, tuple(out)


def header() -> dict:
    """The transcript's header object (server version, command line...)."""
    return _load()[0]


def cases(prefix: str = "") -> list[Case]:
    """All cases, in file order, whose name starts with ``prefix``."""
    return [c for c in _load()[1] if c.name.startswith(prefix)]


def case(name: str) -> Case:
    """The case called ``name`` (KeyError if there is none)."""
    for c in _load()[1]:
        if c.name == name:
            return c
    raise KeyError(name)


def steps(prefix: str = "") -> list[tuple[str, int, Step]]:
    """Every step as ``(case name, index, step)``, handy for parametrize ids."""
    return [(c.name, i, s) for c in cases(prefix) for i, s in enumerate(c.steps)]


def http_steps() -> list[tuple[str, int, Step]]:
    """Every step whose request is HTTP (including HTTP steps of memc/* cases)."""
    return [t for t in steps() if t[2].is_http]


def strip_date(message: bytes) -> bytes:
    """Replace an HTTP message's Date header value by ``X`` (it varies per run)."""
    return _DATE_RE.sub(b"\r\nDate: X\r\n", message, count=1)


def split_http(message: bytes) -> tuple[bytes, bytes]:
    """Split a whole recorded HTTP message into (head without the blank line, body)."""
    head, sep, body = message.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("not an HTTP message")
    return head, body
