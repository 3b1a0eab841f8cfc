"""``match_similar``'s measures, as Kyoto Cabinet's ``PolyDB::match_similar`` computes them.

Distances are Levenshtein distances over bytes, or with ``utf`` over the
UCS-4 arrays ``kc::strutftoucs`` makes of the keys. That conversion is not a
UTF-8 decoder: it reads any byte >= 0x80 as the lead of a sequence whose
length the byte's value says (a continuation byte 0x80..0xBF reads as a
2-byte lead), takes the following bytes whatever they are unless one is NUL,
drops overlong results and bytes 0xFE/0xFF. The origin goes through the
C-string version, so it ends at its first NUL byte.
"""

from __future__ import annotations

# (bytes below which a lead has this form, continuation bytes, lead mask, smallest code point kept)
_FORMS = ((0xE0, 1, 0x1F, 0x80), (0xF0, 2, 0x0F, 0x800), (0xF8, 3, 0x07, 0x10000),
          (0xFC, 4, 0x03, 0x200000), (0xFE, 5, 0x01, 0x4000000))


def strutftoucs(data: bytes) -> tuple[int, ...]:
    """``kc::strutftoucs(src, slen, ...)``: the code points Kyoto Cabinet reads in ``data``."""
    try:
        # valid UTF-8 converts to its code points either way; the decoder is much faster
        return tuple(map(ord, data.decode("utf-8")))
    except UnicodeDecodeError:
        pass
    padded = data + b"\0" * 5  # the peeks past the end read the key's NUL terminator
    out: list[int] = []
    pos, end = 0, len(data)
    while pos < end:
        c = padded[pos]
        if c < 0x80:
            out.append(c)
        else:
            for below, extra, mask, minimum in _FORMS:
                if c < below:
                    if all(padded[pos + i] for i in range(1, extra + 1)):
                        code = c & mask
                        for i in range(1, extra + 1):
                            code = (code << 6) | (padded[pos + i] & 0x3F)
                        if code >= minimum:
                            out.append(code)
                        pos += extra
                    break
        pos += 1
    return tuple(out)


def origin_ucs(origin: bytes) -> tuple[int, ...]:
    """The origin's code points: ``kc::strutftoucs(const char*, ...)`` stops at the first NUL."""
    return strutftoucs(origin.partition(b"\0")[0])


def levenshtein(a: tuple[int, ...] | bytes, b: tuple[int, ...] | bytes, bound: int | None = None) -> int:
    """Edit distance between two sequences; stops early once it exceeds ``bound`` (returns bound+1)."""
    if len(a) < len(b):
        a, b = b, a
    if bound is not None and len(a) - len(b) > bound:
        return bound + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if bound is not None and min(cur) > bound:
            return bound + 1
        prev = cur
    return prev[-1]
