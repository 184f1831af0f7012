"""What a name in a flow's file means, without running the file.

`ModuleContext` records what the file's top level binds: imports, aliases, classes, and
what is bound only conditionally or only for type checkers. `_resolve` says what a name or
a dotted attribute means in a `_Scope` (where and from which line it is looked up): a
whitelisted module or object, a class defined in the file (or one of its members), a
module-level alias. What imports resolve to is cached across files. Also the helpers that
show code in messages (`_short`, `_quoted`).

It evaluates nothing: values are `safe_values`', types `type_expressions`'.
"""

from __future__ import annotations

import ast
import importlib
from typing import Any, Literal, NamedTuple

from control_plane.parameters.vocabulary import (
    _BUILTIN_NAMES,
    _MODULES,
    _PREFECT_V2_NAMESPACE,
    _VALUE_ATTRIBUTES,
    _UnboundError,
    _UnknownError,
)

# --- the module's names ---------------------------------------------------------------


class _Binding(NamedTuple):
    line: int
    kind: str  # "module" | "import" | "class" | "assign" | "opaque"
    value: Any  # module path | (module, name, level) | ClassDef | expr | description
    runtime: bool = True  # False: bound only under `if TYPE_CHECKING:`


class _Sym(NamedTuple):
    kind: str  # "module" | "obj" | "class" | "alias" | "member"
    name: str  # dotted path for module/obj, class name, alias name
    node: Any = None  # ClassDef for class/member, expr for alias
    attr: str = ""  # member name


class ModuleContext:
    """What a file's top level tells about names: imports, aliases, classes defined in it."""

    __slots__ = ("_bindings", "_built", "_star_imports", "future_annotations")

    def __init__(
        self,
        bindings: dict[str, list[_Binding]],
        future_annotations: bool,
        star_imports: tuple[str, ...] = (),
    ) -> None:
        self._bindings = bindings
        self.future_annotations = future_annotations
        self._star_imports = star_imports  # modules of `from m import *`, relative ones as ".m"
        self._built: dict[str, Any] = {}  # classes rebuilt for pydantic, by name

    @classmethod
    def from_module(cls, tree: ast.Module) -> ModuleContext:
        bindings: dict[str, list[_Binding]] = {}
        future = False
        for stmt in tree.body:
            if (
                isinstance(stmt, ast.ImportFrom)
                and stmt.module == "__future__"
                and any(a.name == "annotations" for a in stmt.names)
            ):
                future = True
        _collect(tree.body, bindings, conditional=False, type_checking=False)
        stars = tuple(binding.value for binding in bindings.pop("*", ()))
        return cls(bindings, future, stars)

    def _lookup(self, name: str, before_line: int | None) -> _Binding | Literal[False] | None:
        """The binding in force; False if the name exists only for type checkers."""
        found = self._bindings.get(name)
        if not found:
            return None
        typing_only = False
        for binding in found[::-1]:
            if before_line is not None and binding.line >= before_line:
                continue
            if binding.runtime:
                return binding
            typing_only = True
        return False if typing_only else None


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _bind(bindings: dict[str, list[_Binding]], name: str, binding: _Binding) -> None:
    bindings.setdefault(name, []).append(binding)


def _collect(
    stmts: list[ast.stmt],
    bindings: dict[str, list[_Binding]],
    *,
    conditional: bool,
    type_checking: bool,
) -> None:
    runtime = not type_checking
    for stmt in stmts:
        line = stmt.lineno
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    _bind(bindings, alias.asname, _Binding(line, "module", alias.name, runtime))
                else:
                    top = alias.name.split(".")[0]
                    _bind(bindings, top, _Binding(line, "module", top, runtime))
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if alias.name == "*":  # Python allows it only at module level
                    module = "." * stmt.level + (stmt.module or "")
                    _bind(bindings, "*", _Binding(line, "star", module, runtime))
                    continue
                imported = (stmt.module or "", alias.name, stmt.level)
                _bind(
                    bindings,
                    alias.asname or alias.name,
                    _Binding(line, "import", imported, runtime),
                )
        elif isinstance(stmt, ast.ClassDef):
            if conditional:
                _bind(
                    bindings, stmt.name, _Binding(line, "opaque", "a class defined conditionally")
                )
            else:
                _bind(bindings, stmt.name, _Binding(line, "class", stmt, runtime))
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            _bind(bindings, stmt.name, _Binding(line, "opaque", "a function", runtime))
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if isinstance(stmt, ast.AnnAssign) and stmt.value is None:
                continue
            value = stmt.value
            if (
                len(targets) == 1
                and isinstance(targets[0], ast.Name)
                and not conditional
                and value is not None
            ):
                _bind(bindings, targets[0].id, _Binding(line, "assign", value, runtime))
            else:
                for target in targets:
                    for node in ast.walk(target):
                        if isinstance(node, ast.Name):
                            _bind(
                                bindings,
                                node.id,
                                _Binding(line, "opaque", "a computed assignment", runtime),
                            )
        elif isinstance(stmt, ast.AugAssign):
            if isinstance(stmt.target, ast.Name):
                _bind(bindings, stmt.target.id, _Binding(line, "opaque", "an augmented assignment"))
        elif isinstance(stmt, ast.If):
            if _is_type_checking(stmt.test):
                _collect(stmt.body, bindings, conditional=True, type_checking=True)
                _collect(stmt.orelse, bindings, conditional=True, type_checking=type_checking)
            else:
                _collect(stmt.body, bindings, conditional=True, type_checking=type_checking)
                _collect(stmt.orelse, bindings, conditional=True, type_checking=type_checking)
        elif isinstance(stmt, ast.Try | ast.TryStar):
            # The `try` body is assumed to succeed: a handler's bindings only count for
            # names the body does not bind (`except ImportError: from x import y`).
            body: dict[str, list[_Binding]] = {}
            _collect(stmt.body, body, conditional=True, type_checking=type_checking)
            _collect(stmt.orelse, body, conditional=True, type_checking=type_checking)
            handlers: dict[str, list[_Binding]] = {}
            for handler in stmt.handlers:
                _collect(handler.body, handlers, conditional=True, type_checking=type_checking)
            for name, found in body.items():
                bindings.setdefault(name, []).extend(found)
            for name, found in handlers.items():
                if name not in body:
                    bindings.setdefault(name, []).extend(found)
            _collect(stmt.finalbody, bindings, conditional=True, type_checking=type_checking)
        elif isinstance(stmt, ast.For | ast.AsyncFor | ast.While | ast.With | ast.AsyncWith):
            if isinstance(stmt, ast.For | ast.AsyncFor):
                for node in ast.walk(stmt.target):
                    if isinstance(node, ast.Name):
                        _bind(bindings, node.id, _Binding(line, "opaque", "a loop variable"))
            if isinstance(stmt, ast.With | ast.AsyncWith):
                for item in stmt.items:
                    if item.optional_vars is not None:
                        for node in ast.walk(item.optional_vars):
                            if isinstance(node, ast.Name):
                                _bind(bindings, node.id, _Binding(line, "opaque", "a with target"))
            _collect(stmt.body, bindings, conditional=True, type_checking=type_checking)
            _collect(
                getattr(stmt, "orelse", []), bindings, conditional=True, type_checking=type_checking
            )
        elif isinstance(stmt, ast.Match):
            for case in stmt.cases:
                _collect(case.body, bindings, conditional=True, type_checking=type_checking)


# --- name resolution ---------------------------------------------------------------------


class _Scope(NamedTuple):
    """Where names in an expression are looked up."""

    context: ModuleContext | None  # None: Prefect's fallback namespace
    before_line: int | None = None  # evaluated at definition time: bindings above it


def _normalize(path: str) -> str:
    if path.startswith("typing_extensions."):
        return "typing." + path[len("typing_extensions.") :]
    return path


def _lookup_name(name: str, scope: _Scope) -> _Sym:
    if scope.context is None:
        entry = _PREFECT_V2_NAMESPACE.get(name)
        if entry is not None:
            return _Sym(entry[0], entry[1])
        if name in _BUILTIN_NAMES:
            return _Sym("obj", "builtins." + name)
        raise _UnboundError(name)
    binding = scope.context._lookup(name, scope.before_line)
    if binding is False:
        raise _UnboundError(name)
    if binding is None:
        # A star import could shadow a builtin too; assumed not to.
        if name in _BUILTIN_NAMES:
            return _Sym("obj", "builtins." + name)
        for module in reversed(scope.context._star_imports):
            if module not in _MODULES:
                raise _UnknownError(f"uses '{name}', which may come from 'from {module} import *'")
            if name in _public_names(module):
                return _Sym("obj", _normalize(f"{module}.{name}"))
        raise _UnboundError(name)
    assert isinstance(binding, _Binding)
    if binding.kind == "module":
        path = binding.value
        if path in _MODULES:
            return _Sym("module", path)
        raise _UnknownError(f"uses module '{path}', which deploy-manager does not interpret")
    if binding.kind == "import":
        module, attr, level = binding.value
        if level == 0 and module in _MODULES:
            full = f"{module}.{attr}"
            if full in _MODULES:
                return _Sym("module", full)
            return _Sym("obj", _normalize(full))
        if level:
            raise _UnknownError(
                f"uses '{name}', imported from the repository ('{'.' * level}{module}')"
            )
        raise _UnknownError(
            f"uses '{name}', imported from '{module}' (the repository or a package "
            "deploy-manager does not interpret)"
        )
    if binding.kind == "class":
        return _Sym("class", name, binding.value)
    if binding.kind == "assign":
        return _Sym("alias", name, binding.value)
    raise _UnknownError(f"uses '{name}', {binding.value} (line {binding.line})")


# Resolved names, shared by all files: keyed by what the name is bound to (an import, a
# builtin, Prefect's namespace), never by anything a file defines itself.
_RESOLVED: dict[tuple[Any, ...], Any] = {}


def _resolve_name(name: str, scope: _Scope) -> _Sym:
    """What `name` means in `scope`."""
    context = scope.context
    if context is None:
        key: tuple[Any, ...] = (name, "prefect")
    else:
        binding = context._lookup(name, scope.before_line)
        if binding is None or binding is False:
            key = (name, binding, context._star_imports)
        elif binding.kind == "module" or binding.kind == "import":
            key = (name, binding.kind, binding.value)
        else:
            return _lookup_name(name, scope)
    found: Any = _RESOLVED.get(key)
    if found is None:
        try:
            found = _lookup_name(name, scope)
        except (_UnknownError, _UnboundError) as exc:
            found = (type(exc), exc.args)
        _RESOLVED[key] = found
    if type(found) is _Sym:
        return found
    error, args = found
    raise error(*args)


def _resolve(node: ast.expr, scope: _Scope) -> _Sym:
    if isinstance(node, ast.Name):
        return _resolve_name(node.id, scope)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, scope)
        if base.kind == "module":
            path = f"{base.name}.{node.attr}"
            if path in _MODULES:
                return _Sym("module", path)
            return _Sym("obj", _normalize(path))
        if base.kind == "class":
            return _Sym("member", base.name, base.node, node.attr)
        if base.kind == "obj" and f"{base.name}.{node.attr}" in _VALUE_ATTRIBUTES:
            return _Sym("obj", f"{base.name}.{node.attr}")
        raise _UnknownError(f"uses '{ast.unparse(node)}', which deploy-manager cannot resolve")
    raise _UnknownError(f"uses '{ast.unparse(node)}', which deploy-manager cannot resolve")


def _public_names(module: str) -> frozenset[str]:
    """What `from module import *` binds (whitelisted modules only)."""
    imported = importlib.import_module(module)
    names = getattr(imported, "__all__", None)
    if names is None:
        names = [n for n in vars(imported) if not n.startswith("_")]
    return frozenset(names)


def _import_object(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    if module not in _MODULES:
        if path in _VALUE_ATTRIBUTES:
            return getattr(_import_object(module), attr)
        raise _UnknownError(f"uses '{path}'")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise _UnknownError(f"uses '{path}', which does not exist here") from exc


def _names_unbound(node: ast.expr, scope: _Scope) -> str | None:
    """The first name in `node` that evaluating it would not find (strings are not looked into)."""
    names: list[str] = []
    _names_in(node, names)
    for name in names:
        try:
            _resolve_name(name, scope)
        except _UnboundError:
            return name
        except _UnknownError:
            pass
    return None


def _names_in(node: ast.AST, out: list[str]) -> None:
    # A faster ast.walk for the shapes annotations have.
    kind = type(node)
    if kind is ast.Name:
        out.append(node.id)  # type: ignore[attr-defined]
    elif kind is ast.Attribute:
        _names_in(node.value, out)  # type: ignore[attr-defined]
    elif kind is ast.Subscript:
        _names_in(node.value, out)  # type: ignore[attr-defined]
        _names_in(node.slice, out)  # type: ignore[attr-defined]
    elif kind is ast.Tuple or kind is ast.List:
        for element in node.elts:  # type: ignore[attr-defined]
            _names_in(element, out)
    elif kind is ast.BinOp:
        _names_in(node.left, out)  # type: ignore[attr-defined]
        _names_in(node.right, out)  # type: ignore[attr-defined]
    elif kind is not ast.Constant:
        out.extend(sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name))


def _parse_annotation_string(text: str) -> ast.expr:
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise _UnknownError(f"is the string {text!r}, which is not an expression") from exc


# --- code in messages ------------------------------------------------------------------


def _quoted(node: ast.AST) -> str:
    """An annotation for a message: 'list[int]', or a quoted annotation as written."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _short(node)
    return f"'{_short(node)}'"


def _short(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."
