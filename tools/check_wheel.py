"""Check an installed kyototycoon wheel: run from outside the source tree, in the wheel's venv.

    python tools/check_wheel.py          # a platform wheel: its C loops must be there and current
    python tools/check_wheel.py --pure   # the pure-Python wheel: no C loops, the Python ones run
    python tools/check_wheel.py --serve-with OTHER_PYTHON
        # also, where the wheel is installed without extras: the client talks to a server that
        # OTHER_PYTHON (a venv with the [server] extra) runs, and kyototycoon.server names its extra

.ci/run and cibuildwheel's test step (pyproject.toml) both run it.
"""

from __future__ import annotations

import argparse
import importlib.resources
import importlib.util
import socket
import subprocess
import sys
import time


def check_codecs(pure: bool) -> None:
    import kyototycoon._codec.binary as binary
    import kyototycoon._codec.replication
    import kyototycoon._codec.tsv_kernels as tsv_kernels
    from kyototycoon.client import transport

    assert kyototycoon._codec.replication
    tsv_loops = tsv_kernels.K
    for name in ("kyototycoon.spec", "kyototycoon.codegen"):
        assert importlib.util.find_spec(name) is not None, f"{name} is not installed"
    for top in ("spec", "codegen", "_codec"):
        assert importlib.util.find_spec(top) is None, f"top-level {top!r} is installed"
    # PEP 561: type checkers read the package's own hints only when it says it has them
    assert importlib.resources.files("kyototycoon").joinpath("py.typed").is_file(), "py.typed is missing"
    if pure:
        assert binary._K is None, f"a pure-Python wheel holds C loops: {binary._K}"
        assert tsv_loops is None, f"a pure-Python wheel holds C loops: {tsv_loops}"
        assert transport.sendrecv is None, "a pure-Python wheel holds the transport's C"
        print("pure wheel ok:", binary.__file__)
    else:
        # _K is None when the extension is missing or was built from another source (digest check)
        assert binary._K is not None, "the wheel's C loops are missing or stale"
        assert tsv_loops is not None, "the wheel's C loops over TSV fields are missing or stale"
        if sys.platform.startswith("linux"):  # kernel timeouts: the only platform it is used on
            assert transport.sendrecv is not None, "the wheel's transport C (client/_sockio) is missing"
        print("wheel ok:", binary.__file__, binary._K.__file__)


def check_client_without_extras(server_python: str) -> None:
    import kyototycoon

    try:
        import kyototycoon.server
    except ModuleNotFoundError as exc:
        assert "[server]" in str(exc) and "pip install 'kyototycoon[server]'" in str(exc), exc
        print("without the extra:", exc)
    else:
        raise AssertionError("kyototycoon.server imported without the [server] extra")
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    server = subprocess.Popen([server_python, "-m", "kyototycoon", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:  # wait for the port, bounded
            try:
                kt = kyototycoon.KyotoTycoon().connect("127.0.0.1", port, 5)
                break
            except kyototycoon.KyotoTycoonException:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "the server did not open its port"
                time.sleep(0.05)
        with kt:
            kt.set("wheel", {"ok": True})
            assert kt.get("wheel") == {"ok": True}
        print("client without extras ok: talked to", port)
    finally:
        server.terminate()
        server.wait(30)
        server.stderr.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="check_wheel.py")
    parser.add_argument("--pure", action="store_true", help="expect the pure-Python wheel")
    parser.add_argument("--serve-with", metavar="PYTHON", help="also check the client with no extras")
    args = parser.parse_args(argv)
    check_codecs(args.pure)
    if args.serve_with:
        check_client_without_extras(args.serve_with)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
