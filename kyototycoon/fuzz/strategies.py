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
    StructIR,
    walk_module,
)
from ..spec import SPEC_MODULES
from .generate import frame_codecs, random_values, scan_layout
from .mutate import mutate


def schema_irs() -> dict[tuple[str, str], StructIR]:
    """(module, schema name) -> IR of every schema in the spec."""
    out = {}
    for module_name, module in SPEC_MODULES.items():
        for name, ir in walk_module(module.SCHEMAS).items():
            out[(module_name, name)] = ir
    return out


def values(
    ir: StructIR, *, max_records: int = 8, max_bytes: int = 64, known_flags_only: bool = False
) -> st.SearchStrategy[tuple]:
    """Valid values for ``ir``'s encoder, in ``ir.value_fields`` order.

    The same walk as the seeded fuzzer (:func:`~.generate.random_values`),
    drawing from hypothesis so failures shrink. ``known_flags_only`` keeps
    flag fields to named bits (construct drops unknown bits when parsing, so
    differential tests need it).
    """

    @st.composite
    def draw_values(draw: st.DrawFn) -> tuple:
        return random_values(
            ir,
            DrawChoices(draw),
            max_records=max_records,
            max_bytes=max_bytes,
            known_flags_only=known_flags_only,
        )

    return draw_values()


T = TypeVar("T")


class DrawChoices:
    """:class:`~.generate.Choices` that draw from hypothesis, so mutated inputs shrink."""

    def __init__(self, draw: st.DrawFn) -> None:
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
    def draw_mutated(draw: st.DrawFn) -> tuple[str, bytes]:
        fields = draw(values(codec.ir, max_records=max_records, max_bytes=max_bytes))
        wire = codec.encode(*fields)
        spans, _ = scan_layout(codec.ir, wire)
        return mutate(wire, spans, DrawChoices(draw))

    return draw_mutated()
