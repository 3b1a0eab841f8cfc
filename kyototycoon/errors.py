"""One error hierarchy for the whole package.

Everything the package raises on purpose derives from
:class:`KyotoTycoonException`, so ``except KyotoTycoonException`` catches every
failure of the server, the network or the peer's bytes, and nothing else.
"""

from __future__ import annotations

from .spec.errors import error_class


class KyotoTycoonException(Exception):
    """Base of every error this package raises (name kept from python-kyototycoon-ng)."""


class ProtocolError(KyotoTycoonException):
    """The peer sent bytes that do not follow the protocol.

    ``offset`` is where in the frame the problem was found (``None`` when not
    known) and ``expected`` says what should have been there.
    """

    def __init__(self, message: str, offset: int | None = None, expected: str | None = None):
        self.offset = offset
        self.expected = expected
        if offset is not None:
            message = f"{message} (at offset {offset})"
        super().__init__(message)


class FrameTooLarge(ProtocolError):
    """A length or count field claims more than the configured limit allows."""


class ConnectionLost(KyotoTycoonException):
    """The connection closed or broke before the answer was complete."""


class StaleConnection(ConnectionLost):
    """A reused keep-alive connection was closed by the server before any answer byte arrived."""


class PoolTimeout(ConnectionLost):
    """Every connection of a bounded pool (``max_connections``) stayed busy for ``pool_timeout`` seconds."""


class TimedOut(ConnectionLost):
    """No answer arrived within the timeout; ``timeout`` holds the seconds waited."""

    def __init__(self, timeout: float | None, what: str = "answer"):
        self.timeout = timeout
        super().__init__(f"timed out after {timeout} s waiting for {what}")


class ServerUnavailable(ConnectionLost):
    """A server of a cluster client failed or is marked dead; ``server`` names it (``host:port``).

    ``partial`` holds what the other servers answered to a call that spanned
    several (a bulk or fan-out call), merged as the call would have returned it.
    """

    def __init__(self, message: str, server: str, partial: object = None):
        self.server = server
        self.partial = partial
        super().__init__(message)


class ServerError(KyotoTycoonException):
    """The server answered with an error.

    ``status`` is the HTTP status (``None`` over the binary protocol) and
    ``message`` the text of its ``ERROR`` column or ``X-Kt-Error`` header.
    """

    def __init__(self, status: int | None, message: str, procedure: str | None = None):
        self.status = status
        self.message = message
        self.procedure = procedure
        where = f"{procedure}: " if procedure else ""
        code = f"{status} " if status is not None else ""
        super().__init__(f"{where}{code}{message}".strip())


class NoRecord(ServerError):
    """450 with ``DB: 7: no record`` (the record does not exist), or 404 from a RESTful read."""


class RecordExists(ServerError):
    """450 with ``DB: 6: record duplication`` (``add`` of an existing key)."""


class LogicalInconsistency(ServerError):
    """Any other 450 ``Logical Inconsistency`` answer (e.g. a ``cas`` mismatch)."""


class InvalidParameters(ServerError):
    """400: the server did not accept the request's parameters."""


class NoSuchDatabase(InvalidParameters):
    """400 ``no such database``."""


class NotImplementedByServer(ServerError):
    """501: the server does not implement the procedure."""


class ServerTimeout(ServerError):
    """503: the server gave up, e.g. a ``WAIT`` whose time ran out."""


def server_error(status: int | None, message: str, procedure: str | None = None) -> ServerError:
    """Pick the most precise :class:`ServerError` subclass for a status and message.

    The rules are data: :data:`kyototycoon.spec.errors.RULES`.
    """
    cls = _ERROR_CLASSES.get(error_class(status, message), ServerError)
    return cls(status, message, procedure)


_ERROR_CLASSES: dict[str, type[ServerError]] = {
    cls.__name__: cls
    for cls in (ServerError, NoRecord, RecordExists, LogicalInconsistency, InvalidParameters, NoSuchDatabase,
                NotImplementedByServer, ServerTimeout)
}
