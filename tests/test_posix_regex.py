"""match_regex reads patterns as ktserver does: glibc's POSIX ERE in the C locale, on C strings.

The answers were recorded from a real ktserver 0.9.56b (``ktserver_regex.py``,
``data/ktserver_regex.json``): some 170 chosen patterns and 500 random ones
over the characters that matter, each on the same 39 keys. They are replayed
here against the embedded server over TSV-RPC.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ktserver_regex import DATA, answers
from oracle import WireTarget

from kyototycoon.server import EmbeddedServer
from kyototycoon.server.store.posix_regex import PosixRegexError, compile_posix, translate

FACTS = json.loads(DATA.read_text(encoding="utf-8"))


def test_recorded_on_the_real_server():
    assert "0.9.56b" in FACTS["server"]
    assert len(FACTS["answers"]) > 600
    statuses = {status for _pattern, status, _found in FACTS["answers"]}
    assert statuses == {200, 450}  # patterns that compile and patterns that do not


def test_the_embedded_server_answers_every_recorded_pattern_alike():
    with EmbeddedServer(["%"]) as server:
        wire = WireTarget(server.host, server.port, ["%"])
        try:
            got = answers(wire.rpc, [p.encode("latin-1") for p, _status, _found in FACTS["answers"]])
        finally:
            wire.close()
    differ = [(want, mine) for want, mine in zip(FACTS["answers"], got) if want != mine]
    assert differ == []


@pytest.mark.parametrize(("pattern", "text", "hit"), [
    (rb"\xff", b"xff", True), (rb"\xff", b"\xff", False),  # no hex escapes: the letters
    (rb"[\d]", b"\\", True), (rb"[\d]", b"5", False),  # a backslash in brackets is itself
    (rb"a+?", b"", True),  # (a+)?, not a lazy a+
    (rb"a$", b"a\n", False),  # $ is only the very end
    (rb"a.b", b"a\nb", True),  # . matches a newline
    (rb"\<ab\>", b"x ab y", True), (rb"\<ab\>", b"xab", False),
    (rb"[[:alpha:]]", b"\xe9", False),  # the C locale: ASCII classes
    (b"ab\x00zz", b"ab", True),  # a C string: the pattern ends at its NUL
])
def test_reads_posix(pattern: bytes, text: bytes, hit: bool):
    assert (compile_posix(pattern).search(text) is not None) is hit


@pytest.mark.parametrize("pattern", [rb"*a", rb"a{", rb"(?:a)", rb"\1", rb"(a)|\1", rb"[z-a]", rb"[a-c-e]",
                                     rb"[[:foo:]]", rb"a{2,1}", rb"a{32768}", b"a\\", rb"(", rb"[a"])
def test_refuses_what_regcomp_refuses(pattern: bytes):
    with pytest.raises(PosixRegexError):
        compile_posix(pattern)


@given(st.binary(max_size=12))
def test_any_bytes_translate_or_refuse_cleanly(pattern: bytes):
    try:
        compiled = compile_posix(pattern)
    except PosixRegexError:
        return
    compiled.search(b"abc\n\xff", timeout=1.0)
    assert b"\0" not in translate(pattern)
