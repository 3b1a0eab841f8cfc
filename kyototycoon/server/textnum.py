"""Kyoto Cabinet's forgiving number parsing (``kc::atoi``, ``kc::atof``) for request parameters.

The real server never rejects a malformed number: it reads what it can and
ignores the rest (``"12abc"`` is 12, ``"x"`` is 0). Parameters must be read
the same way for answers to match.
"""

from __future__ import annotations

import math
import re

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

_INT_RE = re.compile(rb"[ \t\r\n\v\f]*([-+]?)([0-9]*)")
_FLOAT_RE = re.compile(rb"[ \t\r\n\v\f]*([-+]?)([0-9]*(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)")
_MANTISSA_RE = re.compile(rb"[0-9]*\.?[0-9]*")


def atoi(text: bytes) -> int:
    """Leading blanks, an optional sign, digits; anything after is ignored; clamped to int64."""
    match = _INT_RE.match(text)
    assert match is not None  # the pattern matches the empty string
    digits = match.group(2)
    if not digits:
        return 0
    value = int(digits)
    if match.group(1) == b"-":
        value = -value
    return max(INT64_MIN, min(INT64_MAX, value))


def atof(text: bytes) -> float:
    """Like :func:`atoi` for decimals (``inf`` and ``nan`` words included); 0.0 when nothing parses."""
    stripped = text.strip().lower()
    for word, value in ((b"inf", math.inf), (b"nan", math.nan)):
        for sign, factor in ((b"", 1.0), (b"+", 1.0), (b"-", -1.0)):
            if stripped.startswith(sign + word):
                return factor * value
    match = _FLOAT_RE.match(text)
    assert match is not None
    number = match.group(2)
    if not number or number == b".":
        return 0.0
    try:
        value = float(number)
    except ValueError:  # e.g. "1e" cut short: keep the mantissa
        mantissa = _MANTISSA_RE.match(number)
        assert mantissa is not None  # it matches the empty string too
        value = float(mantissa.group(0) or b"0")
    return -value if match.group(1) == b"-" else value


_ATOIX_RE = re.compile(rb"[\x01- ]*([-+]?)([0-9]*)(?:\.([0-9]*))?[\x01- ]*([kKmMgGtTpPeE]?)")
_ATOIX_UNITS = {b"k": 10, b"m": 20, b"g": 30, b"t": 40, b"p": 50, b"e": 60}


def atoix(text: bytes) -> int:
    """``kc::atoix``: a decimal with an optional binary unit (``"1m"`` = 1,048,576), truncated to int64."""
    match = _ATOIX_RE.match(text)
    assert match is not None  # every part is optional
    sign, whole, fraction, unit = match.groups()
    num = float(int(whole) if whole else 0)
    if fraction:
        num += int(fraction) / 10 ** len(fraction)
    if sign == b"-":
        num = -num
    num *= 1 << _ATOIX_UNITS.get(unit.lower(), 0)
    return max(INT64_MIN, min(INT64_MAX, int(num)))


#: kcutil.h vstrprintf: a real number is printed into a buffer of NUMBUFSIZ * 4 bytes
_REAL_BUFSIZ = 128


def format_f(num: float) -> bytes:
    """``num`` as ``kc::vstrprintf`` prints ``%f`` (what ktserver answers).

    ``snprintf`` fills a 128-byte buffer: a longer number keeps its first 127
    characters and ends with ``*``; one of exactly 128 ends with the NUL
    ``snprintf`` wrote in place of its last character.
    """
    text = b"%f" % num
    if len(text) > _REAL_BUFSIZ:
        return text[:_REAL_BUFSIZ - 1] + b"*"
    if len(text) == _REAL_BUFSIZ:
        return text[:_REAL_BUFSIZ - 1] + b"\0"
    return text
