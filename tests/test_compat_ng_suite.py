"""python-kyototycoon-ng's own test suite, unchanged, against this package and the embedded server
(and a real ktserver, with ``KYOTOTYCOON_TEST_KTSERVER`` set).

The modules in ``tests/ng_suite/`` are that project's ``tests/t_*.py`` (BSD
license, see ``tests/ng_suite/README.md``). Each runs in a subprocess with
``unittest``, against an embedded server of its own with the two databases
the suite expects (``ktserver ... '%' '%'``); they run at once, so the
suite's sleeps (``t_expire`` waits 20 s) overlap.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import oracle
import pytest

from kyototycoon.server import EmbeddedServer

SUITE = Path(__file__).parent / "ng_suite"

# sha256 of the files as copied from github.com/alticelabs/python-kyototycoon-ng@852680fa: "unchanged"
ORIGINALS = {
    "t_arithmetic.py": "9453cf8e899393afc842b50756f47d6f1df414766a3c5d090abafa3d97fd671c",
    "t_expire.py": "b4c5201d0b557ec582d56e90f9cf481c7b081ed909f3211f27dc4ae1863144e7",
    "t_multi.py": "e2515fba858d27d9bd3ccfdf437a08f9e6f848fb8458d86e96c6dcb37fcec774",
    "t_packer_bytes.py": "73e8ec54634e77b8b1b9a1b6bc2a634696a967164ea68613ff9bb376f09fcdd9",
    "t_packer_custom.py": "ae7e9b3c7ccdb7e00a8387b35ea1a985759164faadffb10b57c54d7c3765f38b",
    "t_packer_memcache.py": "b00460c1a59cc94c7d8101d913c31427e6cbed98a232ab61fc8e1050d3d6f775",
    "t_packer_smemcache.py": "6849e0c8a58dd1d8d801f8bb1087f42dadcb96e072827c34183f7819196873e2",
    "t_script.lua": "e12336cdef7d7a34611f249407ea649319f58fb6850607aed95ed29590572f84",
    "t_script.py": "24f87544ae31a06540dfaad641465c1c05f7486230fdf93786958c31f6917a93",
    "t_simple.py": "720e1acab896215dd4476a99ceca9233d5219bc1238fe6ba29e5693dc005de06",
    "t_simple_binary.py": "058aec99d0c5ad513ea1edf42aef61c253e804169a15b9e8471a9387d4533da5",
    "t_tsv.py": "38d49a1425014dc0ef38be4f21ef4f298ec346b9d2fe9e7f94c33f9d4e0a306d",
    "t_utils.py": "1ede797bdde6e11373025639837fed00b0a7dfcc6c7a31c0575246281a54ca89",
}
MODULES = sorted(name[:-3] for name in ORIGINALS if name.endswith(".py"))
RUN_TIMEOUT = 90  # t_expire alone sleeps 20 s


def test_the_suite_is_the_original() -> None:
    on_disk = {p.name for p in SUITE.glob("t_*")}
    assert on_disk == set(ORIGINALS)
    for name, digest in ORIGINALS.items():
        assert hashlib.sha256((SUITE / name).read_bytes()).hexdigest() == digest, f"{name} was edited"


def start_server(kind: str) -> EmbeddedServer | oracle.KtServer:
    """The two databases the suite expects; a real ktserver runs the suite's own Lua script."""
    if kind == "embedded":
        return EmbeddedServer(["%", "%"]).start()
    binary = oracle.ktserver_binary()
    if binary is None:
        pytest.skip(oracle.SKIP_MESSAGE)
    return oracle.KtServer(binary, ["%", "%"], script=SUITE / "t_script.lua").start()


@pytest.fixture(scope="module", params=oracle.KINDS)
def runs(request):
    """Every module started at once, each on its own server: name -> (process, server)."""
    started: dict[str, tuple[subprocess.Popen, EmbeddedServer | oracle.KtServer]] = {}
    try:
        for module in MODULES:
            srv = start_server(request.param)
            env = dict(os.environ, KT_NG_SUITE_PORT=str(srv.port), PYTHONDONTWRITEBYTECODE="1")
            proc = subprocess.Popen(
                [sys.executable, "-W", "ignore::ResourceWarning", "-m", "unittest", "-v", module],
                cwd=SUITE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            started[module] = (proc, srv)
        yield started
    finally:
        for proc, srv in started.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
            srv.stop()


@pytest.mark.parametrize("module", MODULES)
def test_old_suite_module_passes(runs, module: str) -> None:
    proc, _ = runs[module]
    out, _ = proc.communicate(timeout=RUN_TIMEOUT)
    ran = re.search(r"^Ran (\d+) tests? in", out, re.MULTILINE)
    assert proc.returncode == 0 and ran and int(ran.group(1)) > 0 and "\nOK" in out, out
