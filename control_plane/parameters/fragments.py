"""Classes defined in the file, on the fast path: pydantic describes each definition once.

A parameter typed with an enum, model or dataclass of the file gets the schema pydantic
would give it (`{"$ref": ...}` plus `definitions`). `_class_fragment` asks pydantic for
that fragment once per definition key (`_definition_key`: the class's AST and what every
name in it resolves to), so the same class in a thousand files is built and described
once; `_shared_enum` does the same for enums whose members are used as defaults. Where
only the whole pydantic path gets the schema right, `_NeedsPydanticError` sends the flow
there.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Hashable
from typing import Any, Final

from control_plane.parameters import classes
from control_plane.parameters.names import (
    ModuleContext,
    _parse_annotation_string,
    _resolve_name,
    _Scope,
)
from control_plane.parameters.v2_schema import _create_v2_schema
from control_plane.parameters.vocabulary import (
    _MAX_DEPTH,
    _NeedsPydanticError,
    _UnboundError,
    _UnknownError,
)

# The schema fragment pydantic gives a parameter typed with a class defined in the file:
# ({"$ref": ...}, {definition name: schema}), or _NEEDS_PYDANTIC where only the whole
# pydantic path gets it right. Keyed by what the definition means (`_definition_key`),
# so the same class in a thousand files is built and described once.
_FRAGMENTS: dict[Hashable, tuple[dict[str, Any], dict[str, Any]] | None] = {}
_NEEDS_PYDANTIC: Final = None


class _NoKeyError(Exception):
    """The definition cannot be keyed (too deep): do not cache what it means."""


def _definition_key(context: ModuleContext, node: ast.ClassDef) -> Hashable:
    """What a class definition means: its AST, and what each name in it resolves to.

    Conservative: every name anywhere in the class (and in the strings of its field
    annotations) is resolved, both where the class statement runs and at module level,
    following local classes and module constants to their own definitions. Two
    definitions with the same key build the same class, whatever file they are in.
    """
    memo_key = "key:" + node.name + ":" + str(node.lineno)
    found = context._built.get(memo_key)
    if found is None:
        found = context._built[memo_key] = _class_key(context, node, (), [_KEY_BUDGET])
    return found


# How many definitions one key may visit: names are not memoized inside a key (a cycle
# makes a class's key depend on where it is reached from), so many classes that refer to
# each other could cost exponential time; past this they are simply not cached.
_KEY_BUDGET: Final = 200


def _class_key(
    context: ModuleContext, node: ast.ClassDef, stack: tuple[ast.AST, ...], budget: list[int]
) -> Hashable:
    if node in stack:
        return ("cycle", stack.index(node))
    budget[0] -= 1
    if budget[0] < 0 or len(stack) > _MAX_DEPTH:
        raise _NoKeyError
    stack = (*stack, node)
    names: set[str] = set()
    for sub in ast.walk(node):
        if type(sub) is ast.Name:
            names.add(sub.id)
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign):
            _quoted_names(stmt.annotation, names, 0)
    resolved = tuple(
        (name, _name_key(context, name, scope, stack, budget))
        for name in sorted(names)
        for scope in (_Scope(context, node.lineno), _Scope(context, None))
    )
    return (ast.dump(node), context.future_annotations, resolved)


def _quoted_names(node: ast.expr, out: set[str], depth: int) -> None:
    """The names inside the strings of a type (forward references), however nested."""
    if depth > _MAX_DEPTH:
        raise _NoKeyError
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            try:
                parsed = _parse_annotation_string(sub.value)
            except _UnknownError:
                continue
            out.update(n.id for n in ast.walk(parsed) if isinstance(n, ast.Name))
            _quoted_names(parsed, out, depth + 1)


def _name_key(
    context: ModuleContext,
    name: str,
    scope: _Scope,
    stack: tuple[ast.AST, ...],
    budget: list[int],
) -> Hashable:
    try:
        sym = _resolve_name(name, scope)
    except _UnboundError:
        return ("unbound",)
    except _UnknownError as exc:
        return ("unknown", exc.args)
    if sym.kind == "class":
        return ("class", _class_key(context, sym.node, stack, budget))
    if sym.kind == "alias":
        value = sym.node
        if value in stack:
            return ("cycle", stack.index(value))
        budget[0] -= 1
        if budget[0] < 0 or len(stack) > _MAX_DEPTH:
            raise _NoKeyError
        inner = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
        _quoted_names(value, inner, 0)
        return (
            "alias",
            ast.dump(value),
            tuple(
                (n, _name_key(context, n, alias_scope, (*stack, value), budget))
                for n in sorted(inner)
                for alias_scope in (_Scope(context, value.lineno), _Scope(context, None))
            ),
        )
    return (sym.kind, sym.name, sym.attr)


def _class_fragment(
    context: ModuleContext, node: ast.ClassDef, definitions: dict[str, Any]
) -> dict[str, Any]:
    """The schema of a parameter typed `node`, its definitions merged into `definitions`."""
    if not _fragments_allowed(context):
        raise _NeedsPydanticError
    try:
        key: Hashable = _definition_key(context, node)
    except _NoKeyError:
        key = None
    if key is not None and key in _FRAGMENTS:
        fragment = _FRAGMENTS[key]
    else:
        fragment = _build_fragment(context, node)  # _UnknownError: not cached, says where
        if key is not None:
            _FRAGMENTS[key] = fragment
    if fragment is _NEEDS_PYDANTIC:
        raise _NeedsPydanticError
    schema, fragment_definitions = fragment
    for name, definition in fragment_definitions.items():
        existing = definitions.get(name)
        if existing is None:
            definitions[name] = definition
        elif existing != definition:  # pydantic would rename them apart
            raise _NeedsPydanticError
    return dict(schema)


def _build_fragment(
    context: ModuleContext, node: ast.ClassDef
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    import pydantic

    built = classes._build_class(context, node, as_type=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            schema = _create_v2_schema("CheckParameter", {"p": (built, pydantic.Field(title="p"))})
        except Exception:  # Prefect would make the parameter Any: the pydantic path says why
            return _NEEDS_PYDANTIC
    if caught:  # e.g. a default pydantic leaves out: the pydantic path reports it
        return _NEEDS_PYDANTIC
    prop = dict(schema["properties"]["p"])
    prop.pop("title", None)
    return prop, schema.get("definitions", {})


# Enums rebuilt for the fast path, by definition: only their members' values are used
# there (as defaults), never the classes themselves, so one class serves every file.
_ENUMS: dict[Hashable, Any] = {}


def _shared_enum(context: ModuleContext, node: ast.ClassDef) -> Any:
    """The enum `node` defines (members of other classes need the pydantic path)."""
    if classes._class_info(context, node).kind != "enum":
        raise _NeedsPydanticError
    try:
        key: Hashable = _definition_key(context, node)
    except _NoKeyError:
        return classes._build_class(context, node)
    built = _ENUMS.get(key)
    if built is None:
        built = _ENUMS[key] = classes._build_class(context, node)
    return built


def _fragments_allowed(context: ModuleContext) -> bool:
    """No class name bound twice: pydantic would tell such classes apart by longer names."""
    allowed = context._built.get("fragments")
    if allowed is None:
        allowed = context._built["fragments"] = not any(
            len(found) > 1 and any(b.kind == "class" for b in found)
            for found in context._bindings.values()
        )
    return bool(allowed)
