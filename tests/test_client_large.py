"""Large answers are read in few pieces and decoded a bounded number of times."""

from __future__ import annotations

import pytest
from oracle import start_target

import kyototycoon.client.core as core
from kyototycoon import KT_PACKER_BYTES, KyotoTycoon


@pytest.fixture(scope="module")
def server(target_kind):
    with start_target(target_kind, ["%"]) as srv:
        yield srv


def test_big_binary_get_bulk_is_not_decoded_once_per_read(server, monkeypatch):
    client = KyotoTycoon(binary=True, pack_type=KT_PACKER_BYTES)
    client.open(server.host, server.port)
    records = {f"k{i:06d}": bytes([i % 251]) * 100 for i in range(20_000)}  # about 2.4 MB of answer
    assert client.set_bulk(records) == len(records)

    attempts = []
    decoders = dict(core.RESPONSES_DECODERS)
    real = decoders[0xBA]

    def counting(buf, pos=0, max_count=None, state=None):
        attempts.append(len(buf))
        return real(buf, pos, max_count, state)

    decoders[0xBA] = counting
    monkeypatch.setattr(core, "RESPONSES_DECODERS", decoders)
    assert client.get_bulk(list(records)) == records
    # 16 KiB reads would mean ~150 attempts, each decoding from the start (quadratic)
    assert 1 <= len(attempts) <= 20, attempts
    client.close()
