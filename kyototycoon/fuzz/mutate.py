"""Mutations of valid frames, chosen by what the layout says a field is for.

A mutation takes the frame's bytes, its :func:`~.generate.scan_layout` spans
and a :class:`~.generate.Choices`, and returns new bytes, or ``None`` when
the frame has no field it applies to (no count to lie about, no op code).
None of them knows a frame by name: "lie about a length" finds the length
fields in the layout, so a new schema is mutated without new code.
"""

from __future__ import annotations

import struct
from typing import Callable, Optional

from ..codegen.ir import BytesIntField, IntField, VarNumField
from .generate import Choices, Span, encode_varnum, int_range

Mutation = Callable[[bytes, list, Choices], Optional[bytes]]

#: Claims a lying length or count makes, besides the neighbours of the truth.
_HUGE_CLAIMS = (0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2**31 - 2, 2**40, 2**63 - 1)


def _encode_int(span: Span, value: int) -> bytes:
    """``value`` in the span's own encoding, clamped to what that encoding can hold."""
    f = span.field
    if isinstance(f, IntField):
        low, high = int_range(f.fmt)
        return struct.pack(">" + f.fmt, min(max(value, low), high))
    if isinstance(f, BytesIntField):
        return min(max(value, 0), 2 ** (8 * f.size) - 1).to_bytes(f.size, "big")
    if isinstance(f, VarNumField):
        return encode_varnum(max(value, 0))
    raise TypeError(f"{span.path} is not an integer field")


def _replace(wire: bytes, span: Span, new: bytes) -> bytes:
    return wire[: span.start] + new + wire[span.end :]


def _int_field(span: Span) -> IntField:
    """The field of a ``const``, ``enum`` or ``flags`` span: only integer fields have those roles."""
    f = span.field
    if not isinstance(f, IntField):
        raise TypeError(f"{span.path}: a {span.role} span of a {type(f).__name__}")
    return f


def _pick(spans: list[Span], choices: Choices, *roles: str) -> Span | None:
    matching = [s for s in spans if s.role in roles]
    return choices.choice(matching) if matching else None


def truncate(wire: bytes, spans: list[Span], choices: Choices) -> bytes | None:
    """Cut the frame short, preferably at a field boundary (where decoders switch state)."""
    if not wire:
        return None
    cuts = sorted({s.start for s in spans} | {s.end for s in spans} | {len(wire) - 1}) or [0]
    cut = choices.choice([c for c in cuts if c < len(wire)] or [0])
    if choices.integer(0, 1):
        cut = choices.integer(0, len(wire) - 1)
    return wire[:cut]


def flip_bits(wire: bytes, spans: list[Span], choices: Choices) -> bytes | None:
    """Flip one to four random bits anywhere in the frame."""
    if not wire:
        return None
    out = bytearray(wire)
    for _ in range(choices.integer(1, 4)):
        out[choices.integer(0, len(out) - 1)] ^= 1 << choices.integer(0, 7)
    return bytes(out)


def lie_about_length(wire: bytes, spans: list[Span], choices: Choices) -> bytes | None:
    """Make a length or count field claim something other than what follows."""
    span = _pick(spans, choices, "length", "count")
    if span is None:
        return None
    truth = span.value
    claim = choices.choice([0, truth - 1, truth + 1, truth * 2 + 1, *_HUGE_CLAIMS])
    return _replace(wire, span, _encode_int(span, claim))


def huge_count(wire: bytes, spans: list[Span], choices: Choices) -> bytes | None:
    """Claim billions of array items after a handful of bytes."""
    span = _pick(spans, choices, "count")
    if span is None:
        return None
    return _replace(wire, span, _encode_int(span, choices.choice(_HUGE_CLAIMS)))


def overlong_varnum(wire: bytes, spans: list[Span], choices: Choices) -> bytes | None:
    """Write a varnum with more continuation bytes than any 64-bit number needs."""
    varnums = [s for s in spans if isinstance(s.field, VarNumField)]
    if not varnums:
        return None
    span = choices.choice(varnums)
    return _replace(wire, span, b"\xff" * choices.integer(10, 20) + b"\x01")


def unknown_constant(wire: bytes, spans: list[Span], choices: Choices) -> bytes | None:
    """Replace a magic byte with any other value."""
    span = _pick(spans, choices, "const")
    if span is None:
        return None
    low, high = int_range(_int_field(span).fmt)
    other = choices.integer(low, high - 1)
    return _replace(wire, span, _encode_int(span, other if other < span.value else other + 1))


def unknown_enum(wire: bytes, spans: list[Span], choices: Choices) -> bytes | None:
    """Replace an op code with a value the enum does not name."""
    span = _pick(spans, choices, "enum")
    if span is None:
        return None
    field = _int_field(span)
    low, high = int_range(field.fmt)
    unnamed = [v for v in range(low, min(high, low + 255) + 1) if v not in (field.enum or {})]
    return _replace(wire, span, _encode_int(span, choices.choice(unnamed))) if unnamed else None


def odd_flags(wire: bytes, spans: list[Span], choices: Choices) -> bytes | None:
    """Set flag bits at random, named or not."""
    span = _pick(spans, choices, "flags")
    if span is None:
        return None
    return _replace(wire, span, _encode_int(span, choices.integer(*int_range(_int_field(span).fmt))))


def trailing_garbage(wire: bytes, spans: list[Span], choices: Choices) -> bytes | None:
    """Append random bytes after a whole frame (the next "frame" of a pipeline)."""
    return wire + choices.binary(16)


def repeat(wire: bytes, spans: list[Span], choices: Choices) -> bytes | None:
    """The same frame several times in one write (pipelining)."""
    return wire * choices.integer(2, 4)


def _has(*roles: str) -> Callable[[list[Span]], bool]:
    return lambda spans: any(s.role in roles for s in spans)


def _has_varnum(spans: list[Span]) -> bool:
    return any(isinstance(s.field, VarNumField) for s in spans)


def _always(spans: list[Span]) -> bool:
    return True


#: name -> (does it apply to a frame with these spans, the mutation).
#: The names go into reproducer files, so keep them stable.
MUTATIONS: dict[str, tuple[Callable[[list[Span]], bool], Mutation]] = {
    "truncate": (_always, truncate),
    "flip_bits": (_always, flip_bits),
    "lie_about_length": (_has("length", "count"), lie_about_length),
    "huge_count": (_has("count"), huge_count),
    "overlong_varnum": (_has_varnum, overlong_varnum),
    "unknown_constant": (_has("const"), unknown_constant),
    "unknown_enum": (_has("enum"), unknown_enum),
    "odd_flags": (_has("flags"), odd_flags),
    "trailing_garbage": (_always, trailing_garbage),
    "repeat": (_always, repeat),
}

#: Mutations that need no layout: they work on any bytes (HTTP requests, TSV bodies).
BYTE_MUTATIONS = {name: MUTATIONS[name] for name in ("truncate", "flip_bits", "trailing_garbage", "repeat")}


def mutate(
    wire: bytes, spans: list[Span], choices: Choices, mutations: dict = MUTATIONS
) -> tuple[str, bytes]:
    """Apply one mutation that fits the frame, picked by ``choices``: ``(its name, the new bytes)``."""
    fitting = [name for name, (applies, _) in mutations.items() if applies(spans)]
    name = choices.choice(fitting)
    out = mutations[name][1](wire, spans, choices)
    if out is None or out == wire:
        # e.g. a flip that hit the same bit twice, or an empty frame: cut it instead
        return "truncate", wire[:-1]
    return name, out
