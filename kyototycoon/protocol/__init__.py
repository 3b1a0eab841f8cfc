"""Sans-IO protocol layers: bytes in, bytes out, no sockets.

- :mod:`kyototycoon.protocol.tsv`: the TSV-RPC column codec, HTML forms, Content-Type.
- :mod:`kyototycoon.protocol.http`: HTTP/1.x request/response framing and builders.
"""

from __future__ import annotations
