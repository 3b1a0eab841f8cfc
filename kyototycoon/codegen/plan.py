"""Turn the schema IR into decode/encode plans the templates print line by line.

The plan is where speed comes from: runs of fixed-size integers become one
precompiled ``struct.Struct``; a run of fields whose sizes are known up front
gets one bounds check; the leading magic byte is checked before anything
else so a wrong frame fails at once instead of waiting for more bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from .ir import ArrayField, BytesField, BytesIntField, IntField, StructIR, SwitchField, VarNumField

F = TypeVar("F")


def _all_of(kind: type[F], fields: Sequence[object]) -> list[F] | None:
    """``fields`` when every one is a ``kind`` (typed as such), else None."""
    out = [f for f in fields if isinstance(f, kind)]
    return out if len(out) == len(fields) else None


@dataclass
class StructTable:
    """The ``struct.Struct`` objects a module needs, named in order of first use."""

    formats: dict[str, str] = field(default_factory=dict)  # format -> variable name

    def name_for(self, fmt: str) -> str:
        if fmt not in self.formats:
            self.formats[fmt] = f"_S{len(self.formats)}"
        return self.formats[fmt]


# Locals of the generated functions that a top-level field name must not shadow.
_RESERVED = frozenset({"buf", "pos", "max_count", "n", "p", "e", "exc", "len", "int", "bytes"})


def py_type(f: object) -> str:
    """The annotation of a field's value in the generated code (a parameter of its encoder)."""
    if isinstance(f, (IntField, VarNumField, BytesIntField)):
        return "int"
    if isinstance(f, BytesField):
        return "bytes"
    if isinstance(f, ArrayField):
        return "Sequence[tuple[Any, ...]]"  # records, as plain tuples of their fields
    return "Any"  # a switch: the body of whichever case


def typed_params(ir: StructIR, depth: int = 0, names: Sequence[str] | None = None) -> list[str]:
    """``name: type`` of each of ``ir``'s value fields (or of ``names``), as the generated code names them."""
    return [f"{var(depth, n)}: {py_type(ir.field(n))}" for n in (ir.value_fields if names is None else names)]


def var(depth: int, name: str) -> str:
    """Local variable holding field ``name`` of a struct nested ``depth`` deep.

    Top-level fields keep their own names: they are the encoders' parameters.
    """
    if depth == 0 and name not in _RESERVED and not name.startswith("_"):
        return name
    return f"f{depth}_{name}"


def _expr(expr: str, depth: int, names: tuple[str, ...] | list[str]) -> str:
    # Field names in an expression are bare identifiers; qualify them, longest first.
    out = expr
    for name in sorted(set(names), key=len, reverse=True):
        out = _replace_ident(out, name, var(depth, name))
    return out


def _replace_ident(text: str, name: str, repl: str) -> str:
    import re

    return re.sub(rf"(?<![\w.]){re.escape(name)}(?!\w)", repl, text)


def _idents(expr: str, candidates: list[str]) -> list[str]:
    import re

    return [c for c in candidates if re.search(rf"(?<![\w.]){re.escape(c)}(?!\w)", expr)]


# ---------------------------------------------------------------- decoding


def decode_plan(ir: StructIR, depth: int, structs: StructTable) -> list[dict[str, Any]]:
    """Steps to decode ``ir`` from ``buf`` at ``p``; each step is a dict for the template."""
    steps: list[dict[str, Any]] = []
    known: set[str] = set()
    segment: list[Any] = []

    def flush() -> None:
        if segment:
            steps.append(_segment_step(segment, depth, structs))
            known.update(f.name for f in segment)
            segment.clear()

    for f in ir.fields:
        if isinstance(f, (IntField, BytesIntField)):
            segment.append(f)
        elif isinstance(f, BytesField):
            in_segment = {g.name for g in segment}
            if in_segment.intersection(f.length_fields):
                flush()
            segment.append(f)
        else:
            flush()
            if isinstance(f, VarNumField):
                steps.append({"kind": "varnum", "var": var(depth, f.name), "name": f.name})
            elif isinstance(f, ArrayField):
                item_vars = [var(depth + 1, n) for n in f.item.value_fields]
                steps.append(
                    {
                        "kind": "array",
                        "top": depth == 0,  # resumable: a half-received frame is not parsed again
                        "var": var(depth, f.name),
                        "count": var(depth, f.count),
                        "item": decode_plan(f.item, depth + 1, structs),
                        "item_tuple": _tuple(item_vars),
                    }
                )
            elif isinstance(f, SwitchField):
                cases = []
                for case in f.cases:
                    if case.body is None:
                        cases.append(
                            {"value": case.value, "label": case.label, "steps": [], "result": "None"}
                        )
                    else:
                        body_vars = [var(depth + 1, n) for n in case.body.value_fields]
                        cases.append(
                            {
                                "value": case.value,
                                "label": case.label,
                                "steps": decode_plan(case.body, depth + 1, structs),
                                "result": f"{case.body.name}({', '.join(body_vars)})",
                            }
                        )
                steps.append(
                    {"kind": "switch", "var": var(depth, f.name), "key": var(depth, f.key), "cases": cases}
                )
            known.add(f.name)
    flush()
    return steps


def _tuple(items: list[str]) -> str:
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _segment_step(fields: list[Any], depth: int, structs: StructTable) -> dict[str, Any]:
    """One bounds check, then the fields in order."""
    items: list[dict[str, Any]] = []
    fixed = 0
    lengths: list[str] = []
    checks: list[dict[str, Any]] = []
    early = None
    run: list[IntField] = []

    def flush_run() -> None:
        if not run:
            return
        fmt = ">" + "".join(f.fmt for f in run)
        names = [var(depth, f.name) if f.const is None else f"_c_{f.name}" for f in run]
        consts = [
            {"var": f"_c_{f.name}", "value": f.const, "offset": sum(g.size for g in run[:i])}
            for i, f in enumerate(run)
            if f.const is not None
        ]
        items.append(
            {
                "kind": "unpack",
                "struct": structs.name_for(fmt),
                "targets": names[0] + "," if len(names) == 1 else ", ".join(names),
                "size": sum(f.size for f in run),
                "consts": consts,
            }
        )
        run.clear()

    for i, f in enumerate(fields):
        if isinstance(f, IntField):
            if i == 0 and f.const is not None and f.size == 1:
                early = {"field": f, "value": f.const}
            run.append(f)
            fixed += f.size
        else:
            flush_run()
            if isinstance(f, BytesIntField):
                items.append({"kind": "bytesint", "var": var(depth, f.name), "size": f.size})
                fixed += f.size
            else:
                length = _expr(f.length, depth, list(f.length_fields))
                if not f.simple:
                    checks.append({"length": length, "name": f.name})
                items.append({"kind": "slice", "var": var(depth, f.name), "length": length, "last": False})
                lengths.append(length)
    flush_run()
    size = " + ".join([str(fixed)] * bool(fixed) + lengths) or "0"
    # The last slice can end at e instead of computing its end again.
    if items and items[-1]["kind"] == "slice":
        items[-1]["last"] = True
    return {
        "kind": "segment",
        "size": size,
        "early": None if early is None else {"value": early["value"]},
        "checks": checks,
        "parts": items,
    }


# ---------------------------------------------------------------- encoding


def encode_plan(ir: StructIR, depth: int, structs: StructTable) -> list[dict[str, Any]]:
    """Steps that append the wire bytes of ``ir`` (values in ``f{depth}_*`` locals)."""
    steps: list[dict[str, Any]] = []
    run: list[IntField] = []
    names = [f.name for f in ir.fields]

    def value_of(f: Any) -> str:
        if getattr(f, "const", None) is not None:
            return f"0x{f.const:02X}"
        if f.rebuild is not None:
            return _expr(f.rebuild, depth, _idents(f.rebuild, names))
        return var(depth, f.name)

    def flush_run() -> None:
        if run:
            fmt = ">" + "".join(f.fmt for f in run)
            steps.append(
                {"kind": "pack", "struct": structs.name_for(fmt), "args": ", ".join(value_of(f) for f in run)}
            )
            run.clear()

    for f in ir.fields:
        if isinstance(f, IntField):
            run.append(f)
            continue
        flush_run()
        if isinstance(f, VarNumField):
            steps.append({"kind": "varnum", "value": value_of(f)})
        elif isinstance(f, BytesIntField):
            steps.append({"kind": "bytesint", "value": var(depth, f.name), "size": f.size, "name": f.name})
        elif isinstance(f, BytesField):
            steps.append({"kind": "raw", "value": var(depth, f.name)})
        elif isinstance(f, ArrayField):
            item_vars = [var(depth + 1, n) for n in f.item.value_fields]
            steps.append(
                {
                    "kind": "array",
                    "value": var(depth, f.name),
                    "unpack": ", ".join(item_vars) + ("," if len(item_vars) == 1 else ""),
                    "item": encode_plan(f.item, depth + 1, structs),
                }
            )
        elif isinstance(f, SwitchField):
            cases = []
            for case in f.cases:
                if case.body is None:
                    cases.append({"value": case.value, "label": case.label, "unpack": None, "steps": []})
                else:
                    body_vars = [var(depth + 1, n) for n in case.body.value_fields]
                    cases.append(
                        {
                            "value": case.value,
                            "label": case.label,
                            "unpack": ", ".join(body_vars) + ("," if len(body_vars) == 1 else ""),
                            "steps": encode_plan(case.body, depth + 1, structs),
                        }
                    )
            steps.append(
                {"kind": "switch", "key": var(depth, f.key), "value": var(depth, f.name), "cases": cases}
            )
    flush_run()
    return steps


def nested_classes(ir: StructIR) -> list[StructIR]:
    """Bodies of switches, which get their own named tuples (array items stay plain tuples)."""
    out: list[StructIR] = []
    for f in ir.fields:
        if isinstance(f, SwitchField):
            for case in f.cases:
                if case.body is not None:
                    out.append(case.body)
                    out.extend(nested_classes(case.body))
        elif isinstance(f, ArrayField):
            out.extend(nested_classes(f.item))
    return out


# ---------------------------------------------------------------- one-record fast paths


def one_record_plan(ir: StructIR, structs: StructTable) -> dict[str, Any] | None:
    """Fused codecs for a frame carrying at most one record, or None when the shape does not allow them.

    A frame of fixed integers followed by one array of records, each fixed
    integers then byte strings sized by those integers, is a fixed-size run
    when it holds one record: one ``struct`` call reads or writes the frame's
    head and the record's head together. Single-record ``get``/``set`` are
    the commonest requests, and in situ the general decoder costs them
    about 2 µs more than this.
    """
    only_ints = _all_of(IntField, ir.fields)
    if only_ints is not None:
        return _fixed_plan(ir, only_ints, structs)
    *first, last = ir.fields
    head = _all_of(IntField, first)
    if not isinstance(last, ArrayField) or not head:
        return None
    count = last.count
    if any(f.rebuild is not None and f.name != count for f in head):
        return None
    item = last.item
    ints = [f for f in item.fields if isinstance(f, IntField)]
    blobs = _all_of(BytesField, item.fields[len(ints):])
    if not blobs or not all(f.simple and f.length_fields == (f.length,) for f in blobs):
        return None
    names = [f.name for f in item.fields]
    blob_of = {f.length: f.name for f in blobs}

    def target(f: IntField, depth: int) -> str:
        return f"_c_{f.name}" if f.const is not None else var(depth, f.name)

    def value(f: IntField, depth: int) -> str:
        if f.const is not None:
            return f"0x{f.const:02X}"
        if depth == 0 and f.name == count:
            return "1"
        if f.rebuild is not None:
            return _expr(f.rebuild, depth, _idents(f.rebuild, names))
        return var(depth, f.name)

    head_size = struct_size(head)
    fixed = head_size + struct_size(ints)
    slices = []
    offset = str(fixed)
    for i, f in enumerate(blobs):
        end = None if i == len(blobs) - 1 else f"{offset} + {var(1, f.length)}"
        slices.append({"var": var(1, f.name), "start": offset, "end": end})
        offset = end or ""
    top_values = [var(0, n) for n in ir.value_fields if n != last.name]
    if any(f.fmt not in _C_INTS for f in head + ints):
        return None
    return {
        "kind": "array",
        "shared": _shared_plan(ir, item, head, ints, blobs, count, value, structs),
        "c": {
            "head": [_c_int(f, count=f.name == count) for f in head],
            "ints": [_c_int(f, blob=blob_of.get(f.name)) for f in ints],
            "blobs": [{"name": f.name, "length": f.length} for f in blobs],
            "blob_length": {f.name: f.length for f in blobs},
            "top": [n for n in ir.value_fields if n != last.name],
            "item": item.value_fields,
        },
        "head_struct": structs.name_for(">" + "".join(f.fmt for f in head)),
        "head_targets": ", ".join(target(f, 0) for f in head) + ("," if len(head) == 1 else ""),
        "head_size": head_size,
        "struct": structs.name_for(">" + "".join(f.fmt for f in head + ints)),
        "targets": ", ".join([target(f, 0) for f in head] + [target(f, 1) for f in ints]),
        "fixed": fixed,
        "count": var(0, count),
        "consts": [{"var": f"_c_{f.name}", "value": f.const} for f in head + ints if f.const is not None],
        "head_consts": [{"var": f"_c_{f.name}", "value": f.const} for f in head if f.const is not None],
        "size": " + ".join([str(fixed)] + [var(1, f.length) for f in blobs]),
        "slices": slices,
        # where the record's value starts (its last field, a blob running to the frame's end), for
        # decode_<frame>_value: a single get's answer without the tuples; None when not that shape
        "value_slice": (slices[-1]["start"] if blobs and not top_values and item.value_fields
                        and item.value_fields[-1] == blobs[-1].name else None),
        "item_tuple": _tuple([var(1, n) for n in item.value_fields]),
        "top_values": top_values,
        "params": ", ".join(top_values + [var(1, n) for n in item.value_fields]),
        "typed_params": ", ".join(typed_params(ir, 0, [n for n in ir.value_fields if n != last.name])
                                  + typed_params(item, 1)),
        "pack_args": ", ".join([value(f, 0) for f in head] + [value(f, 1) for f in ints]),
        "raws": [var(1, f.name) for f in blobs],
    }


def _shared_plan(ir: StructIR, item: StructIR, head: list[IntField], ints: list[IntField],
                 blobs: list[BytesField], count: str, value: Callable[[IntField, int], str],
                 structs: StructTable) -> dict[str, Any] | None:
    """A bulk encoder for records that share every field but their key (``keys``: get_bulk's and
    remove_bulk's requests) or their key and value (``items``: set_bulk's request, get_bulk's answer).

    Such a frame is built straight from the caller's keys or dict in one step (one C call when the
    C loops are built), not from a list of record tuples made first: bulk calls of short records
    spent as much on those tuples as on the bytes.
    """
    names = [f.name for f in blobs]
    if names not in (["key"], ["key", "value"]):
        return None
    shared = [f for f in ints if f.rebuild is None]
    top = [n for n in ir.value_fields if n != ir.fields[-1].name]
    blob_of = {f.length: f.name for f in blobs}
    if any(f.rebuild is not None and f.rebuild != f"len({blob_of.get(f.name)})" for f in ints):
        return None

    def head_arg(f: IntField) -> str:
        return "len(_records)" if f.name == count else value(f, 0)

    return {
        "kind": "keys" if names == ["key"] else "items",
        # the shared fields' parameters, each followed by ", " (the keys or the dict come after them)
        "params": "".join(f"{p}, " for p in [var(0, n) for n in top] + [var(1, f.name) for f in shared]),
        "typed_params": "".join(f"{p}, " for p in typed_params(ir, 0, top)
                                + typed_params(item, 1, [f.name for f in shared])),
        # for the C twin: its integer arguments in order, then where each field's bytes come from
        "c_top": len(top),
        "c_args": [{"size": f.size, "signed": _C_INTS[f.fmt][1]}
                   for f in [*(f for f in head if f.name in top), *shared]],
        "c_head": [{"size": f.size, "const": f.const, "count": f.name == count,
                    "arg": top.index(f.name) if f.name in top else None} for f in head],
        "c_item": [{"size": f.size, "blob": names.index(blob_of[f.name]) if f.rebuild is not None else None,
                    "arg": len(top) + shared.index(f) if f.rebuild is None else None} for f in ints],
        "head_args": ", ".join(head_arg(f) for f in head),
        "item_struct": structs.name_for(">" + "".join(f.fmt for f in ints)),
        "item_args": ", ".join(value(f, 1) for f in ints),
        "raws": [var(1, n) for n in names],
    }


def struct_size(fields: list[IntField]) -> int:
    return sum(f.size for f in fields)


def _fixed_plan(ir: StructIR, fields: list[IntField], structs: StructTable) -> dict[str, Any] | None:
    """A frame of integers only (``fields``, ir's): its exact decoder is one ``unpack`` and the constant
    checks."""
    if any(f.rebuild is not None for f in fields):
        return None
    values = [var(0, n) for n in ir.value_fields]
    if any(f.fmt not in _C_INTS for f in fields):
        return None
    return {
        "kind": "fixed",
        "c": {"head": [_c_int(f) for f in fields], "top": ir.value_fields},
        "struct": structs.name_for(">" + "".join(f.fmt for f in fields)),
        "targets": ", ".join(f"_c_{f.name}" if f.const is not None else var(0, f.name) for f in fields)
        + ("," if len(fields) == 1 else ""),
        "size": struct_size(fields),
        "consts": [{"var": f"_c_{f.name}", "value": f.const} for f in fields if f.const is not None],
        "result": _tuple(values) if values else "()",
    }


# ---------------------------------------------------------------- C kernels

# struct letter -> (C type it is read into, signed, bytes)
_C_INTS = {
    "B": ("unsigned long long", False, 1), "b": ("long long", True, 1),
    "H": ("unsigned long long", False, 2), "h": ("long long", True, 2),
    "I": ("unsigned long long", False, 4), "i": ("long long", True, 4),
    "L": ("unsigned long long", False, 4), "l": ("long long", True, 4),
    "Q": ("unsigned long long", False, 8), "q": ("long long", True, 8),
}


def kernel_plan(frame: str, ir: StructIR) -> dict[str, Any] | None:
    """The C loop over a frame's top-level array of records, or None when it has no simple one.

    Records of fixed integers then byte strings whose lengths are those
    integers (every bulk frame of the binary protocol) are decoded and encoded
    in C: the per-record Python loop is what bulk calls spend most of their
    CPU on. The Python loop stays as the reference and the fallback.
    """
    arrays = [f for f in ir.fields if isinstance(f, ArrayField)]
    if len(arrays) != 1:
        return None
    item = arrays[0].item
    ints = [f for f in item.fields if isinstance(f, IntField)]
    blobs = _all_of(BytesField, item.fields[len(ints):])
    if not blobs or not all(f.simple for f in blobs):
        return None
    if any(f.const is not None or f.enum or f.flags or f.fmt not in _C_INTS for f in ints):
        return None
    blob_of = {}  # length field -> blob it measures
    for blob in blobs:
        if blob.length_fields != (blob.length,):
            return None
        blob_of[blob.length] = blob.name
    out_ints = []
    for f in ints:
        ctype, signed, size = _C_INTS[f.fmt]
        measures = blob_of.get(f.name)
        if f.rebuild is not None and f.rebuild != f"len({measures})":
            return None
        out_ints.append({"name": f.name, "fmt": f.fmt, "ctype": ctype, "signed": signed, "size": size,
                         "blob": measures, "value": f.rebuild is None})
    names = item.value_fields
    return {
        "frame": frame,
        "decode": f"decode_{frame}_records",
        "encode": f"encode_{frame}_records",
        "ints": out_ints,
        "blobs": [{"name": f.name, "length": f.length} for f in blobs],
        "fixed": struct_size(ints),
        "fields": [{"name": n, "blob": any(b.name == n for b in blobs)} for n in names],
        "arity": len(names),
        # records of a key and a value also decode straight into a dict (get_bulk's answer)
        "into": "key" in blob_of.values() and "value" in blob_of.values(),
    }


def _c_int(f: IntField, count: bool = False, blob: str | None = None) -> dict[str, Any]:
    """What the C one-record codecs need to know of an integer field."""
    _, signed, size = _C_INTS[f.fmt]
    return {"name": f.name, "size": size, "signed": signed, "const": f.const, "count": count,
            "blob": blob, "value": f.const is None and f.rebuild is None}


# ---------------------------------------------------------------- TSV field loops


def _byte_table(values: list[int]) -> str:
    """A C initializer of 256 small numbers, 32 a line."""
    lines = [", ".join(str(v) for v in values[i:i + 32]) for i in range(0, 256, 32)]
    return ",\n    ".join(lines)


def tsv_kernel_plan() -> dict[str, Any]:
    """The byte tables of the C loops over TSV fields, taken from :mod:`kyototycoon.protocol.tsv`.

    The Python codec's own constants are the one source: the C loops cannot
    drift from the encodings the Python loops (the reference) implement.
    """
    from ..protocol import tsv

    b64_value = [64] * 256
    for i, c in enumerate(tsv._B64_CHARS):
        b64_value[c] = i
    hexval = [16] * 256
    for c, v in tsv._HEXVAL.items():
        hexval[c] = v
    tables = {
        "ctrl": _byte_table([int(c in tsv._CTRL) for c in range(256)]),
        "url_safe": _byte_table([int(c in tsv._URL_SAFE) for c in range(256)]),
        "est_safe": _byte_table([int(c in tsv._EST_SAFE) for c in range(256)]),
        "url_drop": _byte_table([int(c in tsv._URL_DROP) for c in range(256)]),
        "b64_value": _byte_table(b64_value),
        "hex_value": _byte_table(hexval),
        "b64_chars": tsv._B64_CHARS.decode("ascii"),
        "est_limit": tsv.EST_FIELD_LIMIT,
    }
    return tables
