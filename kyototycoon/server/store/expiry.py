"""Expiration times: every record carries an absolute one in epoch seconds.

:data:`XT_MAX` means "never", as the real server reports it. A record is
expired once ``now > xt``. As in kttimeddb.h, an expired record is invisible
to the operations on keys and to cursors, but stays in the database until
it is purged: ``count``, ``status``, ``report`` and ``match_*`` still see it.
Purging is lazy: each operation on a record raises a score
(:data:`WRITE_SCORE`, :data:`READ_SCORE`); at :data:`SCORE_THRESHOLD` a purge
cursor walks on over ``score // SCORE_STEP`` records in the database's order,
removing the expired ones, and starts again from the first when it runs off
the end. ``vacuum`` raises the score by its ``step`` or scans everything.
Purges are not written to the update log, like Kyoto Tycoon's own
expiration sweeps: slaves receive the expiration time and expire the record
themselves.
"""

from __future__ import annotations

from kyototycoon.spec.replication import XT_MAX

__all__ = ["READ_SCORE", "SCORE_STEP", "SCORE_THRESHOLD", "WRITE_SCORE", "XT_MAX", "absolute_xt"]

#: kttimeddb.h XTSCUNIT: the score of a write, and of one step of the purge cursor
SCORE_STEP = 256
WRITE_SCORE = SCORE_STEP
#: XTSCUNIT / XTREADFREQ: the score of a read
READ_SCORE = SCORE_STEP // 8
#: XTSCUNIT * XTUNIT: the score at which the purge cursor moves
SCORE_THRESHOLD = SCORE_STEP * 8


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
