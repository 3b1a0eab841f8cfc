"""Hypothesis strategies derived from the :mod:`kyototycoon.spec` schemas.

Nothing here is written per frame: the strategies walk the same schema IR the
code generator uses, so a new schema gets strategies for free. Requires
``hypothesis`` (the ``test`` or ``fuzz`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

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
from .generate import frame_codecs, int_range, scan_layout
from .mutate import mutate


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
        low, high = int_range(f.fmt)
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


T = TypeVar("T")


class DrawChoices:
    """:class:`~.generate.Choices` that draw from hypothesis, so mutated inputs shrink."""

    def __init__(self, draw):
        self.draw = draw

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def choice(self, options: Sequence[T]) -> T:
        return self.draw(st.sampled_from(options))

    def binary(self, max_size: int) -> bytes:
        return self.draw(st.binary(max_size=max_size))


def mutated_frames(
    module: str, name: str, *, max_records: int = 4, max_bytes: int = 32
) -> st.SearchStrategy[tuple[str, bytes]]:
    """``(mutation name, bytes)``: a valid frame of the schema, then one mutation that fits it.

    The mutation is picked by :func:`~.mutate.mutate` by what the
    frame's layout holds (length and count fields, magic bytes, op codes,
    flags), so every schema gets lying lengths without naming its fields.
    """
    codec = frame_codecs()[(module, name)]

    @st.composite
    def draw_mutated(draw) -> tuple[str, bytes]:
        fields = draw(values(codec.ir, max_records=max_records, max_bytes=max_bytes))
        wire = codec.encode(*fields)
        spans, _ = scan_layout(codec.ir, wire)
        return mutate(wire, spans, DrawChoices(draw))

    return draw_mutated()
