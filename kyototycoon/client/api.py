"""The blocking client: :class:`KyotoTycoon` (HTTP) and its binary-protocol variant.

Each public method is its description from :mod:`.methods` (or
:mod:`.binmethods`) run by :func:`~.drive.blocking`: this module only holds
the connection handling, :meth:`KyotoTycoon._exchange`, which borrows a
pooled connection, runs one call on it and resends a call safe to repeat
as the :class:`~.policy.Retry` policy says.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from kyototycoon.errors import ConnectionLost, KyotoTycoonException, StaleConnection
from kyototycoon.packers import KT_PACKER_PICKLE

from . import binmethods, methods
from .core import _EXACT, BINARY, Call
from .cursor import Cursor
from .drive import blocking
from .methods import ClientBase
from .policy import Connector, Retry, after_failure
from .procedures import BINARY_METHODS
from .transport import Connection, Pool


class KyotoTycoon(ClientBase):
    """A Kyoto Tycoon client, safe to share between threads.

    ``binary=True`` selects the binary protocol (``get``, ``get_bulk``,
    ``set``, ``set_bulk``, ``remove``, ``remove_bulk`` and ``play_script``
    only). ``pack_type`` picks how values are stored (``KT_PACKER_*``);
    ``custom_packer`` is an object with ``pack``/``unpack`` for
    ``KT_PACKER_CUSTOM``. ``exceptions=False`` is not supported any more.

    Keyword-only: ``max_connections`` and ``pool_timeout`` bound the pool
    (:class:`~.policy.Limits`), ``retry`` says which failed exchanges are
    sent again (:class:`~.policy.Retry`; reads only), ``connector`` makes
    the connections (:class:`~.policy.TCPConnector` by default).
    """

    def __new__(cls, binary: bool = False, *args: Any, **kwargs: Any) -> KyotoTycoon:
        if binary and cls is KyotoTycoon:
            cls = BinaryKyotoTycoon
        return object.__new__(cls)

    def __init__(self, binary: bool = False, pack_type: int = KT_PACKER_PICKLE,
                 custom_packer: Any = None, exceptions: bool = True, *,
                 max_connections: int | None = None, pool_timeout: float | None = None,
                 retry: Retry | None = None, connector: Connector | None = None) -> None:
        super().__init__(binary, pack_type, custom_packer, exceptions)
        self._set_policies(max_connections, pool_timeout, retry, connector)
        self._pool: Pool | None = None

    # ------------------------------------------------------------ connection

    def __enter__(self) -> KyotoTycoon:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self, host: str = "127.0.0.1", port: int = 1978, timeout: float | None = 30) -> bool:
        """Connect to ``host:port`` (``timeout`` seconds for connecting and for each answer); True."""
        if not isinstance(host, str):
            raise TypeError(f"host must be str, not {type(host).__name__}")
        if type(port) is not int:
            raise TypeError(f"port must be int, not {type(port).__name__}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
        self.close()
        self._host = host.encode("idna")
        self._timeout = timeout
        pool = Pool((host, port), timeout, limits=self._limits, connector=self._connector)
        probe = pool.acquire()  # fail now, with a clear error, if nobody listens
        # it waits in the pool like a used one: closed there by the server, it is stale (and retried)
        probe.exchanges = 1
        pool.release(probe)
        self._pool = pool
        return True

    def connect(self, *args: Any, **kwargs: Any) -> KyotoTycoon:
        """Like :meth:`open` but returns the client itself (for ``with kt.connect(...):``)."""
        self.open(*args, **kwargs)
        return self

    def close(self) -> bool:
        """Close every idle connection; connections still in use close when their call ends."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        return True

    def _get_pool(self) -> Pool:
        pool = self._pool
        if pool is None:
            raise KyotoTycoonException("not connected: call open() first")
        return pool

    def _exchange(self, call: Call[Any]) -> Any:
        """One call on a pooled connection; resent on a new one as the retry policy allows.

        The blocking methods run their quick path inline (:mod:`.inline`) and come here, or to
        :meth:`_resume` / :meth:`_failed`, for everything else.
        """
        pool = self._pool or self._get_pool()
        idle = pool.idle
        # the pool's acquire and release inline for an unbounded pool: a call each saved
        if pool.bounded:
            conn = pool.acquire()
        else:
            try:
                conn = idle.pop()
            except IndexError:
                conn = pool.acquire()
        try:
            if call.kind == BINARY and call.timeout is None and call.into is None:
                # Connection.exchange's binary quick path inline
                try:
                    data = conn.write_read(call.request)
                except OSError as exc:
                    raise conn.failed(exc, None) from None
                except BaseException:
                    conn.close()
                    raise
                answer = _EXACT[call.tag](data) if data else None  # a plain tuple, or None
                if answer is None:
                    answer = conn.rest(call, data)
                else:
                    conn.core.exchanges += 1
            else:
                answer = conn.exchange(call)
        except ConnectionLost as exc:
            error = exc
        except BaseException:
            pool.release(conn)  # closed by the failure: this only gives its place back
            raise
        else:
            pool.release(conn)
            return answer
        return self._again(pool, conn, call, error)

    def _resume(self, call: Call[Any], pool: Pool, conn: Connection, data: bytes) -> Any:
        """The rest of ``call``'s exchange on ``conn`` after its first read gave ``data`` (an answer not
        whole in it, or none): what :meth:`_exchange` does from there."""
        try:
            answer = conn.rest(call, data)
        except ConnectionLost as exc:
            error = exc
        except BaseException:
            pool.release(conn)
            raise
        else:
            pool.release(conn)  # a closed one is dropped
            return answer
        return self._again(pool, conn, call, error)

    def _failed(self, call: Call[Any], pool: Pool, conn: Connection, exc: BaseException) -> Any:
        """``call``'s write or first read on ``conn`` raised ``exc``: resent if the policy says, or raised."""
        if isinstance(exc, OSError):
            return self._again(pool, conn, call, conn.failed(exc, None))
        conn.close()
        pool.release(conn)
        raise exc

    def _again(self, pool: Pool, conn: Connection, call: Call[Any], error: ConnectionLost) -> Any:
        """After ``call`` failed on ``conn`` (closed) with ``error``: resent on new connections as the
        retry policy says (a write never is), or ``error`` raised. ``conn``'s place in the pool is
        given back either way."""
        try:
            attempt = 0
            while True:
                attempt += 1
                if isinstance(error, StaleConnection):
                    # the idle connections are as old as that one (a server restart closes them all)
                    pool.discard_idle()
                delay = after_failure(self._retry, call, error, attempt)
                if delay is None:
                    raise error
                if delay:
                    time.sleep(delay)
                conn = pool.connect()
                try:
                    answer = conn.exchange(call)
                except ConnectionLost as exc:
                    error = exc
                else:
                    pool.release(conn)
                    return answer
        except BaseException:
            pool.release(conn)  # closed by the failure: this only gives its place back
            raise

    # ------------------------------------------------------------ the methods, from their descriptions

    rpc = blocking(methods.rpc_call, "rpc")
    void = blocking(methods.void)
    echo = blocking(methods.echo)
    report = blocking(methods.report)
    status = blocking(methods.status)
    count = blocking(methods.count)
    size = blocking(methods.size)
    clear = blocking(methods.clear)
    vacuum = blocking(methods.vacuum)
    synchronize = blocking(methods.synchronize)
    tune_replication = blocking(methods.tune_replication)
    ulog_list = blocking(methods.ulog_list)
    ulog_remove = blocking(methods.ulog_remove)
    signal = blocking(methods.signal)
    wait = blocking(methods.wait)
    get = blocking(methods.get)
    get_with_expire = blocking(methods.get_with_expire)
    check = blocking(methods.check)
    check_with_expire = blocking(methods.check_with_expire)
    seize = blocking(methods.seize)
    get_int = blocking(methods.get_int)
    set = blocking(methods.set)
    add = blocking(methods.add)
    replace = blocking(methods.replace)
    append = blocking(methods.append)
    increment = blocking(methods.increment)
    increment_double = blocking(methods.increment_double)
    cas = blocking(methods.cas)
    remove = blocking(methods.remove)
    set_bulk = blocking(methods.set_bulk)
    get_bulk = blocking(methods.get_bulk)
    remove_bulk = blocking(methods.remove_bulk)
    match_prefix = blocking(methods.match_prefix)
    match_regex = blocking(methods.match_regex)
    match_similar = blocking(methods.match_similar)
    play_script = blocking(methods.play_script)

    def cursor(self) -> Cursor:
        """A new cursor (HTTP only); it keeps one connection of its own until deleted."""
        return Cursor(self, next(self._cursor_ids))


def http_only(name: str) -> Callable[..., Any]:
    """A method of the binary client for an HTTP-only ``name``: raises NotImplementedError."""
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{name} is supported under the HTTP protocol only")

    method.__name__ = name
    method.__doc__ = f"Not available over the binary protocol: raises NotImplementedError ({name})."
    return method


class BinaryKyotoTycoon(KyotoTycoon):
    """The client over the binary protocol: what ``KyotoTycoon(binary=True)`` returns.

    Writes take ``no_reply=True`` to skip waiting for the server's answer
    (they then return True without knowing the outcome).
    """

    get = blocking(binmethods.get)
    get_bulk = blocking(binmethods.get_bulk)
    set = blocking(binmethods.set)
    set_bulk = blocking(binmethods.set_bulk)
    remove = blocking(binmethods.remove)
    remove_bulk = blocking(binmethods.remove_bulk)
    play_script = blocking(binmethods.play_script)


def http_only_names(cls: type) -> list[str]:
    """The public methods of ``cls`` the binary protocol lacks."""
    return [n for n in vars(cls) if not n.startswith("_") and n not in BINARY_METHODS
            and n not in ("open", "connect", "close") and callable(getattr(cls, n))]


# Everything public that the binary protocol lacks raises NotImplementedError, as before.
for _name in http_only_names(KyotoTycoon):
    setattr(BinaryKyotoTycoon, _name, http_only(_name))
del _name
