"""Large answers are read in few pieces and decoded a bounded number of times."""

from __future__ import annotations

import pytest
from oracle import start_target

import kyototycoon.client.core as core
import kyototycoon.protocol.framing as framing
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

    whole_frame = []
    decoders = dict(core.RESPONSES_DECODERS)
    real = decoders[0xBA]

    def counting(buf, pos=0, max_count=None, state=None):
        whole_frame.append(len(buf))
        return real(buf, pos, max_count, state)

    decoders[0xBA] = counting
    monkeypatch.setattr(core, "RESPONSES_DECODERS", decoders)
    decoded = []  # bytes each feed decodes: what it is given plus the part of a record it kept
    real_feed = framing.GetBulkInto.feed

    def feed(self, data):
        decoded.append(len(self._buf) + len(data))
        return real_feed(self, data)

    monkeypatch.setattr(framing.GetBulkInto, "feed", feed)
    assert client.get_bulk(list(records)) == records
    # decoded as it arrives: never the whole frame again, each byte about once (not once per read)
    answer_size = 5 + sum(18 + len(k) + len(v) for k, v in records.items())
    assert whole_frame == []
    assert answer_size <= sum(decoded) <= answer_size + 1000 * len(decoded), (answer_size, decoded)
    client.close()
