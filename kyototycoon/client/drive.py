"""Turning a description into a blocking method.

``get = blocking(methods.get)`` makes the method ``get`` of a class whose
``_exchange(call)`` carries one call over a connection and returns its
answer: the description builds the call(s), the driver moves the bytes,
the call's parser makes the result. The asyncio driver
(:func:`kyototycoon.aio.asynchronous`) is the same with ``await``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .core import Call, Plan, run_steps

T = TypeVar("T")

if TYPE_CHECKING:
    from typing import Concatenate, ParamSpec

    P = ParamSpec("P")


def blocking(describe: Callable[Concatenate[Any, P], Plan[T]], name: str | None = None
             ) -> Callable[Concatenate[Any, P], T]:
    """The blocking method (named ``name``, else as ``describe``) that runs ``describe``'s call(s)."""

    def method(self: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        plan = describe(self, *args, **kwargs)
        if type(plan) is Call:  # one exchange: the common case, inline
            result: T = plan.parse(self._exchange(plan))
            return result
        return run_plan(plan, self._exchange)

    return named(method, describe, name)  # type: ignore[no-any-return]


def named(method: Any, describe: Callable[..., Any], name: str | None) -> Any:
    """``method`` with the name, docstring and signature of ``describe`` (named ``name`` if given)."""
    functools.update_wrapper(method, describe)
    if name is not None:
        method.__name__ = method.__qualname__ = name
    return method


def run_plan(plan: Plan[T], exchange: Callable[[Call[Any]], Any]) -> T:
    """Run any plan: one call, a call with a known result (no exchange), or steps."""
    if isinstance(plan, Call):
        if plan.kind < 0:  # known without asking the server
            result: T = plan.parse(None)
            return result
        result = plan.parse(exchange(plan))
        return result
    return run_steps(plan, exchange)
