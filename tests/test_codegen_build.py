"""The C loops' build: setuptools' build_ext with the user's compiler and flags, a one-line fallback,
and the digest check that refuses an extension built from another source."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kyototycoon.codegen import generate

pytestmark = pytest.mark.skipif(bool(os.environ.get("KYOTOTYCOON_NO_C")), reason="C build switched off")
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler on PATH")


def codegen(out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kyototycoon.codegen", "--out", str(out)],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=300)


def extensions(folder: Path) -> list[Path]:
    return [*folder.glob("_k_binary*.so"), *folder.glob("_k_binary*.pyd")]


@needs_cc
def test_the_build_honours_cc_cflags_and_ldflags(tmp_path):
    # a CC that logs its arguments, then compiles: the flags of the environment must reach it
    log = tmp_path / "cc.log"
    wrapper = tmp_path / "cc"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec cc "$@"\n')
    wrapper.chmod(0o755)
    result = codegen(tmp_path / "out", CC=str(wrapper), CFLAGS="-DKT_FROM_CFLAGS", LDFLAGS="-Wl,-O1")
    assert result.returncode == 0, result.stderr
    assert extensions(tmp_path / "out"), result.stderr
    calls = log.read_text().splitlines()
    compiles = [c for c in calls if " -c " in c]
    links = [c for c in calls if " -c " not in c]
    assert compiles and all("-DKT_FROM_CFLAGS" in c for c in compiles)
    assert links and all("-Wl,-O1" in c for c in links)


def test_no_compiler_is_one_warning_and_no_extension(tmp_path):
    result = codegen(tmp_path, CC=str(tmp_path / "no-such-cc"))
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("C loops not built, the Python ones will be used")
    assert "no-such-cc" in warnings[0]
    assert not extensions(tmp_path) and (tmp_path / "binary.py").exists()


def test_switched_off_builds_nothing(tmp_path, monkeypatch):
    assert generate.compile_kernels(tmp_path) == ([], [])  # no C source there: nothing to build
    generate.write(tmp_path)
    monkeypatch.setenv("KYOTOTYCOON_NO_C", "1")
    assert generate.compile_kernels(tmp_path) == ([], ["KYOTOTYCOON_NO_C is set"])
    assert not extensions(tmp_path)


@needs_cc
def test_an_extension_built_from_another_source_is_refused(tmp_path):
    """The codec module uses only the extension whose SOURCE_DIGEST is the one it was rendered with."""
    for name, edit in (("current", None), ("stale", "0" * 64)):
        out = tmp_path / name
        generate.write(out)
        if edit:
            source = out / "_k_binary.c"
            text = source.read_text()
            start = text.index('#define SOURCE_DIGEST "') + len('#define SOURCE_DIGEST "')
            source.write_text(text[:start] + edit + text[start + 64:])
        built, problems = generate.compile_kernels(out)
        assert built and not problems, problems
    # Put each build's extension first on the installed codec package's path, then import the codec.
    probe = textwrap.dedent("""
        import sys, kyototycoon._codec as pkg
        pkg.__path__.insert(0, sys.argv[1])
        from kyototycoon._codec import binary
        print(None if binary._K is None else binary._K.__file__)
    """)
    for name, expect_used in (("current", True), ("stale", False)):
        folder = tmp_path / name / "ext"
        folder.mkdir()
        for ext in extensions(tmp_path / name):
            shutil.copy(ext, folder)
        result = subprocess.run([sys.executable, "-c", probe, str(folder)], capture_output=True, text=True,
                                env={k: v for k, v in os.environ.items() if k != "KYOTOTYCOON_PURE_PYTHON"})
        assert result.returncode == 0, result.stderr
        used = result.stdout.strip()
        assert (used.startswith(str(folder)) if expect_used else used == "None"), (name, used)
