"""Which exception an error answer of the server is, as data.

Kyoto Tycoon answers a failed TSV-RPC or RESTful call with an HTTP status and
a message (the ``ERROR`` column or the ``X-Kt-Error`` header), e.g. ``450``
and ``DB: 7: no record: no record``. :data:`RULES` maps them to the classes
of :mod:`kyototycoon.errors`, most precise first: the client picks the class
to raise with :func:`error_class`, and the embedded server and the fuzzer
read the same rules for what each class means on the wire.
"""

from __future__ import annotations

from typing import NamedTuple, Optional


class ErrorRule(NamedTuple):
    status: Optional[int]  # None: any status (the binary protocol has none)
    contains: Optional[str]  # a text the message must hold (None: any message)
    error: str  # the class name in kyototycoon.errors


#: (status, text in the message, class): the first rule that matches wins
RULES: tuple[ErrorRule, ...] = (
    ErrorRule(404, "no record", "NoRecord"),  # a RESTful read of a missing record
    ErrorRule(450, "no record", "NoRecord"),  # DB: 7: no record
    ErrorRule(450, "duplication", "RecordExists"),  # DB: 6: record duplication (add)
    ErrorRule(450, None, "LogicalInconsistency"),  # any other logical failure (a cas mismatch)
    ErrorRule(400, "no such database", "NoSuchDatabase"),
    ErrorRule(400, None, "InvalidParameters"),
    ErrorRule(501, None, "NotImplementedByServer"),
    ErrorRule(503, None, "ServerTimeout"),  # e.g. a WAIT whose time ran out
    ErrorRule(None, None, "ServerError"),
)

#: the messages ktserver 0.9.56b writes for the failures of its database (kc::BasicDB::Error)
MESSAGES = {
    "NoRecord": "DB: 7: no record: no record",
    "RecordExists": "DB: 6: record duplication: record duplication",
    "NoSuchDatabase": "no such database",
    "NoSuchCursor": "no such cursor",
}


def error_class(status: Optional[int], message: str) -> str:
    """The name of the :mod:`kyototycoon.errors` class for an error answer."""
    for rule in RULES:
        if rule.status is not None and rule.status != status:
            continue
        if rule.contains is None or rule.contains in message:
            return rule.error
    return "ServerError"
