"""The generator: deterministic, checkable, and faithful to the spec it walks."""

from __future__ import annotations

import subprocess
import sys

import construct as cs
import pytest

from kyototycoon import codegen
from kyototycoon.codegen.ir import UnsupportedConstruct, walk_struct


def test_generation_is_deterministic():
    assert codegen.render_all() == codegen.render_all()


def test_installed_codecs_are_what_the_spec_gives():
    assert codegen.check() == []


def test_check_catches_a_hand_edit(tmp_path):
    codegen.write(tmp_path)
    assert codegen.check(tmp_path) == []
    target = tmp_path / "binary.py"
    target.write_text(target.read_text().replace("0xBA", "0xBB", 1))
    assert codegen.check(tmp_path) == [str(target)]
    (tmp_path / "replication.py").unlink()
    assert str(tmp_path / "replication.py") in codegen.check(tmp_path)


def test_command_line_check_exit_codes(tmp_path):
    run = [sys.executable, "-m", "kyototycoon.codegen", "--out", str(tmp_path)]
    assert subprocess.run([*run, "--check"], capture_output=True).returncode == 1
    assert subprocess.run(run, capture_output=True).returncode == 0
    assert subprocess.run([*run, "--check"], capture_output=True).returncode == 0


def test_generated_modules_name_their_schema():
    files = codegen.render_all()
    assert "from kyototycoon/spec/binary.py" in files["binary.py"].splitlines()[0]
    assert "spec sha256:" in files["replication.py"]


def test_unknown_constructs_fail_the_build_instead_of_guessing():
    with pytest.raises(UnsupportedConstruct, match=r"GreedyBytes|unsupported"):
        walk_struct(cs.Struct("rest" / cs.GreedyBytes), "Greedy")
    with pytest.raises(UnsupportedConstruct, match="big-endian"):
        walk_struct(cs.Struct("n" / cs.Int32ul), "Little")


def test_importing_the_package_does_not_need_the_codecs():
    # so `python -m kyototycoon.codegen` can run where they are missing, stale or broken
    code = "import sys, kyototycoon; assert 'kyototycoon._codec.binary' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_python_module_and_c_source_share_the_digest():
    import re

    files = codegen.render_all()
    (define,) = re.findall(r'#define SOURCE_DIGEST "([0-9a-f]{64})"', files["_k_binary.c"])
    assert f'!= "{define}"' in files["binary.py"], "the codec would not recognise its own C loops"
    assert "_k_replication.c" not in files  # no bulk frame there: no extension to build


@pytest.mark.skipif(bool(__import__("os").environ.get("KYOTOTYCOON_NO_C")), reason="C build switched off")
def test_command_line_builds_the_c_loops(tmp_path):
    run = [sys.executable, "-m", "kyototycoon.codegen", "--out", str(tmp_path)]
    result = subprocess.run(run, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.glob("_k_binary*.so")) or list(tmp_path.glob("_k_binary*.pyd")), result.stderr
    no_c = subprocess.run([*run, "--no-c"], capture_output=True, text=True)
    assert "built" not in no_c.stdout
