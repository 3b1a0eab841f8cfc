"""Expiration times: every record carries an absolute one in epoch seconds.

:data:`XT_MAX` means "never", as the real server reports it. A record is
expired once ``now > xt``. Each operation first purges the records that
have expired (an index ordered by expiration time makes this cheap), so
expired records are never visible and ``count()`` is exact. Purges are not
written to the update log, like Kyoto Tycoon's own expiration sweeps:
slaves receive the expiration time and expire the record themselves.
"""

from __future__ import annotations

from kyototycoon.spec.replication import XT_MAX

__all__ = ["XT_MAX", "absolute_xt"]


def absolute_xt(xt: int | None, now: float) -> int:
    """Turn a request's ``xt`` into an absolute expiration time, as Kyoto Tycoon does.

    ``None`` = never; negative = absolute epoch ``-xt``; otherwise seconds from
    ``now``. The result is clamped to :data:`XT_MAX` (so the binary protocol's
    ``0x7FFFFFFFFFFFFFFF`` also means "never").
    """
    if xt is None:
        return XT_MAX
    xt = int(xt)
    absolute = -xt if xt < 0 else int(now) + xt
    return min(absolute, XT_MAX)
