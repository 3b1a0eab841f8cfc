"""Turning a description into a method: blocking here, awaited in :mod:`kyototycoon.aio`.

``get = blocking(methods.get)`` makes the method ``get`` of a class whose
``_exchange(call)`` carries one call over a connection and returns its
answer: the description builds the call(s), the driver moves the bytes,
the call's parser makes the result.

Both drivers' methods come from one template (:data:`_TEMPLATE`), compiled
with the description's own parameter list: forwarding ``*args, **kwargs``
instead cost about half a microsecond a call, a tenth of a binary ``get``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .core import Call, Plan, run_steps

T = TypeVar("T")

if TYPE_CHECKING:
    from typing import Concatenate, ParamSpec

    P = ParamSpec("P")

# {a} is "async " or "", {w} "await " or "": the one difference between the two drivers
_TEMPLATE = """\
{a}def {name}(self, {params}):
    plan = describe(self, {args})
    if type(plan) is Call:  # one exchange: the common case, inline
        return plan.parse({w}self._exchange(plan))
    return {w}run_plan(plan, self._exchange)
"""


def make_method(describe: Callable[..., Any], name: str | None, run_plan: Callable[..., Any],
                awaited: bool) -> Any:
    """The driver method for ``describe``, with its parameters (and their defaults) as they are."""
    code = describe.__code__
    names = code.co_varnames[1:code.co_argcount + code.co_kwonlyargcount]
    positional = code.co_argcount - 1
    defaults = describe.__defaults__ or ()
    first_default = positional - len(defaults)
    env: dict[str, Any] = {"describe": describe, "Call": Call, "run_plan": run_plan}
    params, args = [], []
    for i, param in enumerate(names):
        if i == positional:
            params.append("*")
        default = None
        if i < positional and i >= first_default:
            default = defaults[i - first_default]
        elif i >= positional and param in (describe.__kwdefaults__ or {}):
            default = (describe.__kwdefaults__ or {})[param]
        else:
            default = _REQUIRED
        if default is _REQUIRED:
            params.append(param)
        else:
            env[f"_d{i}"] = default
            params.append(f"{param}=_d{i}")
        args.append(param if i < positional else f"{param}={param}")
    method_name = name or describe.__name__
    source = _TEMPLATE.format(a="async " if awaited else "", w="await " if awaited else "", name=method_name,
                              params=", ".join(params), args=", ".join(args))
    exec(compile(source, f"<{method_name} of {describe.__module__}>", "exec"), env)
    return named(env[method_name], describe, name)


_REQUIRED = object()


def blocking(describe: Callable[Concatenate[Any, P], Plan[T]], name: str | None = None
             ) -> Callable[Concatenate[Any, P], T]:
    """The blocking method (named ``name``, else as ``describe``) that runs ``describe``'s call(s)."""
    method: Callable[Concatenate[Any, P], T] = make_method(describe, name, run_plan, False)
    return method


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
