"""Hypothesis strategies derived from the :mod:`kyototycoon.spec` schemas.

Nothing here is written per frame: the strategies walk the same schema IR the
code generator uses, so a new schema gets strategies for free. Requires
``hypothesis`` (the ``test`` or ``fuzz`` extra).
"""

from __future__ import annotations

from hypothesis import strategies as st

from ..codegen.ir import (
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

_RANGES = {
    "B": (0, 0xFF),
    "H": (0, 0xFFFF),
    "I": (0, 0xFFFFFFFF),
    "L": (0, 0xFFFFFFFF),
    "Q": (0, 0xFFFFFFFFFFFFFFFF),
    "b": (-0x80, 0x7F),
    "h": (-0x8000, 0x7FFF),
    "i": (-0x80000000, 0x7FFFFFFF),
    "l": (-0x80000000, 0x7FFFFFFF),
    "q": (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
}


def schema_irs() -> dict[tuple[str, str], StructIR]:
    """(module, schema name) -> IR of every schema in the spec."""
    out = {}
    for module_name, module in SPEC_MODULES.items():
        for name, ir in walk_module(module.SCHEMAS).items():
            out[(module_name, name)] = ir
    return out


def _field(f, max_records: int, max_bytes: int, known_flags_only: bool) -> st.SearchStrategy:
    if isinstance(f, IntField):
        if f.enum:
            return st.sampled_from(sorted(f.enum))
        if f.flags and known_flags_only:
            bits = sorted(f.flags)
            return st.lists(st.sampled_from(bits), unique=True).map(sum)
        low, high = _RANGES[f.fmt]
        return st.integers(low, high)
    if isinstance(f, VarNumField):
        return st.integers(0, 2**63 - 1)
    if isinstance(f, BytesIntField):
        return st.integers(0, 2 ** (8 * f.size) - 1)
    if isinstance(f, BytesField):
        return st.binary(max_size=max_bytes)
    if isinstance(f, ArrayField):
        return st.lists(values(f.item, max_records=max_records, max_bytes=max_bytes), max_size=max_records)
    raise TypeError(f"no strategy for {f!r}")


def values(
    ir: StructIR, *, max_records: int = 8, max_bytes: int = 64, known_flags_only: bool = False
) -> st.SearchStrategy[tuple]:
    """Valid values for ``ir``'s encoder, in ``ir.value_fields`` order.

    ``known_flags_only`` keeps flag fields to named bits (construct drops
    unknown bits when parsing, so differential tests need it).
    """

    @st.composite
    def draw_values(draw) -> tuple:
        drawn: dict[str, object] = {}
        for f in ir.fields:
            if getattr(f, "const", None) is not None or getattr(f, "rebuild", None) is not None:
                continue
            if isinstance(f, SwitchField):
                case = next(c for c in f.cases if c.value == drawn[f.key])
                drawn[f.name] = (
                    None
                    if case.body is None
                    else draw(values(case.body, max_records=max_records, max_bytes=max_bytes))
                )
            else:
                drawn[f.name] = draw(_field(f, max_records, max_bytes, known_flags_only))
        return tuple(drawn[name] for name in ir.value_fields)

    return draw_values()
