"""POSIX extended regular expressions as ktserver reads them, for the ``regex`` module.

ktserver's ``match_regex`` (and Lua's ``kt.regex``) compile the pattern with
``kc::Regex``: glibc's ``regcomp(REG_EXTENDED)`` in the C locale, on C strings.
That is not Python's syntax: ``\\xff`` is the letters ``xff`` there, a
backslash in brackets is itself, ``a+?`` is ``(a+)?`` and ``$`` is only the
very end. :func:`translate` rewrites such a pattern into one the ``regex``
module reads the same way (compile it with :data:`FLAGS`), and raises
:class:`PosixRegexError` where ``regcomp`` fails. What it does was checked
against ktserver 0.9.56b (``tests/data/ktserver_facts.json``, ``regex`` cases).
"""

from __future__ import annotations

import regex

#: ``.`` matches a newline too (no REG_NEWLINE)
FLAGS = regex.DOTALL | regex.VERSION0

#: glibc's RE_DUP_MAX: the largest count of an interval
DUP_MAX = 0x7FFF

#: the C locale's character classes, as byte ranges
CLASSES: dict[bytes, list[tuple[int, int]]] = {
    b"alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    b"digit": [(0x30, 0x39)],
    b"alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    b"upper": [(0x41, 0x5A)],
    b"lower": [(0x61, 0x7A)],
    b"space": [(0x09, 0x0D), (0x20, 0x20)],
    b"blank": [(0x09, 0x09), (0x20, 0x20)],
    b"punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    b"print": [(0x20, 0x7E)],
    b"graph": [(0x21, 0x7E)],
    b"cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    b"xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}

#: glibc's escapes outside brackets (GNU extensions); any other ``\\c`` is the character c
_ESCAPES = {ord("w"): rb"\w", ord("W"): rb"\W", ord("s"): rb"\s", ord("S"): rb"\S", ord("b"): rb"\b",
            ord("B"): rb"\B", ord("<"): rb"\m", ord(">"): rb"\M", ord("`"): rb"\A", ord("'"): rb"\Z"}


class PosixRegexError(ValueError):
    """A pattern ``regcomp`` refuses (ktserver answers ``compilation failed``)."""


def _byte(c: int) -> bytes:
    return b"\\x%02x" % c


def _bracket(pattern: bytes, i: int) -> tuple[bytes, int]:
    """The set starting at ``pattern[i] == '['``: its ``regex`` form and the index after its ``]``."""
    n = len(pattern)
    i += 1
    negate = i < n and pattern[i] == 0x5E  # ^
    if negate:
        i += 1
    items: list[tuple[int, int]] = []
    first = True
    while True:
        if i >= n:
            raise PosixRegexError("unmatched [")
        c = pattern[i]
        if c == 0x5D and not first:  # ]
            i += 1
            break
        first = False
        if c == 0x5B and i + 1 < n and pattern[i + 1] in b":.=":  # [:class:] [.c.] [=c=]
            kind = pattern[i + 1]
            end = pattern.find(bytes([kind, 0x5D]), i + 2)
            if end < 0:
                raise PosixRegexError("unmatched [")
            name = pattern[i + 2:end]
            i = end + 2
            if kind == 0x3A:  # :
                if name not in CLASSES:
                    raise PosixRegexError("invalid character class")
                items.extend(CLASSES[name])
                continue
            if len(name) != 1:
                raise PosixRegexError("invalid collation character")
            low = name[0]
        else:
            low = c
            i += 1
        # a range low-high, unless the '-' is the set's last character
        if i + 1 < n and pattern[i] == 0x2D and pattern[i + 1] != 0x5D:  # -
            high = pattern[i + 1]
            i += 2
            if high == 0x5B and i < n and pattern[i] in b".=":  # [.c.] as the range's end
                kind = pattern[i]
                end = pattern.find(bytes([kind, 0x5D]), i + 1)
                if end < 0 or end != i + 2:
                    raise PosixRegexError("invalid range end")
                high = pattern[i + 1]
                i = end + 2
            if high < low or (i + 1 < n and pattern[i] == 0x2D and pattern[i + 1] != 0x5D):
                raise PosixRegexError("invalid range end")  # z-a, or a range going on: a-c-e
            items.append((low, high))
        else:
            items.append((low, low))
    body = b"".join(_byte(a) if a == b else _byte(a) + b"-" + _byte(b) for a, b in items)
    return (b"[^" if negate else b"[") + body + b"]", i


def _interval(pattern: bytes, i: int) -> tuple[bytes, int]:
    """The interval at ``pattern[i] == '{'``: its ``regex`` form and the index after its ``}``."""
    end = pattern.find(b"}", i)
    if end < 0:
        raise PosixRegexError("unmatched {")
    low_text, comma, high_text = pattern[i + 1:end].partition(b",")
    if not (low_text.isdigit() or (comma and not low_text)) or (high_text and not high_text.isdigit()):
        raise PosixRegexError("invalid content of {}")
    low = int(low_text) if low_text else 0
    high = int(high_text) if high_text else None
    if low > DUP_MAX or (high is not None and (high > DUP_MAX or high < low)):
        raise PosixRegexError("invalid content of {}")
    if not comma:
        return b"{%d}" % low, end + 1
    return (b"{%d,}" % low if high is None else b"{%d,%d}" % (low, high)), end + 1


def translate(pattern: bytes) -> bytes:
    """``pattern``, a POSIX ERE read up to its first NUL as ktserver does, in ``regex`` syntax."""
    pattern = pattern.partition(b"\0")[0]
    out: list[bytes] = []
    atom = -1  # where in ``out`` the last quantifiable atom starts (-1: none, a quantifier is an error)
    quantified = False  # the last atom has a quantifier already: another one applies to both
    # A back-reference may name a group closed before it, not one closed in another branch of an
    # alternation it is in (glibc's completed_bkref_map): per level, the groups closed when it
    # began and those its earlier branches closed.
    completed: set[int] = set()
    levels: list[tuple[set[int], set[int]]] = [(set(), set())]
    opened: list[tuple[int, int]] = []  # per open group: where it starts in out, its number
    opened_count = 0
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c in b"*+?{":
            if atom < 0:
                raise PosixRegexError("invalid preceding regular expression")
            if c == 0x7B:  # {
                quantifier, i = _interval(pattern, i)
            else:
                quantifier, i = bytes([c]), i + 1
            if quantified:  # a** is (a*)*, a+? is (a+)?: group what came before
                out[atom:] = [b"(?:" + b"".join(out[atom:]) + b")"]
            out.append(quantifier)
            quantified = True
            continue
        quantified = False
        start = len(out)
        i += 1
        if c == 0x5C:  # backslash
            if i >= n:
                raise PosixRegexError("trailing backslash")
            e = pattern[i]
            i += 1
            if 0x31 <= e <= 0x39:  # \1 .. \9
                if e - 0x30 not in completed:
                    raise PosixRegexError("invalid back reference")
                out.append(b"(?:\\%d)" % (e - 0x30))
                atom = start
            elif e in _ESCAPES:
                out.append(_ESCAPES[e])
                atom = start if e in b"wWsS" else -1
            else:
                out.append(_byte(e))
                atom = start
        elif c == 0x5B:  # [
            text, i = _bracket(pattern, i - 1)
            out.append(text)
            atom = start
        elif c == 0x28:  # (
            opened_count += 1
            opened.append((start, opened_count))
            levels.append((set(completed), set()))
            out.append(b"(")
            atom = -1
        elif c == 0x29:  # )
            if not opened:
                out.append(b"\\)")  # an unmatched ) is itself
                atom = start
            else:
                begin, number = opened.pop()
                completed |= levels.pop()[1]
                completed.add(number)
                out.append(b")")
                atom = begin
        elif c == 0x7C:  # |
            initial, earlier = levels[-1]
            earlier |= completed
            completed = set(initial)
            out.append(b"|")
            atom = -1
        elif c == 0x5E:  # ^
            out.append(b"^")
            atom = -1
        elif c == 0x24:  # $: only the very end (Python's $ also matches before a last newline)
            out.append(rb"\Z")
            atom = -1
        elif c == 0x2E:  # .
            out.append(b".")
            atom = start
        else:
            out.append(_byte(c))
            atom = start
    if opened:
        raise PosixRegexError("unmatched (")
    return b"".join(out)


def compile_posix(pattern: bytes) -> regex.Pattern[bytes]:
    """The compiled ``regex`` of a POSIX ERE; :class:`PosixRegexError` where ktserver's compile fails."""
    try:
        return regex.compile(translate(pattern), FLAGS)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise PosixRegexError(str(exc)) from None
