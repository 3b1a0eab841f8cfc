"""Convert between the generated codecs' values and ``construct`` containers.

The codecs take and return plain values (ints, bytes, tuples for array
items and switch bodies); construct takes dicts and returns ``Container``s.
These two functions, driven by the schema IR, let tests and the fuzzer
compare the two implementations of one schema.
"""

from __future__ import annotations

from typing import Any

from .ir import ArrayField, IntField, StructIR, SwitchCase, SwitchField


def to_construct(ir: StructIR, values: tuple) -> dict[str, Any]:
    """Codec values (in ``ir.value_fields`` order) -> a dict construct can build."""
    out: dict[str, Any] = {}
    for name, value in zip(ir.value_fields, values):
        f = ir.field(name)
        if isinstance(f, ArrayField):
            out[name] = [to_construct(f.item, item) for item in value]
        elif isinstance(f, SwitchField):
            case = _case(f, out[f.key])
            out[name] = None if case.body is None else to_construct(case.body, value)
        else:
            out[name] = value
    return out


def from_construct(ir: StructIR, container: Any) -> tuple:
    """A construct ``Container`` -> the values the generated decoder returns."""
    out: list[Any] = []
    for name in ir.value_fields:
        f = ir.field(name)
        value = container[name]
        if isinstance(f, ArrayField):
            out.append([from_construct(f.item, item) for item in value])
        elif isinstance(f, SwitchField):
            case = _case(f, _int(ir.field(f.key), container[f.key]))
            out.append(None if case.body is None else from_construct(case.body, value))
        elif isinstance(f, IntField):
            out.append(_int(f, value))
        else:
            out.append(value)
    return tuple(out)


def _int(f: Any, value: Any) -> int:
    if isinstance(f, IntField) and f.flags is not None and not isinstance(value, int):
        # construct parses flags into {name: bool}; the codec keeps the integer
        return sum(bit for bit, name in f.flags.items() if value.get(name))
    if hasattr(value, "int"):  # construct's EnumIntegerString
        return int(value.int)
    return int(value)


def _case(f: SwitchField, key: Any) -> SwitchCase:
    number = _int(None, key)
    for case in f.cases:
        if case.value == number:
            return case
    raise ValueError(f"{f.name}: no case for {key!r}")
