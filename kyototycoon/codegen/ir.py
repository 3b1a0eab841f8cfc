"""Walk ``construct`` schemas into a small intermediate form the templates render.

Only the constructs the protocol uses are understood; anything else raises
:class:`UnsupportedConstruct`, so a schema change the generator cannot honour
fails the build instead of producing a codec that disagrees with the spec.
(construct's own ``compile()`` falls back to interpreted parsing for what it
cannot compile, which is why this walker exists.)
"""

from __future__ import annotations

import operator
import struct
from dataclasses import dataclass, field
from typing import Any, Union

import construct as cs
from construct import expr as cexpr

from ..spec.types import VarNum


class UnsupportedConstruct(TypeError):
    """The schema uses a construct the code generator does not know."""


@dataclass
class IntField:
    """A fixed-size integer (``FormatField``), maybe a constant or derived from other fields."""

    name: str
    fmt: str  # struct format letter, e.g. "H"
    size: int
    const: int | None = None
    rebuild: str | None = None  # expression (in field names) that computes it when encoding
    enum: dict[int, str] | None = None  # allowed values of an Enum, by number
    flags: dict[int, str] | None = None  # named bits of a FlagsEnum


@dataclass
class VarNumField:
    """Kyoto Tycoon's big-endian base-128 number."""

    name: str
    rebuild: str | None = None


@dataclass
class BytesIntField:
    """An unsigned big-endian integer of an odd byte width (e.g. the 5-byte xt)."""

    name: str
    size: int


@dataclass
class BytesField:
    """Raw bytes whose length is an expression over earlier fields."""

    name: str
    length: str  # expression in field names
    length_fields: tuple[str, ...]  # the fields the length depends on
    simple: bool  # the length is a plain field (can never be negative)


@dataclass
class ArrayField:
    """``count`` repetitions of a struct; items are plain tuples of their value fields."""

    name: str
    count: str  # field name holding the count
    item: StructIR


@dataclass
class SwitchCase:
    value: int
    label: str
    body: StructIR | None  # None for ``Pass``


@dataclass
class SwitchField:
    """A body chosen by the value of an earlier field."""

    name: str
    key: str
    cases: list[SwitchCase]


AnyField = Union[IntField, VarNumField, BytesIntField, BytesField, ArrayField, SwitchField]


@dataclass
class StructIR:
    """One struct: its fields in wire order."""

    name: str  # class name of the frame / body
    fields: list[AnyField] = field(default_factory=list)

    @property
    def value_fields(self) -> list[str]:
        """Fields a caller supplies and gets back: not constants, not derived lengths."""
        return [
            f.name
            for f in self.fields
            if getattr(f, "const", None) is None and getattr(f, "rebuild", None) is None
        ]

    def field(self, name: str) -> AnyField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


_BINOPS = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.floordiv: "//"}


def render_expr(value: Any, names: list[str]) -> str:
    """Render a construct expression as Python over plain field names, collecting the names used."""
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, cexpr.Path):
        parent = value._Path__parent
        if parent is not cexpr.this:
            raise UnsupportedConstruct(f"only this.field paths are supported, got {value!r}")
        name = value._Path__field
        names.append(name)
        return name
    if isinstance(value, cexpr.FuncPath):
        func = value._FuncPath__func
        if func is not len:
            raise UnsupportedConstruct(f"only len_() is supported, got {value!r}")
        return f"len({render_expr(value._FuncPath__operand, names)})"
    if isinstance(value, cexpr.BinExpr) and value.op in _BINOPS:
        return f"({render_expr(value.lhs, names)} {_BINOPS[value.op]} {render_expr(value.rhs, names)})"
    raise UnsupportedConstruct(f"unsupported expression {value!r}")


def _format_letter(sub: cs.FormatField) -> tuple[str, int]:
    fmt = sub.fmtstr
    if fmt[0] not in ">!" and struct.calcsize(fmt) != 1:
        raise UnsupportedConstruct(f"only big-endian fields are supported, got {fmt!r}")
    letter = fmt.lstrip("<>!=@")
    return letter, struct.calcsize(">" + letter)


def _int_field(name: str, sub: Any, const: int | None = None, rebuild: str | None = None) -> AnyField:
    enum = flags = None
    if isinstance(sub, cs.Enum):
        enum = {int(v): str(k) for k, v in sub.encmapping.items()}
        sub = sub.subcon
    elif isinstance(sub, cs.FlagsEnum):
        flags = {int(v): str(k) for k, v in sub.flags.items()}
        sub = sub.subcon
    if isinstance(sub, VarNum):
        return VarNumField(name, rebuild)
    if isinstance(sub, cs.FormatField):
        letter, size = _format_letter(sub)
        return IntField(name, letter, size, const=const, rebuild=rebuild, enum=enum, flags=flags)
    raise UnsupportedConstruct(f"field {name!r}: unsupported integer construct {type(sub).__name__}")


def walk_struct(schema: cs.Struct, name: str) -> StructIR:
    """Turn a ``Struct`` into a :class:`StructIR` named ``name``."""
    if not isinstance(schema, cs.Struct):
        raise UnsupportedConstruct(f"{name}: expected a Struct, got {type(schema).__name__}")
    ir = StructIR(name)
    for renamed in schema.subcons:
        if not isinstance(renamed, cs.Renamed) or not renamed.name:
            raise UnsupportedConstruct(f"{name}: every field needs a name")
        fname, sub = renamed.name, renamed.subcon
        ir.fields.append(_walk_field(name, fname, sub))
    return ir


def _walk_field(owner: str, fname: str, sub: Any) -> AnyField:
    if isinstance(sub, cs.Const):
        if not isinstance(sub.value, int):
            raise UnsupportedConstruct(f"{owner}.{fname}: only integer constants are supported")
        return _int_field(fname, sub.subcon, const=sub.value)
    if isinstance(sub, cs.Rebuild):
        return _int_field(fname, sub.subcon, rebuild=render_expr(sub.func, []))
    if isinstance(sub, (cs.FormatField, cs.Enum, cs.FlagsEnum, VarNum)):
        return _int_field(fname, sub)
    if isinstance(sub, cs.BytesInteger):
        if sub.signed or sub.swapped or not isinstance(sub.length, int):
            raise UnsupportedConstruct(f"{owner}.{fname}: only unsigned big-endian fixed BytesInteger")
        return BytesIntField(fname, sub.length)
    if isinstance(sub, cs.Bytes):
        used: list[str] = []
        length = render_expr(sub.length, used)
        return BytesField(fname, length, tuple(used), simple=isinstance(sub.length, cexpr.Path))
    if isinstance(sub, cs.Array):
        if not isinstance(sub.count, cexpr.Path):
            raise UnsupportedConstruct(f"{owner}.{fname}: Array count must be a field")
        return ArrayField(fname, render_expr(sub.count, []), walk_struct(sub.subcon, f"{owner}_{fname}"))
    if isinstance(sub, cs.Switch):
        if not isinstance(sub.keyfunc, cexpr.Path):
            raise UnsupportedConstruct(f"{owner}.{fname}: Switch key must be a field")
        cases: dict[int, SwitchCase] = {}
        labels: dict[int, int] = {}  # id(body) -> its first numeric key
        for key, body in sub.cases.items():
            if isinstance(key, int):
                labels.setdefault(id(body), key)
        for key, body in sub.cases.items():
            number = key if isinstance(key, int) else labels.get(id(body))
            if number is None:
                raise UnsupportedConstruct(f"{owner}.{fname}: case {key!r} has no numeric key")
            label = key if isinstance(key, str) else cases[number].label if number in cases else str(number)
            body_ir = None if body is cs.Pass else walk_struct(body, f"{owner}{label.title()}")
            if number not in cases or isinstance(key, str):
                cases[number] = SwitchCase(number, label, body_ir)
        return SwitchField(fname, render_expr(sub.keyfunc, []), sorted(cases.values(), key=lambda c: c.value))
    raise UnsupportedConstruct(f"{owner}.{fname}: unsupported construct {type(sub).__name__}")


def class_name(schema_name: str) -> str:
    """``get_bulk_response`` -> ``GetBulkResponse``."""
    return "".join(part.title() for part in schema_name.split("_"))


def walk_module(schemas: dict[str, cs.Struct]) -> dict[str, StructIR]:
    """Walk every schema of a spec module, keyed by its snake_case name."""
    return {name: walk_struct(schema, class_name(name)) for name, schema in schemas.items()}
