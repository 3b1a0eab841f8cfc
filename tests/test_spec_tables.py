"""The protocol tables of ``kyototycoon.spec`` are the ones the client, the server and the fuzzer use."""

from __future__ import annotations

import pytest

from kyototycoon import errors
from kyototycoon.client import procedures as client_procedures
from kyototycoon.fuzz import cases
from kyototycoon.server import rpc as server_rpc
from kyototycoon.spec import errors as spec_errors
from kyototycoon.spec import rpc


def test_every_procedure_is_one_row_read_by_client_server_and_fuzzer() -> None:
    assert list(client_procedures.PROCEDURES) == list(server_rpc.PROCEDURES) == list(rpc.PROCEDURES)
    assert cases.PROCEDURES is rpc.PROCEDURES
    for name, row in rpc.PROCEDURES.items():
        client, server = client_procedures.PROCEDURES[name], server_rpc.PROCEDURES[name]
        assert (client.idempotent, client.uses_db) == (row.idempotent, row.takes_db)
        assert (server.target, server.required, server.counter) == (row.target, row.required, row.counter)
        # a write is never safe to repeat; every database procedure takes DB
        if row.counter in ("set", "remove"):
            assert not row.idempotent, name
        if row.target == "db":
            assert row.takes_db, name


@pytest.mark.parametrize(("status", "message", "expected"), [
    (450, "DB: 7: no record: no record", errors.NoRecord),
    (404, "DB: 7: no record", errors.NoRecord),
    (404, "not found", errors.ServerError),
    (450, "DB: 6: record duplication: record duplication", errors.RecordExists),
    (450, "DB: 8: logical inconsistency: status", errors.LogicalInconsistency),
    (400, "no such database", errors.NoSuchDatabase),
    (400, "invalid parameters", errors.InvalidParameters),
    (501, "not implemented: x", errors.NotImplementedByServer),
    (503, "the condition timed out", errors.ServerTimeout),
    (500, "boom", errors.ServerError),
    (None, "the server reported an error", errors.ServerError),
])
def test_error_answers_map_to_classes_by_the_spec_rules(status, message, expected) -> None:
    err = errors.server_error(status, message, "proc")
    assert type(err) is expected and spec_errors.error_class(status, message) == expected.__name__
    assert (err.status, err.message, err.procedure) == (status, message, "proc")


def test_the_servers_messages_are_the_specs() -> None:
    from kyototycoon.server.store import common

    assert common.no_record().message == spec_errors.MESSAGES["NoRecord"]
    assert type(common.duplicate()) is errors.RecordExists
    every = {rule.error for rule in spec_errors.RULES}
    assert all(isinstance(getattr(errors, name), type) for name in every)


def test_the_codecs_carry_the_specs_constants() -> None:
    import enum

    from kyototycoon._codec import binary as binary_codec
    from kyototycoon._codec import replication as replication_codec
    from kyototycoon.spec import binary, replication

    for spec, codec in ((binary, binary_codec), (replication, replication_codec)):
        seen = 0
        for name, value in vars(spec).items():
            if isinstance(value, type) and issubclass(value, enum.Enum) and value.__module__ == spec.__name__:
                for member in value:
                    assert getattr(codec, f"{name.upper()}_{member.name}") == member.value
                    seen += 1
            elif name.isupper() and type(value) is int:
                assert getattr(codec, name) == value
                seen += 1
        assert seen >= 8


def test_the_client_does_not_import_construct() -> None:
    import subprocess
    import sys

    code = "import sys, kyototycoon; kyototycoon.KyotoTycoon; print('construct' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
