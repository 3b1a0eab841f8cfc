"""Policies both drivers share: retrying, the bounded pool's limits, and how connections are made.

None of these does I/O on its own behalf: the blocking and the asyncio
drivers read them. The same objects configure ``KyotoTycoon`` and
``AsyncKyotoTycoon``.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Callable, Protocol

from kyototycoon.errors import ConnectionLost, StaleConnection, TimedOut

from .core import UNSENT_WRITE, Call

if TYPE_CHECKING:  # asyncio is imported by the asyncio driver only: the blocking client does not load it
    import asyncio


class Retry:
    """When to send an exchange again, on a new connection, after it failed.

    Only exchanges marked safe to repeat (reads; a cursor ``jump``) are ever
    resent; a write whose connection failed raises, saying it may or may not
    have been applied. ``attempts`` bounds the resends of one call,
    ``backoff`` seconds (doubled each time, at most ``max_backoff``) are
    waited before each, and ``on`` lists the failures worth it. The default,
    one immediate resend after a stale keep-alive connection (one the server
    closed while idle, e.g. by restarting), is what the client always did.
    """

    __slots__ = ("attempts", "backoff", "max_backoff", "on")

    def __init__(self, attempts: int = 1, backoff: float = 0.0, max_backoff: float = 2.0,
                 on: tuple[type[BaseException], ...] = (StaleConnection,)) -> None:
        if attempts < 0:
            raise ValueError("attempts must not be negative")
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.on = on

    def delay(self, call: Call[Any], error: BaseException, attempt: int) -> float | None:
        """Seconds to wait before resend number ``attempt`` (1, 2, ...) of ``call``; None: raise ``error``."""
        if attempt > self.attempts or not call.idempotent or not isinstance(error, self.on):
            return None
        return min(self.backoff * 2 ** (attempt - 1), self.max_backoff) if self.backoff else 0.0

    def __repr__(self) -> str:
        return (f"Retry(attempts={self.attempts}, backoff={self.backoff}, max_backoff={self.max_backoff}, "
                f"on={tuple(e.__name__ for e in self.on)})")


#: no resend at all
NO_RETRY = Retry(0)


def after_failure(retry: Retry, call: Call[Any], error: ConnectionLost, attempt: int) -> float | None:
    """What a driver does after ``call`` failed with ``error``: wait that long and resend, or raise.

    None means re-raise ``error``; a write that met a stale connection
    raises :class:`StaleConnection` here, saying it was not resent.
    """
    delay = retry.delay(call, error, attempt)
    if delay is None and isinstance(error, StaleConnection) and not call.idempotent and attempt == 1:
        raise StaleConnection(f"{UNSENT_WRITE} ({error})") from None
    return delay


class Limits:
    """How many connections a client keeps and opens.

    ``max_connections`` bounds the connections in use at once (None: no
    bound); a call that finds them all busy waits up to ``pool_timeout``
    seconds (None: as long as it takes) and then raises
    :class:`~kyototycoon.errors.PoolTimeout`. ``max_idle`` bounds the
    idle keep-alive connections kept for reuse. A cursor holds one
    connection of its own until it is deleted.
    """

    __slots__ = ("max_connections", "max_idle", "pool_timeout")

    def __init__(self, max_connections: int | None = None, pool_timeout: float | None = None,
                 max_idle: int = 32) -> None:
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.max_idle = max_idle if max_connections is None else min(max_idle, max_connections)


def pool_timeout_message(limits: Limits) -> str:
    """What :class:`~kyototycoon.errors.PoolTimeout` says."""
    return (f"all {limits.max_connections} connections stayed busy for {limits.pool_timeout} s "
            f"(raise max_connections or pool_timeout)")


class Connector(Protocol):
    """Makes connections to a server, for both drivers (TLS tunnels, unix sockets, tests).

    ``connect`` gives a connected blocking socket (``sendall``, ``recv``,
    ``close``, ``setsockopt``, ``settimeout``); ``open`` makes an asyncio
    connection with ``protocol_factory`` (``loop.create_connection`` and
    its kin) and returns the transport and protocol.
    """

    def connect(self, address: tuple[str, int], timeout: float | None) -> socket.socket:
        """A connected blocking socket."""

    async def open(self, address: tuple[str, int], timeout: float | None,
                   protocol_factory: Callable[[], asyncio.Protocol]
                   ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        """A connected asyncio transport and its protocol."""


def _cannot(address: tuple[str, int], timeout: float | None, exc: BaseException) -> ConnectionLost:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TimedOut(timeout, f"a connection to {address[0]}:{address[1]}")
    return ConnectionLost(f"cannot connect to {address[0]}:{address[1]}: {exc}")


class TCPConnector:
    """TCP with ``TCP_NODELAY`` (requests are written whole: no reason to wait for more).

    ``ssl`` (an :class:`ssl.SSLContext`) wraps the asyncio connections in TLS.
    """

    def __init__(self, ssl: Any = None) -> None:
        self.ssl = ssl

    def connect(self, address: tuple[str, int], timeout: float | None) -> socket.socket:
        try:
            sock = socket.create_connection(address, timeout)
        except OSError as exc:
            raise _cannot(address, timeout, exc) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl is not None:
            sock = self.ssl.wrap_socket(sock, server_hostname=address[0])
        return sock

    async def open(self, address: tuple[str, int], timeout: float | None,
                   protocol_factory: Callable[[], asyncio.Protocol]
                   ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            # asyncio sets TCP_NODELAY on the TCP connections it makes
            return await asyncio.wait_for(
                loop.create_connection(protocol_factory, address[0], address[1], ssl=self.ssl), timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise _cannot(address, timeout, exc) from None


class UnixConnector:
    """A unix domain socket at ``path`` (the client's host and port then only name the server)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def connect(self, address: tuple[str, int], timeout: float | None) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise _cannot((self.path, 0), timeout, exc) from None
        return sock

    async def open(self, address: tuple[str, int], timeout: float | None,
                   protocol_factory: Callable[[], asyncio.Protocol]
                   ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.create_unix_connection(protocol_factory, self.path), timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise _cannot((self.path, 0), timeout, exc) from None


DEFAULT_CONNECTOR = TCPConnector()
#: what ``retry=None`` means: one immediate resend of a read after a stale connection
DEFAULT_RETRY = Retry()
