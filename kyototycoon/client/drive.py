"""Turning a description into a method: blocking, or awaited for :mod:`kyototycoon.aio`.

``get = blocking(methods.get)`` makes the method ``get`` of a class whose
``_exchange(call)`` carries one call over a connection and returns its
answer: the description builds the call(s), the driver moves the bytes,
the call's parser makes the result. ``asynchronous`` (in :mod:`kyototycoon.aio`)
is the same with ``await``.

Both drivers' methods are one template (:data:`TEMPLATE`) rendered with each
description's own parameter list: forwarding ``*args, **kwargs`` instead
cost about 0.3 µs a call, a fifth of the client's own work in a binary
``get``. The rendered methods are the generated module
:mod:`kyototycoon.client._drivers` (so importing the client compiles
nothing); ``python -m kyototycoon.client.drive`` rewrites it and ``--check``
says whether it is current (a test does too). A description it lacks
(a stale file, a description of your own) gets its method compiled here.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .core import Call, Plan, run_steps

T = TypeVar("T")

if TYPE_CHECKING:
    from typing import Concatenate, ParamSpec

    P = ParamSpec("P")

# {a} is "async " or "", {w} "await " or "": the one difference between the two drivers
TEMPLATE = """\
{a}def {name}(self: Any{params}) -> Any:
    plan = {describe}(self{args})
    if type(plan) is Call:  # one exchange: the common case, inline
        plan_parse = plan.parse  # an attribute load (specialized), not a method load (never is)
        return plan_parse({w}self._exchange(plan))
    return {w}{run}(plan, self._exchange)
"""


def _parameters(describe: Callable[..., Any]) -> tuple[str, str]:
    """``describe``'s parameters after the first, as a ``def`` writes them and as a call passes them on
    (typed ``Any``: :func:`blocking` gives the method its real signature for type checkers)."""
    code = describe.__code__
    names = code.co_varnames[1:code.co_argcount + code.co_kwonlyargcount]
    positional = code.co_argcount - 1
    defaults = describe.__defaults__ or ()
    kwdefaults = describe.__kwdefaults__ or {}
    first_default = positional - len(defaults)
    params, args = [], []
    for i, param in enumerate(names):
        if i == positional:
            params.append("*")
        if first_default <= i < positional:
            params.append(f"{param}: Any = {_literal(defaults[i - first_default])}")
        elif i >= positional and param in kwdefaults:
            params.append(f"{param}: Any = {_literal(kwdefaults[param])}")
        else:
            params.append(f"{param}: Any")
        args.append(param if i < positional else f"{param}={param}")
    # each with its leading comma: they follow self
    return "".join(f", {p}" for p in params), "".join(f", {a}" for a in args)


def _literal(value: object) -> str:
    text = repr(value)
    if value is not None and type(value) not in (int, float, bool, str, bytes):
        raise TypeError(f"a description's default must be a literal, not {text}")
    return text


def render(describe: Callable[..., Any], name: str, describe_name: str, awaited: bool) -> str:
    """The source of the driver method ``name`` for ``describe`` (bound to ``describe_name``)."""
    params, args = _parameters(describe)
    return TEMPLATE.format(a="async " if awaited else "", w="await " if awaited else "", name=name,
                           params=params, args=args, describe=describe_name,
                           run="run_awaited" if awaited else "run_plan")


def make_method(describe: Callable[..., Any], name: str | None, awaited: bool) -> Any:
    """The driver method for ``describe``: the generated one, else compiled now."""
    generated = _generated(awaited).get(describe)
    if generated is not None:
        return named(generated, describe, name)
    method_name = name or describe.__name__
    env: dict[str, Any] = {"describe": describe, "Call": Call, "run_plan": run_plan,
                           "run_awaited": run_awaited}
    source = render(describe, method_name, "describe", awaited)
    exec(compile(source, f"<{method_name} of {describe.__module__}>", "exec"), env)
    return named(env[method_name], describe, name)


def _generated(awaited: bool) -> dict[Callable[..., Any], Callable[..., Any]]:
    try:
        from . import _drivers
    except ImportError:  # being regenerated
        return {}
    table: dict[Callable[..., Any], Callable[..., Any]] = _drivers.AWAITED if awaited else _drivers.BLOCKING
    return table


def blocking(describe: Callable[Concatenate[Any, P], Plan[T]], name: str | None = None
             ) -> Callable[Concatenate[Any, P], T]:
    """The blocking method (named ``name``, else as ``describe``) that runs ``describe``'s call(s)."""
    method: Callable[Concatenate[Any, P], T] = make_method(describe, name, False)
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


async def run_awaited(plan: Plan[T], exchange: Callable[[Call[Any]], Awaitable[Any]]) -> T:
    """:func:`run_plan` with an awaited ``exchange`` (the asyncio driver's)."""
    if isinstance(plan, Call):
        result: T = plan.parse(None if plan.kind < 0 else await exchange(plan))
        return result
    return await _run_steps_awaited(plan, exchange)


async def _run_steps_awaited(steps: Generator[Call[Any], Any, T],
                             exchange: Callable[[Call[Any]], Awaitable[Any]]) -> T:
    """:func:`kyototycoon.client.core.run_steps` with an awaited ``exchange``."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        error = None
        try:
            value = call.parse(await exchange(call))
        except Exception as exc:  # noqa: BLE001  (handed to the description, as in the blocking driver)
            value, error = None, exc


# ---------------------------------------------------------------- the generated module


def _sources() -> list[tuple[str, str, dict[str, Callable[..., Any]]]]:
    """(module, prefix, {method name: description}) of every description the drivers run."""
    from . import binmethods, methods
    from .cursor import CURSOR_METHODS

    return [("methods", "http", methods.HTTP_METHODS), ("binmethods", "binary", binmethods.BINARY_METHODS),
            ("cursor", "cursor", CURSOR_METHODS)]


def render_module() -> str:
    """The source of :mod:`kyototycoon.client._drivers`.

    The blocking methods of the clients have their description inline (:mod:`.inline`: one
    frame for a get instead of four); the awaited ones, the cursor's and any description
    :mod:`.inline` cannot copy are :data:`TEMPLATE` rendered.
    """
    from .inline import NotInlinable, inline_method

    head = [
        "# Generated by kyototycoon.client.drive (python -m kyototycoon.client.drive) -- do not edit.",
        "# ruff: noqa",
        "# mypy: ignore-errors",
        '"""Every description\'s blocking and awaited method, rendered from ``drive.TEMPLATE`` or inline."""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any, Callable",
        "",
        "from kyototycoon.packers import _identity",
        "from kyototycoon.protocol.http import parse_simple_response",
        "",
        "from . import binmethods, cursor, methods",
        "from .core import _EXACT, _VALUE, RECV_SIZE, Call",
        "from .drive import run_awaited, run_plan",
        "from .transport import sendrecv",
        "",
    ]
    globals_: dict[str, str] = {}
    bodies: list[str] = []
    blocking_rows: list[str] = []
    awaited_rows: list[str] = []
    for module, prefix, table in _sources():
        for name, describe in table.items():
            ref = f"{module}.{describe.__qualname__}"
            alias = f"_{prefix}_{name}"
            head.append(f"{alias} = {ref}")
            for awaited, rows in ((False, blocking_rows), (True, awaited_rows)):
                fn = f"{'async_' if awaited else ''}{prefix}_{name}"
                source = None
                if not awaited and module != "cursor":
                    try:
                        source, needs = inline_method(describe, fn, module[0], True)
                    except NotInlinable:
                        source = None
                    else:
                        for g, what in needs.items():
                            globals_[g] = what[1:] if what.startswith("=") else f"{module}.{what}"
                bodies.append(source or render(describe, fn, alias, awaited))
                rows.append(f"    {alias}: {fn},")
    head.extend(f"{g} = {what}" for g, what in sorted(globals_.items()))
    out = [*head, "", "", "\n\n".join(bodies), "",
           "BLOCKING: dict[Callable[..., Any], Callable[..., Any]] = {", *blocking_rows, "}",
           "AWAITED: dict[Callable[..., Any], Callable[..., Any]] = {", *awaited_rows, "}", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Rewrite ``_drivers.py`` (``--check``: exit 1 when it is not what the descriptions give)."""
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    path = Path(__file__).with_name("_drivers.py")
    text = render_module()
    if "--check" in args:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is stale: run python -m kyototycoon.client.drive", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
