"""A flow function's signature as Prefect reads it, and what is said about it.

`_signature` lists the parameters of the `ast` function with their defaults;
`_annotations` mirrors `inspect.signature(fn, eval_str=True)` and Prefect's fallback when
evaluating the annotations fails, saying where each annotation's names are looked up;
`_prefect_rules` reads from the package metadata how the installed Prefect's schemas
differ by version. `SchemaWarning` and the warnings that say why a parameter's schema is
open or a default left out, and `_open_schema`, the schema when nothing about the types
can be trusted.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from inspect import cleandoc
from typing import Any, Final

from control_plane.parameters.names import (
    ModuleContext,
    _names_unbound,
    _parse_annotation_string,
    _quoted,
    _Scope,
    _short,
)
from control_plane.parameters.type_expressions import _forward_ref_reason
from control_plane.parameters.vocabulary import _PrefectAnyError, _UnboundError, _UnknownError


@dataclass(frozen=True)
class SchemaWarning:
    """Something about a parameter's schema that may differ from what Prefect would store."""

    line: int  # 1-based line in the file
    message: str


# --- the installed Prefect ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PrefectRules:
    """How the installed Prefect's `parameter_schema` differs from one version to the next."""

    # 3.9+: `*args: T` is `list[T] = []`, `**kwargs: T` is `dict[str, T] = {}`
    # (`process_v2_params`); before, the annotation as is and required.
    variadic_collections: bool


def _release(version: str) -> tuple[int, ...]:
    """(3, 9, 1) from '3.9.1', '3.10.0rc1', '3.9.1.dev4+g1234'."""
    numbers: list[int] = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
        if digits.end() != len(part):
            break
    return tuple(numbers)


@functools.cache
def _prefect_rules() -> _PrefectRules:
    """The rules of the Prefect installed next to us; the newest ones if there is none.

    Read from the package metadata, which costs ~1 ms (~30 ms more to import
    importlib.metadata where pydantic has not); importing Prefect would cost seconds.
    """
    import importlib.metadata

    try:
        release = _release(importlib.metadata.version("prefect"))
    except importlib.metadata.PackageNotFoundError:
        release = ()
    return _PrefectRules(variadic_collections=not release or release >= (3, 9))


# --- the signature ----------------------------------------------------------------------


@dataclass(slots=True)
class _Param:
    name: str
    position: int
    arg: ast.arg
    default: ast.expr | None
    variadic: str  # "*" for *args, "**" for **kwargs, "" otherwise


def _signature(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[_Param]:
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults.extend(args.defaults)
    params: list[tuple[ast.arg, ast.expr | None, str]] = list(
        zip(positional, defaults, [""] * len(positional), strict=True)
    )
    if args.vararg is not None:
        params.append((args.vararg, None, "*"))
    params.extend(zip(args.kwonlyargs, args.kw_defaults, [""] * len(args.kwonlyargs), strict=True))
    if args.kwarg is not None:
        params.append((args.kwarg, None, "**"))
    return [
        _Param(arg.arg, position, arg, default, variadic)
        for position, (arg, default, variadic) in enumerate(params)
    ]


def _function_docstring(func: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    if func.body and isinstance(func.body[0], ast.Expr):
        value = func.body[0].value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return cleandoc(value.value)
    return None


@dataclass(slots=True)
class _Annotation:
    """A parameter's annotation, where Prefect's evaluation rules say to interpret it."""

    source: ast.expr | None  # as written, for messages
    node: ast.expr | None  # what to interpret (a quoted annotation, parsed)
    scope: _Scope
    fallback: bool = False  # Prefect could not evaluate the signature's annotations
    error: _UnknownError | None = None


def _annotations(
    func: ast.FunctionDef | ast.AsyncFunctionDef, params: list[_Param], context: ModuleContext
) -> tuple[list[_Annotation], str | None]:
    """Mirror `inspect.signature(fn, eval_str=True)` and Prefect's fallback when it fails.

    eval_str evaluates every annotation that is a string (all of them under PEP 563), the
    return annotation included, in the module's globals. If one raises NameError (a name
    imported only under TYPE_CHECKING), Prefect keeps the strings and pydantic resolves
    them in Prefect's own namespace, where the module's imports do not exist.
    """
    future = context.future_annotations
    module_scope = _Scope(context, None)
    def_scope = _Scope(context, func.lineno)
    prefect_scope = _Scope(None)
    unbound: str | None = None
    for node in [*(p.arg.annotation for p in params), func.returns]:
        if node is None:
            continue
        if future:
            unbound = _names_unbound(node, module_scope)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                unbound = _names_unbound(_parse_annotation_string(node.value), module_scope)
            except _UnknownError:
                unbound = None
        if unbound:
            break
    out: list[_Annotation] = []
    for param in params:
        node = param.arg.annotation
        if node is None:
            out.append(_Annotation(None, None, module_scope))
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                parsed: ast.expr | None = _parse_annotation_string(node.value)
                error = None
            except _UnknownError as exc:
                parsed, error = None, exc
            # Under PEP 563, eval_str yields the string itself, which pydantic resolves
            # in Prefect's namespace; so does the fallback.
            if future or unbound:
                out.append(_Annotation(node, parsed, prefect_scope, bool(unbound), error))
            else:
                out.append(_Annotation(node, parsed, module_scope, False, error))
        elif future:
            if unbound:
                out.append(_Annotation(node, node, prefect_scope, True))
            else:
                out.append(_Annotation(node, node, module_scope))
        else:
            out.append(_Annotation(node, node, def_scope))
    return out, unbound


# --- warnings ---------------------------------------------------------------------------


def _type_warning(param: _Param, annotation: ast.expr, reason: str) -> SchemaWarning:
    return SchemaWarning(
        param.arg.lineno,
        f"parameter '{param.name}': type {_quoted(annotation)} {reason}; its schema cannot "
        "be known without running code, so the parameter accepts any value",
    )


def _prefect_any_warning(param: _Param, annotation: ast.expr, reason: str) -> SchemaWarning:
    return SchemaWarning(
        param.arg.lineno,
        f"parameter '{param.name}': type {_quoted(annotation)} {reason}; Prefect cannot "
        "build a schema for it either, so the parameter accepts any value",
    )


def _fallback_warning(param: _Param, annotation: ast.expr, unbound: str) -> SchemaWarning:
    return SchemaWarning(
        param.arg.lineno,
        f"parameter '{param.name}': Prefect cannot evaluate this flow's annotations ('{unbound}'"
        " is not defined when the module runs, e.g. imported only under TYPE_CHECKING), and "
        f"resolving {_quoted(annotation)} in its own namespace fails, so the parameter "
        "accepts any value",
    )


def _default_warning(param: _Param, default: ast.expr, reason: str) -> SchemaWarning:
    return SchemaWarning(
        default.lineno,
        f"parameter '{param.name}': default '{_short(default)}' {reason}; it is left out of "
        "the schema (the flow still uses it when the parameter is not given)",
    )


# Names Prefect's argument validation (a pydantic model of the signature) cannot use.
_RESERVED_FOR_VALIDATION: Final = frozenset(
    {
        "model_config",
        "model_dump",
        "model_dump_json",
        "model_validate",
        "model_validate_json",
        "model_validate_strings",
    }
)


def _name_warnings(param: _Param) -> list[SchemaWarning]:
    if param.name.startswith("_"):
        return [
            SchemaWarning(
                param.arg.lineno,
                f"parameter '{param.name}': pydantic refuses field names starting with an "
                "underscore, so Prefect cannot load this flow; rename the parameter",
            )
        ]
    if param.name in _RESERVED_FOR_VALIDATION:
        return [
            SchemaWarning(
                param.arg.lineno,
                f"parameter '{param.name}': the name is reserved by pydantic, so Prefect "
                "refuses the flow unless it is declared with validate_parameters=False; "
                "rename the parameter",
            )
        ]
    return []


def _type_problem(
    param: _Param, annotation: _Annotation, exc: Exception, unbound: str | None
) -> SchemaWarning:
    node = annotation.source
    assert node is not None
    if isinstance(exc, _UnboundError):
        if annotation.fallback and unbound:
            return _fallback_warning(param, node, unbound)
        if annotation.scope.context is None and isinstance(node, ast.Constant):
            # Quoted under PEP 563: Prefect gets the string and pydantic resolves it in
            # Prefect's namespace.
            return _prefect_any_warning(param, node, _forward_ref_reason(str(node.value), exc))
        return _type_warning(param, node, f"uses '{exc.args[0]}', which is not defined")
    reason = exc.args[0] if exc.args else "cannot be read"
    if isinstance(exc, _PrefectAnyError):
        if annotation.fallback and unbound:
            return _fallback_warning(param, node, unbound)
        return _prefect_any_warning(param, node, reason)
    return _type_warning(param, node, reason)


def _open_schema(params: list[_Param], descriptions: dict[str, str]) -> dict[str, Any]:
    """Every parameter open: what is left when nothing about the types can be trusted."""
    variadic_collections = _prefect_rules().variadic_collections
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in params:
        if param.name in ("self", "cls"):
            continue
        prop: dict[str, Any] = {"title": param.name, "position": param.position}
        if descriptions.get(param.name):
            prop["description"] = descriptions[param.name]
        if param.variadic and variadic_collections:
            prop["default"] = [] if param.variadic == "*" else {}
        elif param.default is None:
            required.append(param.name)
        properties[param.name] = dict(sorted(prop.items()))
    schema: dict[str, Any] = {"title": "Parameters", "type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema
