"""Annotations interpreted: to JSON schema (fast path) or to type objects (pydantic path).

`_TypeReader` translates the common types (builtins, typing constructs, datetime, uuid,
pathlib, decimal, classes of the file through `fragments`) straight from the AST to the
JSON schema pydantic would produce. `_type_object` builds the type object the annotation
evaluates to, for the pydantic path and for the fields of rebuilt classes. Both follow
module-level aliases and flatten unions as `typing.Union` does; a string inside a type is
a forward reference, resolved where pydantic would resolve it.
"""

from __future__ import annotations

import ast
import enum
from typing import Any, Final

from control_plane.parameters import classes, fragments, safe_values
from control_plane.parameters.names import (
    ModuleContext,
    _import_object,
    _parse_annotation_string,
    _resolve,
    _Scope,
    _short,
    _Sym,
)
from control_plane.parameters.vocabulary import (
    _FAST_KINDS,
    _MAX_DEPTH,
    _PYDANTIC_CALLS,
    _SCALAR_SCHEMAS,
    _NeedsPydanticError,
    _PrefectAnyError,
    _UnboundError,
    _UnknownError,
)


def _subscript_args(node: ast.Subscript) -> list[ast.expr]:
    index = node.slice
    if isinstance(index, ast.Tuple):
        return list(index.elts)
    return [index]


def _kind_of(sym: _Sym) -> str | None:
    return _FAST_KINDS.get(sym.name) if sym.kind == "obj" else None


def _resolve_type(node: ast.expr, scope: _Scope, depth: int) -> tuple[_Sym, _Scope]:
    """Follow module-level aliases (`JSON = dict[str, Any]`) to the symbol they name."""
    sym = _resolve(node, scope)
    while sym.kind == "alias" and isinstance(sym.node, ast.Name | ast.Attribute):
        depth += 1
        if depth > _MAX_DEPTH:
            raise _UnknownError("is an alias that refers to itself")
        scope = _Scope(scope.context, sym.node.lineno)
        sym = _resolve(sym.node, scope)
    return sym, scope


def _union_members(
    node: ast.expr, scope: _Scope, depth: int, out: list[tuple[ast.expr, _Scope]] | None = None
) -> list[tuple[ast.expr, _Scope]]:
    """Flatten `Union[...]`, `Optional[...]`, `|` and aliases the way `typing.Union` does."""
    if out is None:
        out = []
    if depth > _MAX_DEPTH:
        raise _UnknownError("is nested too deeply")
    kind_of_node = type(node)
    if kind_of_node is ast.BinOp and type(node.op) is ast.BitOr:  # type: ignore[attr-defined]
        _union_members(node.left, scope, depth + 1, out)  # type: ignore[attr-defined]
        _union_members(node.right, scope, depth + 1, out)  # type: ignore[attr-defined]
        return out
    if kind_of_node is ast.Subscript:
        sym, _ = _resolve_type(node.value, scope, depth)  # type: ignore[attr-defined]
        kind = _kind_of(sym)
        if kind == "union":
            for arg in _subscript_args(node):  # type: ignore[arg-type]
                _union_members(arg, scope, depth + 1, out)
            return out
        if kind == "optional":
            args = _subscript_args(node)  # type: ignore[arg-type]
            if len(args) != 1:
                raise _UnknownError("is an Optional with several arguments")
            _union_members(args[0], scope, depth + 1, out)
            out.append((_NONE, scope))
            return out
    elif kind_of_node is ast.Name or kind_of_node is ast.Attribute:
        sym, _ = _resolve_type(node, scope, depth)
        if sym.kind == "alias":
            alias_scope = _Scope(scope.context, sym.node.lineno)
            return _union_members(sym.node, alias_scope, depth + 1, out)
    out.append((node, scope))
    return out


_NONE: Final = ast.Constant(None)


def _is_type_none_call(node: ast.expr, scope: _Scope) -> bool:
    if not (
        isinstance(node, ast.Call)
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value is None
    ):
        return False
    try:
        sym = _resolve(node.func, scope)
    except (_UnknownError, _UnboundError):
        return False
    return sym.kind == "obj" and sym.name == "builtins.type"


def _literal_values(
    args: list[ast.expr], scope: _Scope, values: safe_values._Values, depth: int
) -> list[Any]:
    out: list[Any] = []
    for arg in args:
        if isinstance(arg, ast.Subscript):
            sym, _ = _resolve_type(arg.value, scope, depth)
            if _kind_of(sym) == "literal":
                out.extend(_literal_values(_subscript_args(arg), scope, values, depth + 1))
                continue
        value = values.eval(arg, scope)
        if _is_enum(value) and not values.slow:
            raise _NeedsPydanticError  # pydantic's literal schema of members: its path
        if not (value is None or isinstance(value, str | bytes | int | float) or _is_enum(value)):
            raise _PrefectAnyError(f"is a Literal of {type(value).__name__}")
        out.append(value)
    # typing.Literal drops repeated (value, type) pairs.
    seen: set[tuple[Any, type]] = set()
    unique: list[Any] = []
    for value in out:
        key = (value, type(value))
        if key not in seen:
            seen.add(key)
            unique.append(value)
    return unique


def _is_enum(value: Any) -> bool:
    return isinstance(value, enum.Enum)


def _literal_schema(literal: list[Any]) -> dict[str, Any]:
    expected = [safe_values._plain_json(v) for v in literal]
    result: dict[str, Any] = {}
    if len(expected) == 1:
        result["const"] = expected[0]
    else:
        result["enum"] = expected
    types = {type(e) for e in expected}
    names = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array"}
    if len(types) == 1:
        (only,) = types
        if only is type(None):
            result["type"] = "null"
        elif only in names:
            result["type"] = names[only]
    return result


def _forward_ref_reason(text: str, exc: _UnboundError) -> str:
    return (
        f"quotes {text!r} inside the type, which pydantic resolves in Prefect's own "
        f"namespace, where '{exc.args[0]}' is not defined"
    )


def _dict_schema(keys: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """pydantic's `_common_dict_schema`, with keys in sorted order."""
    schema: dict[str, Any] = {}
    keys = dict(keys)
    values = dict(values)
    pattern = None
    if "$ref" not in keys:
        pattern = keys.pop("pattern", None)
        keys.pop("title", None)
    values.pop("title", None)
    if values or pattern is not None:
        if pattern is None:
            schema["additionalProperties"] = values
        else:
            schema["patternProperties"] = {pattern: values}
    else:
        schema["additionalProperties"] = True
    if (keys.get("type") == "string" and len(keys) > 1) or "$ref" in keys:
        keys.pop("type", None)
        schema["propertyNames"] = keys
    schema["type"] = "object"
    return schema


class _TypeReader:
    """AST -> JSON schema for the types translated directly (pydantic's output for them)."""

    def __init__(self, context: ModuleContext, values: safe_values._Values) -> None:
        self.context = context
        self.values = values
        self.definitions: dict[str, Any] = {}  # of the local classes referred to

    def schema(self, node: ast.expr, scope: _Scope, depth: int = 0) -> dict[str, Any]:
        if depth > _MAX_DEPTH:
            raise _UnknownError("is nested too deeply")
        depth += 1
        kind = type(node)
        if kind is ast.Name or kind is ast.Attribute:
            sym, sym_scope = _resolve_type(node, scope, depth)
            return self._symbol(sym, sym_scope, depth)
        if kind is ast.Subscript:
            return self._generic(node, scope, depth)  # type: ignore[arg-type]
        if isinstance(node, ast.Constant):
            if node.value is None:
                return {"type": "null"}
            if isinstance(node.value, str):
                # A string inside a type: pydantic resolves it as a forward reference in
                # Prefect's own namespace, not the flow's module.
                parsed = _parse_annotation_string(node.value)
                try:
                    return self.schema(parsed, _Scope(None), depth)
                except _UnboundError as exc:
                    raise _PrefectAnyError(_forward_ref_reason(node.value, exc)) from exc
            raise _PrefectAnyError(f"is the constant {node.value!r}")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self._union(node, scope, depth)
        if _is_type_none_call(node, scope):
            return {"type": "null"}
        if isinstance(node, ast.Call):
            sym = _resolve(node.func, scope)
            if sym.kind == "obj" and sym.name in _PYDANTIC_CALLS:
                raise _NeedsPydanticError
        raise _UnknownError(f"uses '{_short(node)}', which only running code can tell")

    def _symbol(self, sym: _Sym, scope: _Scope, depth: int) -> dict[str, Any]:
        if sym.kind == "alias":
            value = sym.node
            alias_scope = _Scope(scope.context, value.lineno)
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                # The alias holds a string: pydantic gets a forward reference.
                return self.schema(value, alias_scope, depth)
            if isinstance(value, ast.Call) and not _is_type_none_call(value, alias_scope):
                raise _UnknownError(f"uses '{sym.name}', which is created by a call")
            return self.schema(value, alias_scope, depth)
        if sym.kind == "class":
            info = classes._class_info(self.context, sym.node)
            if info.kind == "plain":
                return {}
            if info.kind == "unknown":
                raise _UnknownError(info.reason)
            return fragments._class_fragment(self.context, sym.node, self.definitions)
        if sym.kind == "obj":
            kind = _FAST_KINDS.get(sym.name)
            if kind in _SCALAR_SCHEMAS:
                return dict(_SCALAR_SCHEMAS[kind])
            if kind == "list":
                return {"items": {}, "type": "array"}
            if kind == "set":
                return {"items": {}, "type": "array", "uniqueItems": True}
            if kind == "tuple":
                return {"items": {}, "type": "array"}
            if kind == "dict":
                return {"additionalProperties": True, "type": "object"}
            if kind is not None:
                raise _PrefectAnyError(f"is a bare {sym.name.rpartition('.')[2]}")
            raise _NeedsPydanticError
        raise _PrefectAnyError(f"uses '{sym.name}', which is not a type")

    def _union(self, node: ast.expr, scope: _Scope, depth: int) -> dict[str, Any]:
        # pydantic takes NoneType out of a union and makes the rest nullable; the only
        # members whose schema is exactly {"type": "null"} are NoneType ones.
        nullable = False
        choices: list[dict[str, Any]] = []
        for member, member_scope in _union_members(node, scope, depth):
            choice = self.schema(member, member_scope, depth)
            if choice == safe_values._NULL:
                nullable = True
            else:
                choices.append(choice)
        if not choices:
            return {"type": "null"}
        inner = choices[0] if len(choices) == 1 else safe_values._any_of(choices)
        if not nullable:
            return inner
        return safe_values._any_of([inner, {"type": "null"}])

    def _generic(self, node: ast.Subscript, scope: _Scope, depth: int) -> dict[str, Any]:
        sym, _ = _resolve_type(node.value, scope, depth)
        kind = _kind_of(sym)
        args = _subscript_args(node)
        if kind in ("union", "optional"):
            return self._union(node, scope, depth)
        if kind == "literal":
            return _literal_schema(_literal_values(args, scope, self.values, depth))
        if kind == "annotated":
            if len(args) < 2:
                raise _UnknownError("is an Annotated without metadata")
            for meta in args[1:]:
                if not isinstance(meta, ast.Constant):
                    raise _NeedsPydanticError
            return self.schema(args[0], scope, depth)
        if (kind in ("list", "set") and len(args) != 1) or (kind == "dict" and len(args) != 2):
            raise _NeedsPydanticError  # unusual arity: let pydantic decide what it means
        if kind == "list":
            return {"items": self.schema(args[0], scope, depth), "type": "array"}
        if kind == "set":
            items = self.schema(args[0], scope, depth)
            return {"items": items, "type": "array", "uniqueItems": True}
        if kind == "tuple":
            if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
                return {"items": self.schema(args[0], scope, depth), "type": "array"}
            if not args:  # tuple[()]
                return {"maxItems": 0, "minItems": 0, "type": "array"}
            prefix = [self.schema(arg, scope, depth) for arg in args]
            return {
                "maxItems": len(prefix),
                "minItems": len(prefix),
                "prefixItems": prefix,
                "type": "array",
            }
        if kind == "dict":
            return _dict_schema(
                self.schema(args[0], scope, depth), self.schema(args[1], scope, depth)
            )
        if sym.kind == "obj" and kind is None:
            raise _NeedsPydanticError
        if sym.kind == "class":
            raise _UnknownError(f"uses '{sym.name}[...]', which only running code can tell")
        raise _PrefectAnyError(f"subscripts '{_short(node.value)}', which is not generic")


def _type_object(
    node: ast.expr, scope: _Scope, context: ModuleContext, nested: _Scope, depth: int = 0
) -> Any:
    """AST -> the Python type object the annotation evaluates to (pydantic path).

    `nested` is where strings inside the type are resolved: Prefect's namespace for flow
    parameters, the module for fields of a model (pydantic resolves those in the module).
    """
    if depth > _MAX_DEPTH:
        raise _UnknownError("is nested too deeply")
    depth += 1
    import typing

    if isinstance(node, ast.Constant):
        if node.value is None:
            return None
        if isinstance(node.value, str):
            parsed = _parse_annotation_string(node.value)
            try:
                return _type_object(parsed, nested, context, nested, depth)
            except _UnboundError as exc:
                if nested.context is not None:
                    raise
                raise _PrefectAnyError(_forward_ref_reason(node.value, exc)) from exc
        if node.value is Ellipsis:
            return Ellipsis
        raise _PrefectAnyError(f"is the constant {node.value!r}")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        members = [
            _type_object(m, s, context, nested, depth)
            for m, s in _union_members(node, scope, depth)
        ]
        return typing.Union[tuple(members)]  # noqa: UP007
    if isinstance(node, ast.Tuple):
        return tuple(_type_object(e, scope, context, nested, depth) for e in node.elts)
    if isinstance(node, ast.Name | ast.Attribute):
        sym, _ = _resolve_type(node, scope, depth)
        if sym.kind == "alias":
            value = sym.node
            alias_scope = _Scope(scope.context, value.lineno)
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                # The alias holds a string: pydantic gets a forward reference.
                return _type_object(value, alias_scope, context, nested, depth)
            if isinstance(value, ast.Call) and not _is_type_none_call(value, alias_scope):
                raise _UnknownError(f"uses '{sym.name}', which is created by a call")
            return _type_object(value, alias_scope, context, nested, depth)
        if sym.kind == "class":
            return classes._build_class(context, sym.node, as_type=True)
        if sym.kind == "obj":
            return _import_object(sym.name)
        raise _PrefectAnyError(f"uses '{sym.name}', which is not a type")
    if isinstance(node, ast.Subscript):
        sym, _ = _resolve_type(node.value, scope, depth)
        kind = _kind_of(sym)
        args = _subscript_args(node)
        if kind in ("union", "optional"):
            members = [
                _type_object(m, s, context, nested, depth)
                for m, s in _union_members(node, scope, depth)
            ]
            return typing.Union[tuple(members)]  # noqa: UP007
        if kind == "literal":
            values = safe_values._Values(context, slow=True)
            return typing.Literal[tuple(_literal_values(args, scope, values, depth))]
        base = _type_object(node.value, scope, context, nested, depth)
        if kind == "annotated":
            values = safe_values._Values(context, slow=True)
            first = _type_object(args[0], scope, context, nested, depth)
            metadata = tuple(values.eval(a, scope) for a in args[1:])
            return typing.Annotated[(first, *metadata)]
        if not args:  # tuple[()]
            return base[()]
        items = tuple(_type_object(a, scope, context, nested, depth) for a in args)
        try:
            return base[items if len(items) != 1 else items[0]]
        except TypeError as exc:
            raise _PrefectAnyError(f"subscripts '{_short(node.value)}' wrongly") from exc
    if isinstance(node, ast.Call):
        if _is_type_none_call(node, scope):
            return type(None)
        sym = _resolve(node.func, scope)
        if sym.kind == "obj" and sym.name in _PYDANTIC_CALLS:
            return safe_values._Values(context, slow=True).eval(node, scope)
    if isinstance(node, ast.List):
        return [_type_object(e, scope, context, nested, depth) for e in node.elts]
    raise _UnknownError(f"uses '{_short(node)}', which only running code can tell")
