"""Defaults and Literal arguments, evaluated without running code, and their JSON.

`_Values.eval` computes what Python computes once, at definition time, where only
literals, arithmetic on them, module constants, members of enums defined in the file and
whitelisted constructors (`datetime.date(...)`, `Path(...)`; pydantic's `Field(...)` and
instances of local models only on the slow path) are involved, within size limits; for
anything else it raises `_UnknownError` saying why. `_encode_default` is the JSON pydantic
writes for a default; `_sort_json` and `_any_of` are pydantic's rules for a schema's shape.

Part of the cycle safe_values -> classes/fragments -> safe_values (an enum member is a
value, a class body has defaults): see the package docstring.
"""

from __future__ import annotations

import ast
import contextlib
import enum
from collections.abc import Callable
from typing import Any, Final

from control_plane.parameters import classes, fragments
from control_plane.parameters.names import ModuleContext, _import_object, _resolve, _Scope, _short
from control_plane.parameters.vocabulary import (
    _FACTORIES,
    _MAX_DEPTH,
    _MAX_INT_BITS,
    _MAX_SIZE,
    _PYDANTIC_CALLS,
    _VALUE_ATTRIBUTES,
    _VALUE_CALLS,
    _NeedsPydanticError,
    _UnboundError,
    _UnknownError,
)

# --- JSON schema helpers (pydantic's rules) ---------------------------------------------


def _sort_json(value: Any, parent_key: str | None = None) -> Any:
    """pydantic's `GenerateJsonSchema._sort_recursive`: keys sorted, except under
    'properties' and 'default'."""
    if isinstance(value, dict):
        keys = value.keys() if parent_key in ("properties", "default") else sorted(value)
        return {key: _sort_json(value[key], key) for key in keys}
    if isinstance(value, list):
        return [_sort_json(item, parent_key) for item in value]
    return value


_NULL: Final = {"type": "null"}


def _any_of(schemas: list[dict[str, Any]]) -> dict[str, Any]:
    """pydantic's `get_flattened_anyof`: nested anyOf lifted, duplicates dropped."""
    members: list[dict[str, Any]] = []
    for schema in schemas:
        for member in schema["anyOf"] if len(schema) == 1 and "anyOf" in schema else (schema,):
            # dict equality is pydantic's hashable-JSON equality (key order aside).
            if member not in members:
                members.append(member)
    if len(members) == 1:
        return members[0]
    return {"anyOf": members}


class _NotPlainJsonError(Exception):
    pass


def _plain_json(value: Any) -> Any:
    """JSON for defaults made of plain literals, the way pydantic serializes them."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is float or kind is bool:
        return value
    if kind is list or kind is tuple:
        return [_plain_json(v) for v in value]
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            key_kind = type(key)
            if key_kind is str:
                out_key = key
            elif key_kind is bool:
                out_key = "true" if key else "false"
            elif key_kind is int:
                out_key = str(key)
            elif key is None:
                out_key = "None"
            else:
                raise _NotPlainJsonError
            out[out_key] = _plain_json(item)
        return out
    if kind is set or kind is frozenset:
        return [_plain_json(v) for v in value]
    if kind is bytes:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _UnknownError("is not valid UTF-8, so it has no JSON form") from exc
    if isinstance(value, enum.Enum):  # pydantic serializes a member as its value
        return _plain_json(value.value)
    raise _NotPlainJsonError


def _encode_default(value: Any) -> Any:
    """The default as pydantic writes it into a JSON schema (raises _UnknownError if it can't)."""
    if type(value) in (list, tuple, dict, set, frozenset):
        _check_walk(value)
    if isinstance(value, set | frozenset) and len(value) > 1:
        with contextlib.suppress(TypeError):  # unorderable members stay in set order
            value = sorted(value)
    try:
        return _plain_json(value)
    except _NotPlainJsonError:
        pass
    from pydantic import ConfigDict, TypeAdapter
    from pydantic.type_adapter import _type_has_config

    kind = type(value)
    try:
        # pydantic's GenerateJsonSchema.encode_default, with Prefect's model config.
        adapter = TypeAdapter(
            Any if _type_has_config(kind) else kind,
            config=ConfigDict(arbitrary_types_allowed=True),
        )
        return adapter.dump_python(value, by_alias=True, mode="json")
    except Exception as exc:
        raise _UnknownError("has no JSON form") from exc


# --- values (defaults, Literal arguments, class bodies) ----------------------------------


class _Unset:
    """No default."""


_UNSET: Final = _Unset()


class _UnknownDefault:
    """A default only running code would know; pydantic cannot serialize it, so it leaves it
    out of the schema as it would any value it cannot serialize."""

    def __repr__(self) -> str:
        return "<default computed at import>"


def _check_size(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple) and len(value) > _MAX_SIZE:
        raise _UnknownError("is too large to evaluate")
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise _UnknownError("is too large to evaluate")
    return value


def _check_walk(value: Any) -> None:
    """Refuse values whose traversal is huge (`[[0] * 1000] * 1000` shares one list)."""
    stack = [value]
    budget = _MAX_SIZE
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple | set | frozenset):
            budget -= len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            budget -= 2 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        if budget < 0:
            raise _UnknownError("is too large to put in a schema")


_BINOPS: Final[dict[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
    ast.LShift: lambda a, b: a << b,
    ast.BitOr: lambda a, b: a | b,
}


class _Values:
    """Evaluates the expressions Python would evaluate once, at definition time, when only
    literals, known constructors and module constants are involved."""

    def __init__(self, context: ModuleContext, slow: bool) -> None:
        self.context = context
        self.slow = slow  # may build pydantic objects and local classes

    def eval(self, node: ast.expr, scope: _Scope, depth: int = 0) -> Any:
        """The value, or _UnknownError saying why only running code would know it."""
        try:
            return self._eval(node, scope, depth)
        except _UnboundError as exc:
            raise _UnknownError(f"uses '{exc.args[0]}', which is not defined") from exc

    def _eval(self, node: ast.expr, scope: _Scope, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _UnknownError("is nested too deeply")
        depth += 1
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Tuple):
            return tuple(self._items(node.elts, scope, depth))
        if isinstance(node, ast.List):
            return _check_size(self._items(node.elts, scope, depth))
        if isinstance(node, ast.Set):
            return set(self._items(node.elts, scope, depth))
        if isinstance(node, ast.Dict):
            if any(key is None for key in node.keys):
                raise _UnknownError("unpacks a mapping")
            keys = self._items(node.keys, scope, depth)  # type: ignore[arg-type]
            return dict(zip(keys, self._items(node.values, scope, depth), strict=True))
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, scope, depth)
            if isinstance(operand, int | float | complex):
                if isinstance(node.op, ast.USub):
                    return -operand
                if isinstance(node.op, ast.UAdd):
                    return +operand
            raise _UnknownError(f"computes '{ast.unparse(node)}'")
        if isinstance(node, ast.BinOp):
            return self._binop(node, scope, depth)
        if isinstance(node, ast.Name | ast.Attribute):
            return self._named(node, scope, depth)
        if isinstance(node, ast.Call):
            return self._call(node, scope, depth)
        raise _UnknownError(f"computes '{_short(node)}'")

    def _items(self, nodes: list[ast.expr], scope: _Scope, depth: int) -> list[Any]:
        if any(isinstance(n, ast.Starred) for n in nodes):
            raise _UnknownError("unpacks an iterable")
        return [self._eval(n, scope, depth) for n in nodes]

    def _binop(self, node: ast.BinOp, scope: _Scope, depth: int) -> Any:
        left = self._eval(node.left, scope, depth)
        right = self._eval(node.right, scope, depth)
        operation = _BINOPS.get(type(node.op))
        numbers = (int, float, complex)
        ok = isinstance(left, numbers) and isinstance(right, numbers)
        if isinstance(node.op, ast.Pow) and ok:
            # Guard against `10 ** 10 ** 9` and friends before computing anything.
            if isinstance(right, int) and isinstance(left, int) and abs(left) > 1:
                ok = right < 0 or right * abs(left).bit_length() <= _MAX_INT_BITS
        elif isinstance(node.op, ast.LShift):
            ok = isinstance(left, int) and isinstance(right, int) and 0 <= right <= _MAX_INT_BITS
        elif isinstance(node.op, ast.BitOr):
            ok = isinstance(left, int) and isinstance(right, int)
        elif isinstance(node.op, ast.Add) and not ok:
            ok = type(left) is type(right) and isinstance(left, str | bytes | list | tuple)
            ok = ok and len(left) + len(right) <= _MAX_SIZE
        elif isinstance(node.op, ast.Mult) and not ok:
            seq, count = (left, right) if isinstance(right, int) else (right, left)
            ok = isinstance(seq, str | bytes | list | tuple) and isinstance(count, int)
            ok = ok and type(count) is int and len(seq) * max(count, 0) <= _MAX_SIZE
        if operation is None or not ok:
            raise _UnknownError(f"computes '{_short(node)}'")
        try:
            return _check_size(operation(left, right))
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise _UnknownError(f"fails to compute '{_short(node)}'") from exc

    def _named(self, node: ast.Name | ast.Attribute, scope: _Scope, depth: int) -> Any:
        try:
            sym = _resolve(node, scope)
        except _UnboundError as exc:
            raise _UnknownError(f"uses '{exc.args[0]}', which is not defined") from exc
        if sym.kind == "alias":
            value_scope = _Scope(scope.context, sym.node.lineno)
            return self._eval(sym.node, value_scope, depth + 1)
        if sym.kind == "obj" and sym.name in _VALUE_ATTRIBUTES:
            return _import_object(sym.name)
        if sym.kind == "member":
            if self.slow:
                built = classes._build_class(self.context, sym.node)
            else:
                built = fragments._shared_enum(self.context, sym.node)
            try:
                return getattr(built, sym.attr)
            except AttributeError as exc:
                raise _UnknownError(f"uses '{ast.unparse(node)}', which does not exist") from exc
        if sym.kind == "obj" and sym.name.startswith("builtins."):
            raise _UnknownError(f"is '{ast.unparse(node)}', which has no JSON form")
        raise _UnknownError(f"uses '{ast.unparse(node)}', whose value is known only at run time")

    def _call(self, node: ast.Call, scope: _Scope, depth: int) -> Any:
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        ):
            raise _UnknownError(f"computes '{_short(node)}'")
        try:
            sym = _resolve(node.func, scope)
        except _UnboundError as exc:
            raise _UnknownError(f"calls '{exc.args[0]}', which is not defined") from exc
        if sym.kind == "class":
            if not self.slow:
                raise _NeedsPydanticError
            return self._instantiate(sym.node, node, scope, depth)
        if sym.kind != "obj" or (sym.name not in _VALUE_CALLS and sym.name not in _PYDANTIC_CALLS):
            raise _UnknownError(f"calls '{_short(node.func)}', which runs at import")
        if sym.name in _PYDANTIC_CALLS and not self.slow:
            raise _NeedsPydanticError
        if sym.name == "enum.auto":
            if node.args or node.keywords:
                raise _UnknownError("calls enum.auto() with arguments")
            return _import_object(sym.name)()
        args = [self._eval(a, scope, depth) for a in node.args]
        kwargs: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg == "default_factory":
                kwargs["default_factory"] = self._factory(keyword.value, scope)
            else:
                kwargs[keyword.arg] = self._eval(keyword.value, scope, depth)  # type: ignore[index]
        target = _import_object(sym.name)
        try:
            return _check_size(target(*args, **kwargs))
        except Exception as exc:  # a constructor refusing literal arguments
            raise _UnknownError(f"fails to compute '{_short(node)}'") from exc

    def _factory(self, node: ast.expr, scope: _Scope) -> Any:
        sym = _resolve(node, scope)
        if sym.kind == "obj" and sym.name in _FACTORIES:
            return _import_object(sym.name)
        if sym.kind == "class" and self.slow:
            built = classes._build_class(self.context, sym.node)
            info = classes._class_info(self.context, sym.node)
            if info.kind in ("model", "dataclass") and not info.custom:
                return built
        raise _UnknownError(f"uses default_factory '{_short(node)}', which runs code")

    def _instantiate(
        self, cls_node: ast.ClassDef, call: ast.Call, scope: _Scope, depth: int
    ) -> Any:
        info = classes._class_info(self.context, cls_node)
        if info.kind not in ("model", "dataclass") or info.custom:
            raise _UnknownError(f"calls '{cls_node.name}', which runs code at import")
        built = classes._build_class(self.context, cls_node)
        args = [self._eval(a, scope, depth) for a in call.args]
        # `**mapping` arguments were refused in _call.
        kwargs = {k.arg: self._eval(k.value, scope, depth) for k in call.keywords if k.arg}
        try:
            return built(*args, **kwargs)
        except Exception as exc:
            raise _UnknownError(f"fails to build '{_short(call)}'") from exc
