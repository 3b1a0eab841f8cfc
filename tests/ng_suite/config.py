"""The old suite's own configuration hook (every t_*.py starts with ``import config``), replaced.

The original put the source checkout on ``sys.path``; the package under test
is installed here. The test modules connect to the fixed port 11978: when
``KT_NG_SUITE_PORT`` is set, connections to 127.0.0.1:11978 go to that port
instead, so the suite runs unchanged against a server on any free port.
"""

import os
import socket

_PORT = os.environ.get("KT_NG_SUITE_PORT")
_SUITE_PORT = 11978

if _PORT:
    _create_connection = socket.create_connection

    def _redirected(address, *args, **kwargs):
        host, port = address[0], address[1]
        if port == _SUITE_PORT and host in ("127.0.0.1", "localhost"):
            address = (host, int(_PORT))
        return _create_connection(address, *args, **kwargs)

    socket.create_connection = _redirected
