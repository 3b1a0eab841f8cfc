"""Render the spec modules into codec modules with the jinja2 templates."""

from __future__ import annotations

import enum
import hashlib
import inspect
import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2

from ..spec import SPEC_MODULES
from .ir import StructIR, class_name, walk_module
from .plan import (
    StructTable,
    decode_plan,
    encode_plan,
    kernel_plan,
    nested_classes,
    one_record_plan,
    tsv_kernel_plan,
    typed_params,
    var,
)

PACKAGE_DIR = Path(__file__).resolve().parent.parent
OUTPUT_DIR = PACKAGE_DIR / "_codec"
# Spec modules whose dicts of IntEnum -> schema name become magic-byte dispatch tables.
GROUPS = ("REQUESTS", "RESPONSES", "MASTER_FRAMES")

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # renders Python, not HTML
)
_env.filters["pyrepr"] = repr


def kernel_module_name(spec_name: str) -> str:
    """The C extension beside the codec module of a spec module (``_k_binary`` for ``binary``)."""
    return f"_k_{spec_name}"


def _source_of(spec: ModuleType) -> Path:
    """The file a spec module was loaded from (its digest goes into the generated code)."""
    path = inspect.getsourcefile(spec)
    if path is None:
        raise RuntimeError(f"{spec.__name__} has no source file to generate from")
    return Path(path)


def _kernel_body(spec: ModuleType, kernels: list[dict], frames: list[dict]) -> str | None:
    """C source (without its digest line) of a module's bulk loops and one-record codecs."""
    if not kernels:  # only the bulk frames are worth an extension; their one-record codecs come along
        return None
    source = _source_of(spec)
    text = _env.get_template("kernels.c.j2").render(
        spec_module=spec.__name__,
        spec_path=f"kyototycoon/spec/{source.name}",
        spec_digest=hashlib.sha256(source.read_bytes()).hexdigest(),
        module_name=kernel_module_name(spec.__name__.rsplit(".", 1)[-1]),
        kernels=kernels,
        ones=[{**f["one"], "frame": f["name"]} for f in frames if f["one"]],
    )
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def _with_digest(body: str) -> str:
    """The C source carrying the sha256 of the rest of its text, which the Python module checks."""
    digest = hashlib.sha256(body.encode()).hexdigest()
    anchor = "#include <string.h>\n"
    return body.replace(anchor, f'{anchor}\n#define SOURCE_DIGEST "{digest}"\n', 1)


def _frame_context(name: str, ir: StructIR, structs: StructTable, kernels: dict[str, dict]) -> dict:
    values = ir.value_fields
    encode = encode_plan(ir, 0, structs)
    decode = decode_plan(ir, 0, structs)
    kernel = kernels.get(name)
    for step in encode + decode:  # the top-level array loop is the one the C kernel replaces
        step["kernel"] = (kernel["encode"] if step in encode else kernel["decode"]) if (
            kernel and step["kind"] == "array") else None
    single = encode[0] if len(encode) == 1 and encode[0]["kind"] == "pack" else None
    return {
        "name": name,
        "cls": class_name(name),
        "params": ", ".join(var(0, v) for v in values),
        "typed_params": ", ".join(typed_params(ir)),
        "encode": encode,
        "single_pack": single,
        "decode": decode,
        "result_args": ", ".join(var(0, v) for v in values),
        "one": one_record_plan(ir, structs),
        # records of a key and a value also decode into a dict: the C loop's Python twin
        "into": None if not (kernel and kernel["into"]) else {
            **kernel, "struct": structs.name_for(">" + "".join(f["fmt"] for f in kernel["ints"])),
            "targets": "".join(f"_f_{f['name']}, " for f in kernel["ints"]).rstrip(" ")},
    }


TSV_KERNEL_MODULE = "_k_tsv"


def _render_tsv() -> tuple[str, str]:
    """The C loops over TSV fields and the module that loads them (checking they match)."""
    tables = tsv_kernel_plan()
    digest = hashlib.sha256(repr(sorted(tables.items())).encode()).hexdigest()
    text = _env.get_template("tsv_kernels.c.j2").render(
        module_name=TSV_KERNEL_MODULE, tables_digest=digest, **tables)
    body = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    loader = _env.get_template("tsv_kernels.py.j2").render(
        kernel_module=TSV_KERNEL_MODULE, kernel_digest=hashlib.sha256(body.encode()).hexdigest())
    return _with_digest(body), loader


def render_module(spec: ModuleType) -> str:
    """Source text of the codec module for one spec module."""
    return _render(spec)[0]


def render_kernels(spec: ModuleType) -> str | None:
    """C source of the bulk-record loops of one spec module, or None when it has no bulk frame."""
    return _render(spec)[1]


def _render(spec: ModuleType) -> tuple[str, str | None]:
    """The codec module of one spec module and the C source of its extension (None: none)."""
    irs = walk_module(spec.SCHEMAS)
    structs = StructTable()
    kernels = {name: k for name, ir in irs.items() if (k := kernel_plan(name, ir))}
    frames = [_frame_context(name, ir, structs, kernels) for name, ir in irs.items()]
    kernel_source = _kernel_body(spec, list(kernels.values()), frames)
    classes: list[StructIR] = []
    item_fields: dict[str, list[str]] = {}
    for name, ir in irs.items():
        classes.append(ir)
        classes.extend(c for c in nested_classes(ir) if c.name not in {k.name for k in classes})
        for f in ir.fields:
            item = getattr(f, "item", None)
            if item is not None:
                item_fields[f"{name}.{f.name}"] = item.value_fields
    groups = {
        f"{group}_DECODERS": sorted((int(magic), schema) for magic, schema in getattr(spec, group).items())
        for group in GROUPS
        if hasattr(spec, group)
    }
    source = _source_of(spec)
    text = _env.get_template("module.py.j2").render(
        constants=spec_constants(spec),
        spec_module=spec.__name__,
        spec_path=f"kyototycoon/spec/{source.name}",
        spec_digest=hashlib.sha256(source.read_bytes()).hexdigest(),
        structs=structs.formats,
        classes=classes,
        item_fields=item_fields,
        frames=frames,
        groups=groups,
        one_record={f["name"] for f in frames if f["one"]},
        value_record={f["name"] for f in frames if f["one"] and f["one"].get("value_slice")},
        kernel_module=kernel_module_name(spec.__name__.rsplit(".", 1)[-1]) if kernel_source else None,
        # ties the Python module to the C source it was rendered with: a stale build is not used
        kernel_digest=hashlib.sha256(kernel_source.encode()).hexdigest() if kernel_source else None,
    )
    # The spec is the only input: identical spec, identical bytes out.
    module = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    return module, None if kernel_source is None else _with_digest(kernel_source)


def spec_constants(spec: ModuleType) -> list[tuple[str, str]]:
    """The spec's protocol constants as plain ``(NAME, int)``: its enums' members as
    ``<ENUM>_<MEMBER>`` (``MAGIC_SET_BULK``, ``FLAG_NO_REPLY``) and its upper-case int constants
    (``XT_NONE``), in source order. The codec modules carry them so that the client, which needs
    them at run time, does not import ``construct`` (the spec) to learn them.
    """
    out: list[tuple[str, str]] = []
    for name, value in vars(spec).items():
        if name.startswith("_"):
            continue
        if isinstance(value, type) and issubclass(value, enum.Enum) and value.__module__ == spec.__name__:
            # bytes on the wire: in hex, as the protocol documents them
            out.extend((f"{name.upper()}_{member.name}", f"0x{int(member.value):02X}") for member in value)
        elif name.isupper() and type(value) is int:
            # masks (2**n - 1) read best in hex, counts and sizes in decimal
            out.append((name, f"0x{value:X}" if value > 0xFFFF and not (value + 1) & value else str(value)))
    return out


def render_all() -> dict[str, str]:
    """File name -> source of every generated module."""
    files = {}
    for name, module in SPEC_MODULES.items():
        files[name + ".py"], c_source = _render(module)
        if c_source is not None:
            files[kernel_module_name(name) + ".c"] = c_source
    tsv_c, tsv_py = _render_tsv()
    files[TSV_KERNEL_MODULE + ".c"] = tsv_c
    files["tsv_kernels.py"] = tsv_py
    files["__init__.py"] = (
        "# Generated by kyototycoon.codegen -- do not edit.\n"
        '"""Codecs generated from :mod:`kyototycoon.spec` at build time."""\n'
    )
    return files


def write(out_dir: Path = OUTPUT_DIR) -> list[Path]:
    """Write every generated module into ``out_dir``; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check(out_dir: Path = OUTPUT_DIR) -> list[str]:
    """Names of generated files that are missing or differ from what the spec gives."""
    stale = []
    for name, text in render_all().items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(str(path))
    return stale


#: the blocking transport's hand-written C (one write and one read in one call: client/_sockio.c)
SOCKIO_SOURCE = PACKAGE_DIR / "client" / "_sockio.c"


def compile_kernels(out_dir: Path = OUTPUT_DIR) -> tuple[list[Path], list[str]]:
    """Build each generated ``_k_*.c`` into an extension for this interpreter, beside it.

    setuptools' ``build_ext`` does the building, so the compiler is the one
    Python's own extensions use and ``CC``, ``CFLAGS``, ``CPPFLAGS``,
    ``LDFLAGS``, ``ARCHFLAGS`` (macOS) and MSVC (Windows) are honoured.
    Returns the extensions built and the reasons any could not be: without a
    C compiler or Python's headers the codecs run their Python loops, so a
    failure here is a warning, never an error. ``KYOTOTYCOON_NO_C=1`` skips it.
    """
    return _compile(_kernel_sources(out_dir))


def compile_all(out_dir: Path = OUTPUT_DIR) -> tuple[list[Path], list[str]]:
    """:func:`compile_kernels`, and with the package's own ``_codec`` the transport's C too
    (:data:`SOCKIO_SOURCE`, beside its source; POSIX only: elsewhere the transport uses Python's
    socket methods): what the build hook and ``python -m kyototycoon.codegen`` build."""
    sources = _kernel_sources(out_dir)
    if os.name == "posix" and out_dir.resolve() == OUTPUT_DIR:
        sources.append((SOCKIO_SOURCE, SOCKIO_SOURCE.parent))
    return _compile(sources)


def _kernel_sources(out_dir: Path) -> list[tuple[Path, Path]]:
    return [(source, out_dir) for source in sorted(out_dir.glob("_k_*.c"))]


def _compile(sources: list[tuple[Path, Path]]) -> tuple[list[Path], list[str]]:
    """Build each C source of ``(source, folder)`` into an optional extension named by its stem,
    put in that folder (see :func:`compile_kernels`)."""
    if os.environ.get("KYOTOTYCOON_NO_C"):
        return [], ["KYOTOTYCOON_NO_C is set"]
    try:
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext
    except ImportError as exc:  # a build without setuptools: the Python loops, not a failed install
        return [], [f"setuptools is needed to build them ({exc})"]
    extensions = [Extension(source.stem, [str(source)], optional=True) for source, _ in sources]
    folders = {source.stem: folder for source, folder in sources}

    class BuildKernels(build_ext):
        def build_extensions(self) -> None:
            if self.compiler.compiler_type in ("unix", "mingw32", "cygwin"):
                for ext in self.extensions:  # GCC and Clang spellings; MSVC takes its defaults
                    ext.extra_compile_args = ["-std=c99", "-Wall"]
            super().build_extensions()

        def build_extension(self, ext: Any) -> None:
            # Build one extension at a time and report its failure ourselves (one line each),
            # rather than as build_ext's optional-extension warning with no reason in it.
            try:
                super().build_extension(ext)
            except Exception as exc:  # noqa: BLE001 (CCompilerError, DistutilsPlatformError, OSError...)
                failures[ext.name] = f"{type(exc).__name__}: {exc}"

    built: list[Path] = []
    problems: list[str] = []
    failures: dict[str, str] = {}
    if not extensions:
        return built, problems
    with tempfile.TemporaryDirectory(prefix="kyototycoon-build-") as tmp:
        dist = Distribution({"name": "kyototycoon-kernels", "ext_modules": extensions})
        dist.script_args = []
        dist.verbose = False
        command = BuildKernels(dist)
        command.build_lib = str(Path(tmp, "lib"))
        command.build_temp = str(Path(tmp, "temp"))
        command.force = True
        try:
            command.ensure_finalized()
            command.run()
        except Exception as exc:  # noqa: BLE001 (no compiler found at all, bad flags...)
            return built, [f"{type(exc).__name__}: {exc}"]
        for ext in extensions:
            result = Path(command.get_ext_fullpath(ext.name))
            if ext.name in failures or not result.exists():
                problems.append(f"{ext.name}.c: {failures.get(ext.name, 'no extension was built')}")
                continue
            target = folders[ext.name] / result.name
            # a new file renamed over the old: a process that has the old one loaded keeps its
            # mapping (this one has, when the generator imported the TSV codec)
            partial = target.with_name(target.name + ".new")
            shutil.copyfile(result, partial)
            os.replace(partial, target)
            built.append(target)
    return built, problems
