"""Old module path of python-kyototycoon-ng: :class:`KyotoSlave` and the replication constants.

The values come from the protocol spec (:mod:`kyototycoon.spec.replication`).
"""

from kyototycoon.replication import OP_CLEAR, OP_REMOVE, OP_SET, KyotoSlave
from kyototycoon.spec.replication import Magic as _Magic

MB_REPL = int(_Magic.REPLICATION)  # 0xB1: request, log frame and the slave's ack
MB_SYNC = int(_Magic.CAUGHT_UP)  # 0xB0: the master's "caught up" heartbeat

__all__ = ["MB_REPL", "MB_SYNC", "OP_CLEAR", "OP_REMOVE", "OP_SET", "KyotoSlave"]
