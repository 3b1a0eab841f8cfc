"""Named signals: ``signal``/``wait`` of the RPC protocol (``SIGNAL``, ``WAIT`` parameters)."""

from __future__ import annotations

import asyncio
import contextlib


class Signals:
    """Waiters by signal name, on the server's event loop."""

    def __init__(self) -> None:
        self._signal_waiters: dict[str, list[asyncio.Future[None]]] = {}


    def signal(self, name: str, broadcast: bool = False) -> int:
        """Wake one waiter of ``name`` (all when ``broadcast``).

        Returns the number of waiters that were waiting, which is what
        ktserver reports as ``SIGNALED`` (0 when nobody waits), even when only
        one of them is woken.
        """
        waiters = [f for f in self._signal_waiters.get(name, []) if not f.done()]
        count = len(waiters)
        for fut in waiters if broadcast else waiters[:1]:
            fut.set_result(None)
            self._signal_waiters[name].remove(fut)
        if not self._signal_waiters.get(name, True):
            del self._signal_waiters[name]
        return count

    async def wait(self, name: str, timeout: float | None) -> bool:
        """Wait for :meth:`signal` on ``name``; True if signalled, False after ``timeout`` seconds."""
        if timeout is not None and timeout <= 0:
            return False
        fut = asyncio.get_running_loop().create_future()
        self._signal_waiters.setdefault(name, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            waiters = self._signal_waiters.get(name)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(fut)
                if not waiters:
                    del self._signal_waiters[name]

    def waiters(self, name: str) -> int:
        """Number of tasks waiting on ``name``."""
        return sum(1 for f in self._signal_waiters.get(name, []) if not f.done())
