"""Line-by-line Python ports of the Kyoto Cabinet / Kyoto Tycoon 0.9.56b C++ that reads requests.

The reference the tests hold the fast decoders of ``kyototycoon.protocol.tsv``
(``lenient=True``) and the server's UCS conversion to. Each function keeps the
shape of its C original (``kcutil.h``: ``urldecode``, ``quotedecode``,
``basedecode``, ``strutftoucs``; ``ktutil.h``: ``wwwformtomap``, ``tsvtomap``)
so that it can be checked against the source by eye; speed does not matter.

Two things of C that the ports make explicit:
- the input is a C string: it ends at its first NUL byte (``strlen``);
- ``char`` is signed on the platforms ktserver runs on, so a byte >= 0x80
  reads as a negative number: it is ``<= ' '`` and never a digit or letter.
"""

from __future__ import annotations


def _cstr(data: bytes) -> bytes:
    return data.partition(b"\0")[0]


def _schar(byte: int) -> int:
    return byte - 256 if byte >= 0x80 else byte


def _hex_digit(c: int) -> int | None:
    if ord("0") <= c <= ord("9"):
        return c - ord("0")
    if ord("a") <= c <= ord("f"):
        return c - ord("a") + 10
    if ord("A") <= c <= ord("F"):
        return c - ord("A") + 10
    return None


def _escape(src: bytes, pos: int) -> tuple[int | None, int]:
    """The two digits after ``%``/``=`` at ``src[pos]``: (byte or None when the input ends, next pos)."""
    end = len(src)
    num = 0
    pos += 1
    if pos >= end:
        return None, pos
    digit = _hex_digit(_schar(src[pos]))
    if digit is not None:
        num = digit
    pos += 1
    if pos >= end:
        return None, pos
    digit = _hex_digit(_schar(src[pos]))
    if digit is not None:
        num = num * 0x10 + digit
    return num & 0xFF, pos + 1


def urldecode(data: bytes) -> bytes:
    """kc::urldecode."""
    src = _cstr(data)
    out = bytearray()
    pos = 0
    while pos < len(src):
        c = _schar(src[pos])
        if c == ord("%"):
            byte, pos = _escape(src, pos)
            if byte is None:
                break
            out.append(byte)
        elif c == ord("+"):
            out.append(0x20)
            pos += 1
        elif c <= ord(" ") or c == 0x7F:
            pos += 1
        else:
            out.append(c)
            pos += 1
    return bytes(out)


def quotedecode(data: bytes) -> bytes:
    """kc::quotedecode."""
    src = _cstr(data)
    out = bytearray()
    pos = 0
    end = len(src)
    while pos < end:
        c = _schar(src[pos])
        if c == ord("="):
            if pos + 1 >= end:
                break
            nxt = src[pos + 1]
            if nxt == 0x0D:
                pos += 2
                if pos >= end:
                    break
                if src[pos] == 0x0A:
                    pos += 1
            elif nxt == 0x0A:
                pos += 2
            else:
                byte, pos = _escape(src, pos)
                if byte is None:
                    break
                out.append(byte)
        elif c < ord(" ") or c == 0x7F:
            pos += 1
        else:
            out.append(c)
            pos += 1
    return bytes(out)


_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def basedecode(data: bytes) -> bytes:
    """kc::basedecode."""
    src = _cstr(data)
    bpos = 0
    eqcnt = 0
    out = bytearray()
    length = len(src)
    while bpos < length and eqcnt == 0:
        bits = 0
        i = 0
        while bpos < length and i < 4:
            ch = src[bpos]
            if ch in _B64:
                bits = (bits << 6) | _B64.index(ch)
                i += 1
            elif ch == ord("="):
                bits <<= 6
                i += 1
                eqcnt += 1
            bpos += 1
        if i == 0 and bpos >= length:
            continue
        if eqcnt == 0:
            out += bytes([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF])
        elif eqcnt == 1:
            out += bytes([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF])
        elif eqcnt == 2:
            out += bytes([(bits >> 16) & 0xFF])
    return bytes(out)


def wwwformtomap(data: bytes) -> dict[bytes, bytes]:
    """kt::wwwformtomap, called with a C string (the body's ``c_str()``, the query)."""
    src = _cstr(data)
    out: dict[bytes, bytes] = {}

    def field(chunk: bytes) -> None:
        start = 0
        while start < len(chunk) and 0 < _schar(chunk[start]) <= ord(" "):
            start += 1
        chunk = chunk[start:]
        if not chunk:
            return
        key, sep, value = chunk.partition(b"=")
        out[urldecode(key)] = urldecode(value if sep else b"")

    pv = 0
    for rp, byte in enumerate(src):
        if byte in b"&;":
            field(src[pv:rp])
            pv = rp + 1
    field(src[pv:])
    return out


def tsvtomap(data: bytes) -> dict[bytes, bytes]:
    """kt::tsvtomap (a std::string: NUL bytes stay)."""
    out: dict[bytes, bytes] = {}
    for line in data.split(b"\n"):
        if not line:
            continue
        if line.endswith(b"\r"):
            line = line[:-1]
        tab = line.find(b"\t")
        if tab >= 0:
            out[line[:tab]] = line[tab + 1:]
    return out


DECODERS = {"U": urldecode, "B": basedecode, "Q": quotedecode}


def tsvmapdecode(params: dict[bytes, bytes], colenc: str) -> dict[bytes, bytes]:
    """kt::tsvmapdecode: every entry, in key order, decoded as a C string; later keys win."""
    dec = DECODERS[colenc]
    out: dict[bytes, bytes] = {}
    for key in sorted(params):
        out[dec(key)] = dec(params[key])
    return out


def strutftoucs(src: bytes) -> list[int]:
    """kc::strutftoucs(const char*, size_t, ...), the length-bounded one ``match_similar`` uses.

    It looks one byte past a multi-byte lead for NUL (``rp[1] != '\\0'``),
    never at the length: past the end it reads the terminating NUL of the
    std::string, so a lead byte at the very end is dropped.
    """
    data = src + b"\0" * 6  # the std::string's terminator, and room for the peeks
    # (lead bytes below, continuation bytes, lead mask, smallest code point kept): the C's if-chain
    forms = ((0xE0, 1, 0x1F, 0x80), (0xF0, 2, 0x0F, 0x800), (0xF8, 3, 0x07, 0x10000),
             (0xFC, 4, 0x03, 0x200000), (0xFE, 5, 0x01, 0x4000000))
    dest: list[int] = []
    rp = 0
    while rp < len(src):
        c = data[rp]
        if c < 0x80:
            dest.append(c)
        else:
            for below, extra, mask, minimum in forms:
                if c < below:
                    # no check that c is a lead byte: 0x82..0xBF + any byte but NUL is a code point too
                    if all(data[rp + i] != 0 for i in range(1, extra + 1)):
                        code = c & mask
                        for i in range(1, extra + 1):
                            code = (code << 6) | (data[rp + i] & 0x3F)
                        if code >= minimum:
                            dest.append(code)
                        rp += extra
                    break
        rp += 1
    return dest
