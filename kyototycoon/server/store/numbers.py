"""The number records of ``increment`` and ``increment_double``, bit for bit as kttimeddb.h makes them."""

from __future__ import annotations

import math
import struct
from fractions import Fraction

from kyototycoon.server.store.common import INT64_MAX, INT64_MIN

#: Fixed-point unit of ``increment_double``'s stored fractional part.
DEC_UNIT = 10**15


def wrap64(n: int) -> int:
    # Kyoto Tycoon adds in C int64_t, which wraps on the platforms it runs on.
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >= 1 << 63 else n


def encode_int(n: int) -> bytes:
    """The 8-byte big-endian signed form ``increment`` stores."""
    return struct.pack(">q", wrap64(n))


def decode_int(data: bytes) -> int:
    """Inverse of :func:`encode_int`; raises ``ValueError`` unless ``data`` is 8 bytes."""
    if len(data) != 8:
        raise ValueError("an increment value is 8 bytes")
    return struct.unpack(">q", data)[0]


def split_double(num: float) -> tuple[int, int]:
    # (integer part, fractional part * 10^15) the way kttimeddb.h builds them:
    # modfl, then C truncating casts; NaN and infinities get marker values.
    if math.isnan(num):
        return INT64_MIN, INT64_MIN
    if math.isinf(num):
        return (INT64_MAX if num > 0 else INT64_MIN), 0
    fract, integ = math.modf(num)
    whole = int(integ)
    if not INT64_MIN <= whole <= INT64_MAX:
        # (int64_t) of a long double out of range is x86's "integer indefinite", INT64_MIN
        whole = INT64_MIN
    # Exact arithmetic: a float product would round 0.3 * 10^15 up to 3e14
    # where the C long double product truncates to 299999999999999.
    return whole, math.trunc(Fraction(fract) * DEC_UNIT)


def encode_double(num: float) -> bytes:
    """The 16-byte form ``increment_double`` stores for ``num`` on an empty record."""
    return struct.pack(">qq", *split_double(num))


def decode_double(data: bytes) -> float:
    """Value of a 16-byte ``increment_double`` record (NaN/infinity markers included)."""
    if len(data) != 16:
        raise ValueError("an increment_double value is 16 bytes")
    integ, fract = struct.unpack(">qq", data)
    if integ == INT64_MIN and fract == INT64_MIN:
        return math.nan
    if integ == INT64_MAX:
        return math.inf
    if integ == INT64_MIN:
        return -math.inf
    return integ + fract / DEC_UNIT


def orig_int(orig: int | str | bytes | None) -> int:
    if orig is None:
        return 0
    if isinstance(orig, (str, bytes)):
        word = orig.decode() if isinstance(orig, bytes) else orig
        if word == "try":
            return INT64_MIN
        if word == "set":
            return INT64_MAX
        return int(word)
    return int(orig)


def orig_float(orig: float | str | bytes | None) -> float:
    if orig is None:
        return 0.0
    if isinstance(orig, (str, bytes)):
        word = orig.decode() if isinstance(orig, bytes) else orig
        if word == "try":
            return -math.inf
        if word == "set":
            return math.inf
        return float(word)
    return float(orig)
