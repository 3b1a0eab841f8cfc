"""The blocking driver's methods with their description inline: one Python frame for a get.

Used when :mod:`kyototycoon.client._drivers` is generated (never at import):
a description's own source is copied into its blocking method, its module's
globals renamed to aliases the generated module binds, and each ``return`` of
a plan rewritten to run it there. A ``return Call(BINARY | HTTP, request,
tag, idempotent, parse)`` becomes the blocking exchange's quick path inline
(an idle connection of an unbounded pool, one write, one read, the answer
decoded whole), with :meth:`~kyototycoon.client.api.KyotoTycoon._resume`,
``_failed`` and ``_exchange`` for everything else: the description stays the
only statement of what the method means, the driver only how it is carried.
Any other ``return`` runs its plan as :data:`~.drive.TEMPLATE` does.

Measured on a binary ``get`` (scripted socket): 12,600 instructions a call
through the template (driver, description, ``_exchange``, parser: four frames
and a ``Call``), about 8,000 inline.

A description this cannot copy faithfully (a generator, ``global``, a name
global in one scope and local in another, a global its module lacks) gets the
template's method; :class:`NotInlinable` says why.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import symtable
import textwrap
from typing import Any, Callable

from . import core


class NotInlinable(Exception):
    """The description is rendered through the template instead (the message says why)."""


#: what both quick paths share: an idle connection of an unbounded pool, one write, one read; a
#: failure goes to _failed, an answer not whole in that read to _resume, any other pool to _exchange
#: ({call}: the call's description, made only on those ways out; {setup}: lines it needs first)
_SEND_RECV = """\
{setup}_q_req = {req}
_q_parse = {parse}
_q_pool = {c}._pool
if _q_pool is not None and _q_pool.quick:
    _q_idle = _q_pool.idle
    try:
        _q_conn = _q_idle.pop()
    except IndexError:
        _q_conn = _q_pool.acquire()
    _q_fd = _q_conn.fd
    try:
        if _q_fd >= 0:
            _q_data = sendrecv(_q_fd, _q_req, RECV_SIZE)
        else:
            _q_sock = _q_conn.sock
            _q_sock.sendall(_q_req)
            _q_data = _q_sock.recv(RECV_SIZE)
    except BaseException as _q_exc:
        return _q_parse({c}._failed({call}, _q_pool, _q_conn, _q_exc))
"""
_RESUME = """\
    return _q_parse({c}._resume({call}, _q_pool, _q_conn, _q_data))
return _q_parse({c}._exchange({call}))
"""

#: a binary answer read whole in the first read: the connection back to the pool (no bound to keep)
_GIVE_BACK = """\
        _q_conn.core.exchanges += 1
        if len(_q_idle) < _q_pool.max_idle:
            _q_idle.append(_q_conn)
        else:
            _q_pool.release(_q_conn)
"""

#: the quick path of a binary exchange (see KyotoTycoon._exchange, which it mirrors)
_BINARY = _SEND_RECV + """\
    _q_answer = {exact}(_q_data) if _q_data else None
    if _q_answer is not None:
""" + _GIVE_BACK + """\
        return _q_parse(_q_answer)
""" + _RESUME

#: the quick path of a binary exchange whose parser takes one record's value out (core.value_answer:
#: get): the value alone is decoded, None for no record, and the packer's {unpack} applied here
_BINARY_VALUE = _SEND_RECV + """\
    _q_value = {value}(_q_data) if _q_data else False
    if _q_value is not False:
""" + _GIVE_BACK + """\
        if _q_value is None or {unpack} is _identity:
            return _q_value
        return {unpack}(_q_value)
""" + _RESUME

#: the quick path of a binary exchange whose answer is decoded as it arrives (``into``: get_bulk):
#: a first read that did not fill the buffer is fed to a new receiver, and if that was the whole
#: answer, it is the result. Anything else goes to _resume, which decodes the read into a receiver
#: of its own: a full read at once (a big answer is never decoded twice), a short read that was not
#: the whole answer (rare: once more, under RECV_SIZE bytes) or bad bytes (_resume reports them)
_BINARY_INTO = _SEND_RECV + """\
    _q_receiver = _q_into()
    try:
        _q_whole = _q_data and len(_q_data) < RECV_SIZE and _q_receiver.feed(_q_data)
    except Exception:
        _q_whole = False
    if _q_whole:
""" + _GIVE_BACK + """\
        return _q_parse((_q_receiver.result,))
""" + _RESUME

#: the same for HTTP: the common answer (see ClientConnection.first), whole in the first read
_HTTP = _SEND_RECV + """\
    _q_core = _q_conn.core
    if _q_data and _q_core.clean:
        _q_answer = parse_simple_response(_q_data, {tag})
        if _q_answer is not None:
            _q_core.exchanges += 1
            if _q_answer.keep_alive and len(_q_idle) < _q_pool.max_idle:
                _q_idle.append(_q_conn)
            else:
                if not _q_answer.keep_alive:  # the server's Connection: close
                    _q_core.reusable = False
                    _q_conn.close()
                _q_pool.release(_q_conn)
            return _q_parse(_q_answer)
""" + _RESUME

#: any other plan: what drive.TEMPLATE does with it
_GENERIC = """\
_q_plan = {plan}
if type(_q_plan) is Call:
    return _q_plan.parse({c}._exchange(_q_plan))
return run_plan(_q_plan, {c}._exchange)
"""


def _scopes(table: symtable.SymbolTable) -> list[symtable.SymbolTable]:
    out = [table]
    for child in table.get_children():
        out.extend(_scopes(child))
    return out


def _strip(fdef: ast.FunctionDef) -> None:
    """Annotations, docstrings and decorators out: only what runs stays."""
    for node in ast.walk(fdef):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
            node.decorator_list = []
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        if isinstance(node, ast.arguments):
            for a in [*node.posonlyargs, *node.args, *node.kwonlyargs, node.vararg, node.kwarg]:
                if a is not None:
                    a.annotation = None

    class Unannotate(ast.NodeTransformer):
        def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
            if node.value is None:
                return ast.Pass()
            return ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno)

    Unannotate().visit(fdef)


def inline_method(describe: Callable[..., Any], name: str, prefix: str, quick: bool
                  ) -> tuple[str, dict[str, str]]:
    """The source of the blocking method ``name`` with ``describe``'s body inline, and the globals it
    needs as ``{alias: name in describe's module}`` (the aliases start with ``_{prefix}_``).

    ``quick``: the exchange's quick path inline (the client classes; a cursor has its own
    ``_exchange`` and gets the generic rewrite).
    """
    module = inspect.getmodule(describe)
    if module is None:
        raise NotInlinable("no module")
    try:
        src = textwrap.dedent(inspect.getsource(describe))
    except (OSError, TypeError) as exc:
        raise NotInlinable(f"no source: {exc}") from None
    tree = ast.parse(src)
    fdef = tree.body[0]
    if not isinstance(fdef, ast.FunctionDef):
        raise NotInlinable("not a plain function")
    for node in ast.walk(fdef):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            raise NotInlinable("global or nonlocal")
        if isinstance(node, ast.Name) and node.id.startswith("_q_"):
            raise NotInlinable(f"{node.id}: the inline code's own names start with _q_")
    _strip(fdef)
    stripped = ast.unparse(fdef)
    top = symtable.symtable(stripped, "<description>", "exec").get_children()[0]
    if _has_yield(fdef):
        raise NotInlinable("a generator")
    global_names: set[str] = set()
    local_names: set[str] = set()
    for scope in _scopes(top):
        for sym in scope.get_symbols():
            if sym.is_global():
                global_names.add(sym.get_name())
            elif sym.is_local() or sym.is_parameter() or sym.is_free():
                local_names.add(sym.get_name())
    clash = global_names & local_names
    if clash:
        raise NotInlinable(f"global in one scope and local in another: {sorted(clash)}")
    namespace = vars(module)
    aliases: dict[str, str] = {}
    rename: dict[str, str] = {}
    for g in sorted(global_names):
        if g in namespace:
            rename[g] = aliases_key = f"_{prefix}_{g}"
            aliases[aliases_key] = g
        elif not hasattr(builtins, g):
            raise NotInlinable(f"{g}: not a global of {module.__name__}")

    class Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> Any:
            if node.id in rename:
                return ast.copy_location(ast.Name(id=rename[node.id], ctx=node.ctx), node)
            return node

    fdef = Rename().visit(fdef)
    first = fdef.args.args[0].arg if fdef.args.args else None
    if first is None:
        raise NotInlinable("no client parameter")

    def resolve(node: ast.expr) -> Any:
        """The value of a constant or of a global of the description's module, at generation."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name) and node.id in aliases:
            return namespace[aliases[node.id]]
        raise NotInlinable("not a constant")

    exact_names: dict[str, str] = {}
    # core.value_answer's mark: the local holding the packer's unpack, which must be the description's own
    value_unpack = getattr(describe, "value_answer", None)
    if value_unpack is not None and value_unpack not in local_names:
        raise NotInlinable(f"value_answer({value_unpack!r}): no such local")

    def plan_block(value: ast.expr) -> list[ast.stmt]:
        text = None
        into = None  # a Call(..., into=receiver factory): decoded as it arrives
        if isinstance(value, ast.Call) and [k.arg for k in value.keywords] == ["into"]:
            into = ast.unparse(value.keywords[0].value)
        if quick and isinstance(value, ast.Call) and (into or not value.keywords) and len(value.args) == 5:
            try:
                is_call = resolve(value.func) is core.Call
                kind, tag, idem = resolve(value.args[0]), resolve(value.args[2]), resolve(value.args[3])
            except NotInlinable:
                is_call = False
            if is_call and isinstance(idem, bool):
                args = [ast.unparse(a) for a in value.args]
                more = ", into=_q_into" if into else ""
                fields = {"c": first, "req": args[1], "parse": args[4], "tag": args[2],
                          "call": f"Call({args[0]}, _q_req, {args[2]}, {args[3]}, _q_parse{more})",
                          "setup": f"_q_into = {into}\n" if into else ""}
                if into is not None:
                    if kind == core.BINARY:
                        text = _BINARY_INTO.format(**fields)
                elif kind == core.BINARY and type(tag) is int and value_unpack and tag in core._VALUE:
                    exact_names[f"_VALUE_{tag:02x}"] = f"_VALUE[{tag}]"
                    text = _BINARY_VALUE.format(value=f"_VALUE_{tag:02x}", unpack=value_unpack, **fields)
                elif kind == core.BINARY and type(tag) is int:
                    exact_names[f"_EXACT_{tag:02x}"] = f"_EXACT[{tag}]"
                    text = _BINARY.format(exact=f"_EXACT_{tag:02x}", **fields)
                elif kind == core.HTTP and type(tag) is bytes:
                    text = _HTTP.format(**fields)
        if text is None:
            text = _GENERIC.format(plan=ast.unparse(value), c=first)
        return ast.parse(text).body

    class Returns(ast.NodeTransformer):
        def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
            if node is fdef:
                self.generic_visit(node)
            return node  # a nested function's returns are its own

        def visit_Lambda(self, node: ast.Lambda) -> Any:
            return node

        def visit_ClassDef(self, node: ast.ClassDef) -> Any:
            return node

        def visit_Return(self, node: ast.Return) -> Any:
            if node.value is None:
                raise NotInlinable("a bare return")
            return plan_block(node.value)

    Returns().visit(fdef)
    fdef.name = name
    body = textwrap.indent("\n".join(ast.unparse(s) for s in fdef.body), "    ")
    head = ast.unparse(fdef.args)
    source = f"def {name}({head}):\n{body}\n"
    compile(source, f"<inline {name}>", "exec")  # a syntax error here is a bug of this module
    for k, v in exact_names.items():
        aliases[k] = "=" + v  # not a global of the description's module: bound by the driver module
    return source, aliases


def _has_yield(fdef: ast.FunctionDef) -> bool:
    class Find(ast.NodeVisitor):
        found = False

        def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
            if node is fdef:
                self.generic_visit(node)

        def visit_Lambda(self, node: ast.Lambda) -> None:
            return

        def visit_Yield(self, node: ast.Yield) -> None:
            self.found = True

        def visit_YieldFrom(self, node: ast.YieldFrom) -> None:
            self.found = True

        def visit_Await(self, node: ast.Await) -> None:
            self.found = True

    finder = Find()
    finder.visit(fdef)
    return finder.found
