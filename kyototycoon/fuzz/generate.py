"""Valid frames and their byte layout, derived from the schema IR without hypothesis.

Everything is driven by a :class:`Choices` object, so the same walk serves a
seeded :class:`random.Random` (the ``kyototycoon fuzz`` command: ``--seed``
reproduces a session exactly) and hypothesis's ``draw`` (the strategies in
:mod:`.strategies`, which shrink).

:func:`scan_layout` reads a valid frame back along its IR and records where
each field sits and what it is for (magic, length, count, op, flags, ...),
which is what lets :mod:`.mutate` lie about "a length" without knowing any
frame by name.
"""

from __future__ import annotations

import ast
import importlib
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Protocol, TypeVar

from ..codegen.ir import (
    AnyField,
    ArrayField,
    BytesField,
    BytesIntField,
    IntField,
    StructIR,
    SwitchField,
    VarNumField,
    walk_module,
)
from ..spec import SPEC_MODULES
from ..spec.types import MAX_VARNUM_BYTES

T = TypeVar("T")

#: Values a fuzzer should try first for any integer: the edges of its range and their neighbours.
_EDGE_OFFSETS = (0, 1, 2)


def int_range(fmt: str) -> tuple[int, int]:
    """Smallest and largest value of a struct format letter (lowercase letters are signed)."""
    bits = 8 * struct.calcsize(">" + fmt)
    if fmt.islower() and fmt != "x":
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


class Choices(Protocol):
    """The decisions a generator makes; one implementation per source of randomness."""

    def integer(self, low: int, high: int) -> int: ...

    def choice(self, options: Sequence[T]) -> T: ...

    def binary(self, max_size: int) -> bytes: ...


class RandomChoices:
    """:class:`Choices` from a seeded :class:`random.Random`, biased towards edge values."""

    def __init__(self, rng: random.Random, edge_bias: float = 0.25):
        self.rng = rng
        self.edge_bias = edge_bias

    def integer(self, low: int, high: int) -> int:
        if self.rng.random() < self.edge_bias:
            edges = [v for d in _EDGE_OFFSETS for v in (low + d, high - d, d) if low <= v <= high]
            return self.rng.choice(edges)
        return self.rng.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def binary(self, max_size: int) -> bytes:
        size = self.integer(0, max_size)
        return self.rng.getrandbits(8 * size).to_bytes(size, "little") if size else b""


# ------------------------------------------------------------------ codecs by schema


@dataclass(frozen=True)
class FrameCodec:
    """One schema: its IR and the generated encoder and decoder."""

    module: str
    name: str
    ir: StructIR
    encode: Callable[..., bytes]
    decode: Callable[..., tuple[Any, int]]


@cache
def frame_codecs() -> dict[tuple[str, str], FrameCodec]:
    """(module, schema name) -> :class:`FrameCodec`, for every schema of the spec."""
    out = {}
    for module_name, module in SPEC_MODULES.items():
        codec = importlib.import_module(f"kyototycoon._codec.{module_name}")
        for name, ir in walk_module(module.SCHEMAS).items():
            out[(module_name, name)] = FrameCodec(
                module_name, name, ir, codec.ENCODERS[name], codec.DECODERS[name]
            )
    return out


# ------------------------------------------------------------------ valid values


def random_values(
    ir: StructIR,
    choices: Choices,
    *,
    max_records: int = 4,
    max_bytes: int = 32,
    known_flags_only: bool = False,
) -> tuple:
    """Valid values for ``ir``'s encoder, in ``ir.value_fields`` order.

    ``known_flags_only`` keeps flag fields to named bits (construct drops
    unknown bits when parsing, so differential tests need it).
    """
    again: dict[str, Any] = {"max_records": max_records, "max_bytes": max_bytes,
                             "known_flags_only": known_flags_only}
    drawn: dict[str, Any] = {}
    for f in ir.fields:
        if getattr(f, "const", None) is not None or getattr(f, "rebuild", None) is not None:
            continue
        if isinstance(f, SwitchField):
            case = next(c for c in f.cases if c.value == drawn[f.key])
            drawn[f.name] = None if case.body is None else random_values(case.body, choices, **again)
        elif isinstance(f, ArrayField):
            count = choices.integer(0, max_records)
            drawn[f.name] = [random_values(f.item, choices, **again) for _ in range(count)]
        else:
            drawn[f.name] = _scalar(f, choices, max_bytes, known_flags_only)
    return tuple(drawn[name] for name in ir.value_fields)


def _scalar(f: AnyField, choices: Choices, max_bytes: int, known_flags_only: bool = False) -> Any:
    if isinstance(f, IntField):
        if f.enum:
            return choices.choice(sorted(f.enum))
        if f.flags and known_flags_only:
            return sum(bit for bit in sorted(f.flags) if choices.integer(0, 1))
        return choices.integer(*int_range(f.fmt))
    if isinstance(f, VarNumField):
        return choices.integer(0, 2**63 - 1)
    if isinstance(f, BytesIntField):
        return choices.integer(0, 2 ** (8 * f.size) - 1)
    if isinstance(f, BytesField):
        return choices.binary(max_bytes)
    raise TypeError(f"no generator for {f!r}")


def random_frame(codec: FrameCodec, choices: Choices, *, max_records: int = 4, max_bytes: int = 32) -> bytes:
    """The bytes of one valid frame of ``codec``'s schema."""
    return codec.encode(*random_values(codec.ir, choices, max_records=max_records, max_bytes=max_bytes))


# ------------------------------------------------------------------ layout


@dataclass(frozen=True)
class Span:
    """Where one field of a frame sits and what it means.

    ``role`` is one of ``const`` (a magic byte), ``count`` (an array's
    length), ``length`` (a byte string's length), ``enum`` (an op code),
    ``flags``, ``int``, ``bytes``.
    """

    path: str
    role: str
    start: int
    end: int
    field: AnyField
    value: Any


class LayoutError(ValueError):
    """The bytes are not a whole valid frame of the schema."""


def scan_layout(ir: StructIR, wire: bytes, pos: int = 0) -> tuple[list[Span], int]:
    """Read a valid frame along ``ir``: the spans of every field and the end offset."""
    spans: list[Span] = []
    end = _scan_struct(ir, wire, pos, "", spans)
    return spans, end


def _role(ir: StructIR, f: AnyField) -> str:
    if isinstance(f, IntField):
        if f.const is not None:
            return "const"
        if f.rebuild is not None:
            counted = any(isinstance(g, ArrayField) and g.count == f.name for g in ir.fields)
            return "count" if counted else "length"
        if f.enum:
            return "enum"
        if f.flags:
            return "flags"
        return "int"
    if isinstance(f, VarNumField):
        return "length" if f.rebuild is not None else "int"
    if isinstance(f, BytesField):
        return "bytes"
    return "int"


def _scan_struct(ir: StructIR, wire: bytes, pos: int, prefix: str, spans: list[Span]) -> int:
    env: dict[str, Any] = {}
    for f in ir.fields:
        path = prefix + f.name
        start = pos
        if isinstance(f, IntField):
            if pos + f.size > len(wire):
                raise LayoutError(f"{path}: frame ends at {len(wire)}")
            (value,) = struct.unpack_from(">" + f.fmt, wire, pos)
            pos += f.size
        elif isinstance(f, VarNumField):
            value, pos = _read_varnum(wire, pos, path)
        elif isinstance(f, BytesIntField):
            value = int.from_bytes(_take(wire, pos, f.size, path), "big")
            pos += f.size
        elif isinstance(f, BytesField):
            size = evaluate(f.length, env)
            if size < 0:
                raise LayoutError(f"{path}: negative length {size}")
            value = _take(wire, pos, size, path)
            pos += size
        elif isinstance(f, ArrayField):
            for index in range(env[f.count]):
                pos = _scan_struct(f.item, wire, pos, f"{path}[{index}].", spans)
            continue
        elif isinstance(f, SwitchField):
            case = next((c for c in f.cases if c.value == env[f.key]), None)
            if case is None:
                raise LayoutError(f"{path}: no case for {env[f.key]!r}")
            if case.body is not None:
                pos = _scan_struct(case.body, wire, pos, f"{path}.", spans)
            continue
        else:
            raise TypeError(f"cannot scan {f!r}")
        env[f.name] = value
        spans.append(Span(path, _role(ir, f), start, pos, f, value))
    return pos


def _take(wire: bytes, pos: int, size: int, path: str) -> bytes:
    if pos + size > len(wire):
        raise LayoutError(f"{path}: {size} bytes claimed, frame ends at {len(wire)}")
    return wire[pos : pos + size]


def _read_varnum(wire: bytes, pos: int, path: str) -> tuple[int, int]:
    value = 0
    for _ in range(MAX_VARNUM_BYTES):
        if pos >= len(wire):
            raise LayoutError(f"{path}: frame ends inside a varnum")
        byte = wire[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos
    raise LayoutError(f"{path}: varnum too long")


def encode_varnum(value: int) -> bytes:
    """Kyoto Tycoon's base-128 number, most significant group first."""
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(groups))


# The IR writes lengths as Python expressions over field names ("(vsiz - 5)", "len(key)");
# evaluate them on the AST with only what the IR can produce, never with eval().
_OPERATORS: dict[type, Callable[[int, int], int]] = {
    ast.Add: int.__add__,
    ast.Sub: int.__sub__,
    ast.Mult: int.__mul__,
    ast.FloorDiv: int.__floordiv__,
}


def evaluate(expression: str, env: dict[str, Any]) -> int:
    """The value of an IR length expression with the fields read so far."""
    return _evaluate(ast.parse(expression, mode="eval").body, env)


def _evaluate(node: ast.AST, env: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "len"
        and len(node.args) == 1
    ):
        return len(_evaluate(node.args[0], env))
    raise ValueError(f"unsupported length expression {ast.dump(node)}")
