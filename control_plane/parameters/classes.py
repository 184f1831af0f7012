"""Enums, pydantic models and dataclasses defined in the flow's file, rebuilt from the AST.

`_class_info` classifies a class by its bases, decorators and body: enum, model,
dataclass, plain, or unknown with the reason (a base that cannot be read, schema hooks,
decorators or keywords that run code). `_build_class` rebuilds a class per file without
running its body: enum members from evaluated values, fields from interpreted annotations
and evaluated defaults, `model_config` only when it is literal; models that refer to each
other are completed once the outermost one is built.

The fast path reuses these classes through `fragments`, once per definition; the pydantic
path uses them directly (`type_expressions._type_object`).
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass
from typing import Any

from control_plane.parameters import safe_values, type_expressions
from control_plane.parameters.names import (
    ModuleContext,
    _import_object,
    _resolve,
    _Scope,
    _short,
    _Sym,
)
from control_plane.parameters.vocabulary import (
    _BUILT_MODULE,
    _DATACLASS_DECORATORS,
    _ENUM_BASES,
    _ENUM_MIXINS,
    _HARMLESS_DECORATORS,
    _MODEL_BASES,
    _SCHEMA_HOOKS,
    _PrefectAnyError,
    _UnboundError,
    _UnknownError,
)


@dataclass(frozen=True, slots=True)
class _ClassInfo:
    kind: str  # "enum" | "model" | "dataclass" | "plain" | "unknown"
    reason: str = ""
    custom: bool = False  # validators/serializers: instances cannot be rebuilt faithfully


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):
        return target.attr
    return ""


def _class_info(context: ModuleContext, node: ast.ClassDef) -> _ClassInfo:
    key = "info:" + node.name + ":" + str(node.lineno)
    cached = context._built.get(key)
    if cached is None:
        cached = context._built[key] = _classify(context, node, set())
    return cached


def _classify(context: ModuleContext, node: ast.ClassDef, seen: set[str]) -> _ClassInfo:
    scope = _Scope(context, node.lineno)
    name = node.name
    if name in seen:
        return _ClassInfo("unknown", f"'{name}' inherits from itself")
    seen = seen | {name}
    base_kinds: list[str] = []
    for base in node.bases:
        try:
            sym = _resolve(base, scope)
        except (_UnknownError, _UnboundError):
            return _ClassInfo(
                "unknown", f"uses '{name}', whose base '{_short(base)}' deploy-manager cannot read"
            )
        if sym.kind == "obj" and sym.name in _ENUM_BASES:
            base_kinds.append("enum")
        elif sym.kind == "obj" and sym.name in _ENUM_MIXINS:
            base_kinds.append("mixin")
        elif sym.kind == "obj" and sym.name in _MODEL_BASES:
            base_kinds.append("model")
        elif sym.kind == "obj" and sym.name == "builtins.object":
            continue
        elif sym.kind == "class":
            parent = _classify(context, sym.node, seen)
            if parent.kind == "unknown":
                return parent
            if parent.kind == "enum" and _enum_has_members(sym.node):
                return _ClassInfo("unknown", f"uses '{name}', which extends an enum with members")
            base_kinds.append(parent.kind)
        else:
            return _ClassInfo(
                "unknown", f"uses '{name}', whose base '{_short(base)}' deploy-manager cannot read"
            )
    custom = False
    for stmt in node.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            if stmt.name in _SCHEMA_HOOKS:
                return _ClassInfo("unknown", f"uses '{name}', which defines {stmt.name}")
            # Validators, serializers and unknown decorators may change instances.
            if any(_decorator_name(d) not in _HARMLESS_DECORATORS for d in stmt.decorator_list):
                custom = True
            if stmt.name in ("__init__", "__new__", "__post_init__", "model_post_init"):
                custom = True
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in _SCHEMA_HOOKS:
                    return _ClassInfo("unknown", f"uses '{name}', which sets {target.id}")
    decorators = node.decorator_list
    if decorators:
        if len(decorators) == 1 and not node.bases:
            target = decorators[0].func if isinstance(decorators[0], ast.Call) else decorators[0]
            decorator: _Sym | None
            try:
                decorator = _resolve(target, scope)
            except (_UnknownError, _UnboundError):
                decorator = None
            if (
                decorator is not None
                and decorator.kind == "obj"
                and decorator.name in _DATACLASS_DECORATORS
            ):
                return _ClassInfo("dataclass", custom=custom)
        return _ClassInfo("unknown", f"uses '{name}', which is decorated")
    if node.keywords and "model" not in base_kinds:
        return _ClassInfo("unknown", f"uses '{name}', whose class keywords run code")
    if "enum" in base_kinds:
        if not set(base_kinds) <= {"enum", "mixin"}:
            return _ClassInfo("unknown", f"uses '{name}', an enum with unusual bases")
        return _ClassInfo("enum", custom=custom)
    if "model" in base_kinds:
        if set(base_kinds) != {"model"}:
            return _ClassInfo("unknown", f"uses '{name}', a model with extra bases")
        return _ClassInfo("model", custom=custom)
    if base_kinds and set(base_kinds) != {"plain"}:
        return _ClassInfo("unknown", f"uses '{name}', which subclasses a builtin type")
    return _ClassInfo("plain")


def _enum_has_members(node: ast.ClassDef) -> bool:
    return any(isinstance(stmt, ast.Assign) for stmt in node.body)


def _class_docstring(node: ast.ClassDef) -> str | None:
    if node.body and isinstance(node.body[0], ast.Expr):
        value = node.body[0].value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
    return None


class _Building:
    """A class being rebuilt; a model's references to it are forward references."""

    def __init__(self, name: str) -> None:
        self.name = name


def _build_class(context: ModuleContext, node: ast.ClassDef, *, as_type: bool = False) -> Any:
    """The class rebuilt from its definition, without running its body (pydantic path)."""
    key = "class:" + node.name + ":" + str(node.lineno)
    built = context._built.get(key)
    if isinstance(built, _Building):
        if as_type and _class_info(context, node).kind == "model":
            return built.name  # resolved by model_rebuild once the cycle is built
        raise _UnknownError(f"uses '{node.name}', which refers to itself")
    if isinstance(built, _UnknownError):
        raise built
    if built is not None:
        return built
    info = _class_info(context, node)
    if info.kind == "unknown":
        raise _UnknownError(info.reason)
    context._built[key] = _Building(node.name)
    pending: list[Any] = context._built.setdefault("pending", [])
    outermost = not any(isinstance(v, _Building) for k, v in context._built.items() if k != key)
    try:
        if info.kind == "enum":
            built = _build_enum(context, node)
        elif info.kind == "model":
            built = _build_model(context, node)
            if not built.__pydantic_complete__:
                pending.append(built)
        elif info.kind == "dataclass":
            built = _build_dataclass(context, node)
        else:
            built = type(node.name, (), {"__module__": _BUILT_MODULE, "__qualname__": node.name})
    except _UnknownError as exc:
        context._built[key] = exc
        raise
    context._built[key] = built
    if outermost and pending:
        namespace = {
            v.__name__: v
            for k, v in context._built.items()
            if k.startswith("class:") and isinstance(v, type)
        }
        for model in pending:
            model.model_rebuild(_types_namespace=namespace, raise_errors=False)
        pending.clear()
    return built


def _class_bases(context: ModuleContext, node: ast.ClassDef) -> tuple[Any, ...]:
    scope = _Scope(context, node.lineno)
    bases: list[Any] = []
    for base in node.bases:
        sym = _resolve(base, scope)
        if sym.kind == "class":
            bases.append(_build_class(context, sym.node))
        elif sym.name != "builtins.object":
            bases.append(_import_object(sym.name))
    return tuple(bases)


def _build_enum(context: ModuleContext, node: ast.ClassDef) -> Any:
    bases = _class_bases(context, node)
    metaclass: Any = type(bases[-1]) if bases else type
    for base in bases:
        if isinstance(base, type) and type(base) is not type:
            metaclass = type(base)
    namespace = metaclass.__prepare__(node.name, bases)
    namespace["__module__"] = _BUILT_MODULE
    namespace["__qualname__"] = node.name
    doc = _class_docstring(node)
    if doc is not None:
        namespace["__doc__"] = doc
    values = safe_values._Values(context, slow=True)
    scope = _Scope(context, node.lineno)
    members: dict[str, Any] = {}
    for index, stmt in enumerate(node.body):
        if index == 0 and doc is not None:
            continue
        if isinstance(stmt, ast.Pass) or (
            isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        ):
            continue
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            if stmt.name in ("__new__", "_generate_next_value_", "__init_subclass__") or any(
                _decorator_name(d) == "member" for d in stmt.decorator_list
            ):
                raise _UnknownError(f"uses '{node.name}', which defines {stmt.name}")
            continue
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and not stmt.targets[0].id.startswith("_")
        ):
            name = stmt.targets[0].id
            value_node = stmt.value
            if isinstance(value_node, ast.Name) and value_node.id in members:
                value = members[value_node.id]  # an alias of an earlier member
            else:
                try:
                    value = values.eval(value_node, scope)
                except _UnknownError as exc:
                    raise _UnknownError(
                        f"uses '{node.name}', whose member {name} {exc.args[0]}"
                    ) from exc
            members[name] = value
            namespace[name] = value
            continue
        raise _UnknownError(
            f"uses '{node.name}', whose body has '{_short(stmt)}' (line {stmt.lineno})"
        )
    try:
        return metaclass(node.name, bases, namespace)
    except Exception as exc:
        raise _UnknownError(f"uses '{node.name}', which Python would refuse") from exc


def _field_body(
    context: ModuleContext, node: ast.ClassDef, *, allow_config: bool
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Annotations, defaults and config of a model or dataclass body."""
    scope = _Scope(context, None)
    values = safe_values._Values(context, slow=True)
    annotations: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    config: dict[str, Any] = {}
    doc = _class_docstring(node)
    for index, stmt in enumerate(node.body):
        if index == 0 and doc is not None:
            continue
        if isinstance(stmt, ast.Pass | ast.FunctionDef | ast.AsyncFunctionDef) or (
            isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        ):
            continue
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            name = stmt.target.id
            try:
                annotations[name] = type_expressions._type_object(
                    stmt.annotation, scope, context, nested=scope
                )
            except Exception as exc:
                reason = exc.args[0] if exc.args else ""
                if isinstance(exc, _UnboundError):
                    reason = f"uses '{reason}', which is not defined"
                elif not isinstance(exc, _UnknownError | _PrefectAnyError):
                    reason = f"cannot be built ({type(exc).__name__}: {exc})"
                raise _UnknownError(
                    f"uses '{node.name}', whose field '{name}' {reason}".rstrip()
                ) from exc
            if stmt.value is not None:
                try:
                    defaults[name] = values.eval(stmt.value, scope)
                except _UnknownError as exc:
                    raise _UnknownError(
                        f"uses '{node.name}', whose field '{name}' has a default that {exc.args[0]}"
                    ) from exc
            continue
        if (
            allow_config
            and isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == "model_config"
        ):
            config = _literal_config(stmt.value, scope, node.name)
            continue
        raise _UnknownError(
            f"uses '{node.name}', whose body has '{_short(stmt)}' (line {stmt.lineno})"
        )
    return annotations, defaults, config


def _literal(node: ast.expr, problem: _UnknownError) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise problem from None


def _literal_config(value: ast.expr, scope: _Scope, class_name: str) -> dict[str, Any]:
    problem = _UnknownError(f"uses '{class_name}', whose model_config is not literal")
    pairs: list[tuple[object, ast.expr]]
    if isinstance(value, ast.Call):
        try:
            sym = _resolve(value.func, scope)
        except (_UnknownError, _UnboundError):
            raise problem from None
        if sym.kind != "obj" or sym.name != "pydantic.ConfigDict" or value.args:
            raise problem
        pairs = [(k.arg, k.value) for k in value.keywords]
    elif isinstance(value, ast.Dict):
        pairs = [
            (k.value if isinstance(k, ast.Constant) else None, v)
            for k, v in zip(value.keys, value.values, strict=True)
        ]
    else:
        raise problem
    config: dict[str, Any] = {}
    for key, item in pairs:
        if not isinstance(key, str):
            raise problem
        config[key] = _literal(item, problem)
    if config.get("use_attribute_docstrings"):
        raise _UnknownError(f"uses '{class_name}', whose descriptions come from its source")
    return config


def _namespace(
    node: ast.ClassDef, annotations: dict[str, Any], defaults: dict[str, Any]
) -> dict[str, Any]:
    """The class body a model or dataclass is built from: its fields and docstring."""
    namespace: dict[str, Any] = {
        "__module__": _BUILT_MODULE,
        "__qualname__": node.name,
        "__annotations__": annotations,
        **defaults,
    }
    doc = _class_docstring(node)
    if doc is not None:
        namespace["__doc__"] = doc
    return namespace


def _build_model(context: ModuleContext, node: ast.ClassDef) -> Any:
    import pydantic

    bases = _class_bases(context, node)
    annotations, defaults, config = _field_body(context, node, allow_config=True)
    namespace = _namespace(node, annotations, defaults)
    if config:
        namespace["model_config"] = pydantic.ConfigDict(**config)  # type: ignore[typeddict-item]
    problem = _UnknownError(f"uses '{node.name}', whose class keywords run code")
    keywords: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise problem
        keywords[keyword.arg] = _literal(keyword.value, problem)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _make_class(type(bases[0]), node.name, bases, namespace, keywords)
    except Exception as exc:
        raise _UnknownError(f"uses '{node.name}', which pydantic would refuse ({exc})") from exc


def _make_class(
    _meta: Any, _name: str, _bases: tuple[Any, ...], _ns: dict[str, Any], _kw: dict[str, Any]
) -> Any:
    # pydantic resolves forward references in the calling frame's locals too: this frame
    # has no names a user's class could be confused with.
    return _meta(_name, _bases, _ns, **_kw)


def _build_dataclass(context: ModuleContext, node: ast.ClassDef) -> Any:
    annotations, defaults, _ = _field_body(context, node, allow_config=False)
    namespace = _namespace(node, annotations, defaults)
    decorator = node.decorator_list[0]
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    make_dataclass = _import_object(_resolve(target, _Scope(context, node.lineno)).name)
    keywords: dict[str, Any] = {}
    if isinstance(decorator, ast.Call):
        problem = _UnknownError(f"uses '{node.name}', whose decorator runs code")
        if decorator.args or any(k.arg is None for k in decorator.keywords):
            raise problem
        keywords = {k.arg: _literal(k.value, problem) for k in decorator.keywords}  # type: ignore[misc]
    try:
        return make_dataclass(**keywords)(type(node.name, (), namespace))
    except Exception as exc:
        raise _UnknownError(f"uses '{node.name}', which Python would refuse ({exc})") from exc
