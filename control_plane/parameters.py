"""Flow parameter schemas, read from source.

What it does: translates a flow function's signature, as parsed by `ast`, into the JSON
schema Prefect stores on a deployment as `parameter_openapi_schema`; that is
`prefect.utilities.callables.parameter_schema(flow).model_dump(exclude_unset=True)` for
the imported function (`RunnerDeployment` and `prefect deploy` send that form; unlike
`model_dump_for_openapi()` it has no empty `definitions`). Type expressions are
interpreted from a whitelist (builtins, typing, typing_extensions, collections.abc,
datetime, uuid, pathlib, decimal, pydantic), following the file's own imports and
aliases. Defaults are evaluated from literals, arithmetic on literals, module constants and
a few known constructors (`datetime.date(...)`, `Path(...)`, ...). Google-style docstring
`Args:` sections give the descriptions, parsed the way griffe (Prefect's parser) does.

The schema follows the Prefect that is installed (its version read from the package
metadata, Prefect itself is not imported): Prefect 3.9 made `*args: T` an array of `T`
defaulting to `[]` and `**kwargs: T` an object of `T` defaulting to `{}`, where 3.8 left
them required with the schema of `T`. That is the only difference in the schemas of the
versions supported (3.8, 3.9; `prefect.utilities.callables` and
`prefect._internal.pydantic` compared).

The common case (builtins, typing constructs, datetime, ...) is translated straight from
the AST to JSON. An Enum, a pydantic model or a dataclass defined in the same file stays
on that path too: the class is rebuilt from the AST (no class body is ever run) and
described by pydantic once per definition, a key made of its AST and of what every name in
it resolves to, so the same class in many files costs one build; the parameter refers to
that description as pydantic would (`$ref` and `definitions`), and enum members as
defaults are their values. Where a parameter needs more of pydantic's logic (pydantic
types, `Field(...)` defaults, `Annotated` with constraints, instances of models as
defaults, a class pydantic refuses), the flow's whole schema is produced with pydantic
(imported lazily), the way Prefect does it.

What it does not do: import, exec or eval the repository's code, or import Prefect (too
slow for discovery). A type that cannot be known without running code (imported from the
repository or an unknown package, defined by a call) leaves its parameter with the open
schema Prefect gives an unannotated parameter, and a `SchemaWarning` says why; a default
that cannot be evaluated is left out, also with a warning.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import enum
import functools
import importlib
import re
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from inspect import cleandoc
from typing import Any, Final, Literal, NamedTuple

__all__ = [
    "ModuleContext",
    "SchemaWarning",
    "build_parameter_schema",
    "docstring_parameter_descriptions",
]


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


# --- what names can mean -------------------------------------------------------------

# Modules whose names are interpreted (never the repository's). Importing them is safe:
# they are the standard library or our own dependencies.
_MODULES: Final = frozenset(
    {
        "typing",
        "typing_extensions",
        "builtins",
        "types",
        "collections",
        "collections.abc",
        "datetime",
        "uuid",
        "pathlib",
        "decimal",
        "ipaddress",
        "re",
        "enum",
        "dataclasses",
        "annotated_types",
        "pydantic",
        "pydantic.main",
        "pydantic.fields",
        "pydantic.types",
        "pydantic.networks",
        "pydantic.dataclasses",
    }
)

_BUILTIN_NAMES: Final = frozenset(dir(builtins))

# Symbols translated straight to JSON, by kind.
_FAST_KINDS: Final[dict[str, str]] = {
    "typing.Any": "any",
    "builtins.object": "any",
    "builtins.int": "int",
    "builtins.float": "float",
    "builtins.str": "str",
    "typing.Text": "str",
    "builtins.bool": "bool",
    "builtins.bytes": "bytes",
    "types.NoneType": "none",
    "builtins.list": "list",
    "typing.List": "list",
    "typing.Sequence": "list",
    "typing.MutableSequence": "list",
    "collections.abc.Sequence": "list",
    "collections.abc.MutableSequence": "list",
    "builtins.set": "set",
    "builtins.frozenset": "set",
    "typing.Set": "set",
    "typing.FrozenSet": "set",
    "typing.AbstractSet": "set",
    "typing.MutableSet": "set",
    "collections.abc.Set": "set",
    "collections.abc.MutableSet": "set",
    "builtins.tuple": "tuple",
    "typing.Tuple": "tuple",
    "builtins.dict": "dict",
    "typing.Dict": "dict",
    "typing.Mapping": "dict",
    "typing.MutableMapping": "dict",
    "collections.abc.Mapping": "dict",
    "collections.abc.MutableMapping": "dict",
    "typing.Union": "union",
    "typing.Optional": "optional",
    "typing.Literal": "literal",
    "typing.Annotated": "annotated",
    "datetime.datetime": "datetime",
    "datetime.date": "date",
    "datetime.time": "time",
    "datetime.timedelta": "timedelta",
    "uuid.UUID": "uuid",
    "pathlib.Path": "path",
    "pathlib.PurePath": "path",
    "pathlib.PosixPath": "path",
    "pathlib.PurePosixPath": "path",
    "decimal.Decimal": "decimal",
}

_SCALAR_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "any": {},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "bytes": {"format": "binary", "type": "string"},
    "none": {"type": "null"},
    "datetime": {"format": "date-time", "type": "string"},
    "date": {"format": "date", "type": "string"},
    "time": {"format": "time", "type": "string"},
    "timedelta": {"format": "duration", "type": "string"},
    "uuid": {"format": "uuid", "type": "string"},
    "path": {"format": "path", "type": "string"},
    "decimal": {"anyOf": [{"type": "number"}, {"type": "string"}]},
}

# Constructors that may be called, with already evaluated literal arguments, to build a
# default value. Callables are looked up by name in whitelisted modules and compared by
# identity, so nothing else can ever be called.
_VALUE_CALLS: Final = frozenset(
    {
        "builtins.set",
        "builtins.frozenset",
        "builtins.tuple",
        "builtins.list",
        "builtins.dict",
        "builtins.float",
        "builtins.int",
        "builtins.str",
        "builtins.bool",
        "builtins.complex",
        "datetime.date",
        "datetime.datetime",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "uuid.UUID",
        "pathlib.Path",
        "pathlib.PurePath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "decimal.Decimal",
    }
)
_VALUE_ATTRIBUTES: Final = frozenset({"datetime.timezone.utc", "datetime.UTC"})
# Calls that only make sense to pydantic (so they send a parameter down the pydantic path).
_PYDANTIC_CALLS: Final = frozenset(
    {
        "pydantic.Field",
        "pydantic.fields.Field",
        "dataclasses.field",
        "enum.auto",
        "pydantic.conint",
        "pydantic.confloat",
        "pydantic.constr",
        "pydantic.conbytes",
        "pydantic.conlist",
        "pydantic.conset",
        "pydantic.confrozenset",
        "pydantic.condecimal",
        "pydantic.condate",
        "pydantic.StringConstraints",
        "pydantic.types.conint",
        "pydantic.types.confloat",
        "pydantic.types.constr",
        "pydantic.types.conlist",
        "pydantic.types.StringConstraints",
        "annotated_types.Gt",
        "annotated_types.Ge",
        "annotated_types.Lt",
        "annotated_types.Le",
        "annotated_types.MultipleOf",
        "annotated_types.MinLen",
        "annotated_types.MaxLen",
        "annotated_types.Len",
        "annotated_types.Interval",
    }
)
_FACTORIES: Final = frozenset(
    {"builtins.list", "builtins.dict", "builtins.set", "builtins.tuple", "builtins.frozenset"}
)

# Prefect's fallback when `inspect.signature(fn, eval_str=True)` fails: pydantic resolves
# the annotation strings in the namespace of `prefect._internal.pydantic.v2_schema`, not
# in the flow's module. These are the names that module defines.
_PREFECT_V2_NAMESPACE: Final[dict[str, tuple[str, str]]] = {
    "typing": ("module", "typing"),
    "t": ("module", "typing"),
    "pydantic": ("module", "pydantic"),
    "inspect": ("module", "inspect"),
    "V2BaseModel": ("obj", "pydantic.BaseModel"),
    "ConfigDict": ("obj", "pydantic.ConfigDict"),
    "FieldInfo": ("obj", "pydantic.fields.FieldInfo"),
    "TypeAdapter": ("obj", "pydantic.TypeAdapter"),
}

_ENUM_BASES: Final = frozenset(
    {"enum.Enum", "enum.IntEnum", "enum.StrEnum", "enum.Flag", "enum.IntFlag", "enum.ReprEnum"}
)
_ENUM_MIXINS: Final = frozenset({"builtins.str", "builtins.int", "builtins.float"})
_MODEL_BASES: Final = frozenset({"pydantic.BaseModel", "pydantic.main.BaseModel"})
_DATACLASS_DECORATORS: Final = frozenset(
    {"dataclasses.dataclass", "pydantic.dataclasses.dataclass"}
)
# Hooks through which a class tells pydantic its own schema: only running code knows it.
_SCHEMA_HOOKS: Final = frozenset(
    {
        "__get_pydantic_core_schema__",
        "__get_pydantic_json_schema__",
        "__get_validators__",
        "__modify_schema__",
        "model_json_schema",
    }
)
# Decorators that change neither the schema nor how instances validate.
_HARMLESS_DECORATORS: Final = frozenset(
    {"property", "staticmethod", "classmethod", "computed_field", "cached_property"}
)

_MAX_DEPTH: Final = 40
_MAX_SIZE: Final = 100_000
_MAX_INT_BITS: Final = 14_000  # ~4200 digits: Python refuses to print longer ints
_BUILT_MODULE: Final = "deploy_manager_flow_module"


class _UnknownError(Exception):
    """The type or value depends on code we do not run."""


class _UnboundError(Exception):
    """A name that does not exist when Prefect evaluates the annotation (NameError)."""


class _PrefectAnyError(Exception):
    """Prefect itself would fall back to `Any` for this type."""


class _NeedsPydanticError(Exception):
    """The schema needs pydantic's own logic: take the slow path."""


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
                built = _build_class(self.context, sym.node)
            else:
                built = _shared_enum(self.context, sym.node)
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
            built = _build_class(self.context, sym.node)
            info = _class_info(self.context, sym.node)
            if info.kind in ("model", "dataclass") and not info.custom:
                return built
        raise _UnknownError(f"uses default_factory '{_short(node)}', which runs code")

    def _instantiate(
        self, cls_node: ast.ClassDef, call: ast.Call, scope: _Scope, depth: int
    ) -> Any:
        info = _class_info(self.context, cls_node)
        if info.kind not in ("model", "dataclass") or info.custom:
            raise _UnknownError(f"calls '{cls_node.name}', which runs code at import")
        built = _build_class(self.context, cls_node)
        args = [self._eval(a, scope, depth) for a in call.args]
        # `**mapping` arguments were refused in _call.
        kwargs = {k.arg: self._eval(k.value, scope, depth) for k in call.keywords if k.arg}
        try:
            return built(*args, **kwargs)
        except Exception as exc:
            raise _UnknownError(f"fails to build '{_short(call)}'") from exc


def _quoted(node: ast.AST) -> str:
    """An annotation for a message: 'list[int]', or a quoted annotation as written."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _short(node)
    return f"'{_short(node)}'"


def _short(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


# --- local classes -------------------------------------------------------------------------


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


# --- local classes in the fast path: pydantic's schema of each definition, once ------------

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

    built = _build_class(context, node, as_type=True)
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
    if _class_info(context, node).kind != "enum":
        raise _NeedsPydanticError
    try:
        key: Hashable = _definition_key(context, node)
    except _NoKeyError:
        return _build_class(context, node)
    built = _ENUMS.get(key)
    if built is None:
        built = _ENUMS[key] = _build_class(context, node)
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
    values = _Values(context, slow=True)
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
    values = _Values(context, slow=True)
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
                annotations[name] = _type_object(stmt.annotation, scope, context, nested=scope)
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


def _build_model(context: ModuleContext, node: ast.ClassDef) -> Any:
    import pydantic

    bases = _class_bases(context, node)
    annotations, defaults, config = _field_body(context, node, allow_config=True)
    namespace: dict[str, Any] = {
        "__module__": _BUILT_MODULE,
        "__qualname__": node.name,
        "__annotations__": annotations,
        **defaults,
    }
    doc = _class_docstring(node)
    if doc is not None:
        namespace["__doc__"] = doc
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
    namespace: dict[str, Any] = {
        "__module__": _BUILT_MODULE,
        "__qualname__": node.name,
        "__annotations__": annotations,
        **defaults,
    }
    doc = _class_docstring(node)
    if doc is not None:
        namespace["__doc__"] = doc
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


# --- type expressions ------------------------------------------------------------------


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


def _literal_values(args: list[ast.expr], scope: _Scope, values: _Values, depth: int) -> list[Any]:
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
    expected = [_plain_json(v) for v in literal]
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

    def __init__(self, context: ModuleContext, values: _Values) -> None:
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
            info = _class_info(self.context, sym.node)
            if info.kind == "plain":
                return {}
            if info.kind == "unknown":
                raise _UnknownError(info.reason)
            return _class_fragment(self.context, sym.node, self.definitions)
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
            if choice == _NULL:
                nullable = True
            else:
                choices.append(choice)
        if not choices:
            return {"type": "null"}
        inner = choices[0] if len(choices) == 1 else _any_of(choices)
        if not nullable:
            return inner
        return _any_of([inner, {"type": "null"}])

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
            return _build_class(context, sym.node, as_type=True)
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
            values = _Values(context, slow=True)
            return typing.Literal[tuple(_literal_values(args, scope, values, depth))]
        base = _type_object(node.value, scope, context, nested, depth)
        if kind == "annotated":
            values = _Values(context, slow=True)
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
            return _Values(context, slow=True).eval(node, scope)
    if isinstance(node, ast.List):
        return [_type_object(e, scope, context, nested, depth) for e in node.elts]
    raise _UnknownError(f"uses '{_short(node)}', which only running code can tell")


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


def build_parameter_schema(
    func: ast.FunctionDef | ast.AsyncFunctionDef, context: ModuleContext
) -> tuple[dict[str, Any], list[SchemaWarning]]:
    """The JSON schema Prefect would store as the deployment's parameter_openapi_schema.

    Equal to `parameter_schema(flow).model_dump(exclude_unset=True)` for the imported flow,
    except where a warning says a type or default could not be known without running code.
    """
    params = _signature(func)
    docstring = _function_docstring(func)
    # Prefect passes inspect.getdoc(fn) (cleaned) to griffe, which cleans it again after
    # rstrip(); on clean text that second pass only strips the end.
    descriptions = _descriptions(docstring.rstrip().split("\n")) if docstring else {}
    annotations, unbound = _annotations(func, params, context)
    try:
        try:
            return _fast_schema(func, params, annotations, descriptions, context, unbound)
        except _NeedsPydanticError:
            return _pydantic_schema(func, params, annotations, descriptions, context, unbound)
    except Exception as exc:  # a shape of code nobody foresaw must not stop discovery
        message = (
            f"deploy-manager could not read this signature ({type(exc).__name__}: {exc}); "
            "every parameter accepts any value here"
        )
        return _open_schema(params, descriptions), [SchemaWarning(func.lineno, message)]


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


def _fast_schema(
    func: ast.FunctionDef | ast.AsyncFunctionDef,
    params: list[_Param],
    annotations: list[_Annotation],
    descriptions: dict[str, str],
    context: ModuleContext,
    unbound: str | None,
) -> tuple[dict[str, Any], list[SchemaWarning]]:
    problems: list[SchemaWarning] = []
    values = _Values(context, slow=False)
    reader = _TypeReader(context, values)
    default_scope = _Scope(context, func.lineno)
    variadic_collections = _prefect_rules().variadic_collections
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param, annotation in zip(params, annotations, strict=True):
        name = param.name
        if name in ("self", "cls"):
            continue
        if name[0] == "_" or name in _RESERVED_FOR_VALIDATION:
            problems.extend(_name_warnings(param))
        type_schema: dict[str, Any] = {}
        known = True
        if annotation.source is not None:
            try:
                if annotation.error is not None:
                    raise annotation.error
                type_schema = reader.schema(annotation.node, annotation.scope)  # type: ignore[arg-type]
            except (_UnknownError, _UnboundError, _PrefectAnyError) as exc:
                problems.append(_type_problem(param, annotation, exc, unbound))
                type_schema = {}
                known = False
        has_default = param.default is not None
        encoded: Any = None
        if param.variadic and variadic_collections:
            # process_v2_params: list[T] = [] and dict[str, T] = {}. Where T is a type
            # pydantic cannot describe, the CheckParameter step makes the whole type Any.
            if known and param.variadic == "*":
                type_schema = {"items": type_schema, "type": "array"}
            elif known:
                type_schema = _dict_schema({"type": "string"}, type_schema)
            has_default = True
            encoded = [] if param.variadic == "*" else {}
        elif param.default is not None:
            try:
                value = values.eval(param.default, default_scope)
                if value is Ellipsis:
                    has_default = False
                else:
                    encoded = _encode_default(value)
            except _UnknownError as exc:
                problems.append(_default_warning(param, param.default, exc.args[0]))
                has_default = False
                encoded = _UNSET
        # The type schemas are built with their keys sorted, as pydantic sorts them; only
        # the property's own keys and container defaults need sorting here.
        prop = type_schema
        if has_default:
            kind = type(encoded)
            prop["default"] = (
                _sort_json(encoded, "default") if kind is dict or kind is list else encoded
            )
        prop["title"] = param.name
        description = descriptions.get(param.name)
        if description:
            prop["description"] = description
        prop["position"] = param.position
        # pydantic leaves the keys of a dict under "default"/"properties" unsorted, also
        # when that dict is the schema of a parameter with one of those names.
        if param.name in ("default", "properties"):
            # pydantic's insertion order, as far as it matters: "type" first.
            prop = {"type": prop.pop("type"), **prop} if "type" in prop else prop
        else:
            prop = dict(sorted(prop.items()))
        properties[param.name] = prop
        if not has_default and encoded is not _UNSET:
            required.append(param.name)
    schema: dict[str, Any] = {"title": "Parameters", "type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if reader.definitions:
        # Shared between flows (cached per class definition): each schema gets a copy.
        definitions = reader.definitions
        schema["definitions"] = {
            name: _copy_json(definitions[name]) for name in sorted(definitions)
        }
    return schema, problems


def _copy_json(value: Any) -> Any:
    if type(value) is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy_json(item) for item in value]
    return value


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


# --- the pydantic path -------------------------------------------------------------------

_GENERATOR: list[Any] = []


def _schema_generator() -> Any:
    """Prefect's `GenerateEmptySchemaForUserClasses`: arbitrary classes get `{}`."""
    if not _GENERATOR:
        from pydantic.json_schema import GenerateJsonSchema

        class GenerateEmptySchemaForUserClasses(GenerateJsonSchema):
            def is_instance_schema(self, schema: Any) -> Any:
                return {}

        _GENERATOR.append(GenerateEmptySchemaForUserClasses)
    return _GENERATOR[0]


def _create_v2_schema(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Prefect's `create_v2_schema`, step for step."""
    import pydantic
    from pydantic import PydanticUndefinedAnnotation, TypeAdapter
    from pydantic.errors import PydanticUserError

    model = pydantic.create_model(
        name, __config__=pydantic.ConfigDict(arbitrary_types_allowed=True), __base__=None, **fields
    )
    try:
        adapter = TypeAdapter(model)
    except PydanticUndefinedAnnotation as exc:
        raise TypeError(exc.message) from exc
    try:
        schema = adapter.json_schema(
            by_alias=True,
            ref_template="#/definitions/{model}",
            schema_generator=_schema_generator(),
        )
    except PydanticUserError as exc:
        if exc.code == "class-not-fully-defined":
            raise TypeError(str(exc)) from exc
        raise
    if "$defs" in schema:
        schema["definitions"] = schema["$defs"]
    return schema


def _pydantic_schema(
    func: ast.FunctionDef | ast.AsyncFunctionDef,
    params: list[_Param],
    annotations: list[_Annotation],
    descriptions: dict[str, str],
    context: ModuleContext,
    unbound: str | None,
) -> tuple[dict[str, Any], list[SchemaWarning]]:
    import typing

    import pydantic
    from pydantic.errors import PydanticInvalidForJsonSchema
    from pydantic.fields import FieldInfo

    problems: list[SchemaWarning] = []
    values = _Values(context, slow=True)
    default_scope = _Scope(context, func.lineno)
    prefect_scope = _Scope(None)
    variadic_collections = _prefect_rules().variadic_collections
    fields: dict[str, Any] = {}
    for param, annotation in zip(params, annotations, strict=True):
        type_: Any = typing.Any
        known = True
        if annotation.source is not None:
            try:
                if annotation.error is not None:
                    raise annotation.error
                assert annotation.node is not None
                type_ = _type_object(annotation.node, annotation.scope, context, prefect_scope)
            except (_UnknownError, _UnboundError, _PrefectAnyError) as exc:
                known = False
                if param.name not in ("self", "cls"):
                    problems.append(_type_problem(param, annotation, exc, unbound))
            except Exception as exc:  # typing refusing the arguments, say: so would Python
                known = False
                if param.name not in ("self", "cls"):
                    reason = f"cannot be built ({type(exc).__name__}: {exc})"
                    problems.append(_prefect_any_warning(param, annotation.source, reason))
        default: Any = _UNSET
        if param.default is not None:
            try:
                default = values.eval(param.default, default_scope)
                if not isinstance(default, FieldInfo) and default is not Ellipsis:
                    _encode_default(default)  # to say why, if pydantic cannot serialize it
            except _UnknownError as exc:
                if param.name not in ("self", "cls"):
                    problems.append(_default_warning(param, param.default, exc.args[0]))
                default = _UnknownDefault()
        # prefect._internal.pydantic.v2_schema.process_v2_params
        if hasattr(pydantic.BaseModel, param.name):
            name, alias = param.name + "__", param.name
        elif param.name.startswith("_"):
            # pydantic refuses the field (and Prefect the flow, see _name_warnings); an
            # alias keeps the parameter in the schema.
            name, alias = f"p{param.position}{param.name}", param.name
        else:
            name, alias = param.name, None
        existing = default if isinstance(default, FieldInfo) else None
        default_value = existing.default if existing else default
        description: str | None
        if existing and existing.description:
            description = existing.description
        else:
            description = descriptions.get(param.name)
        extra: dict[str, Any] = {}
        if existing and isinstance(existing.json_schema_extra, dict):
            extra.update(existing.json_schema_extra)
        extra.setdefault("position", param.position)
        if param.variadic and variadic_collections:
            # As in the fast path, a type we could not read stays Any (an open schema).
            if param.variadic == "*":
                type_ = list[type_] if known else type_
                default_value = []
            else:
                type_ = dict[str, type_] if known else type_
                default_value = {}
        field = pydantic.Field(
            default=... if default_value is _UNSET else default_value,
            title=param.name,
            description=description,
            alias=alias,
            json_schema_extra=extra,
        )
        if param.name in ("self", "cls"):
            continue
        problems.extend(_name_warnings(param))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _create_v2_schema("CheckParameter", {name: (type_, field)})
        except (ValueError, TypeError, PydanticInvalidForJsonSchema):
            if type_ is not typing.Any and annotation.source is not None:
                problems.append(
                    _prefect_any_warning(
                        param, annotation.source, "is a type pydantic cannot describe"
                    )
                )
            type_ = typing.Any
        except Exception as exc:  # pydantic_core.SchemaError and the like
            if annotation.source is not None:
                problems.append(
                    SchemaWarning(
                        param.arg.lineno,
                        f"parameter '{param.name}': pydantic refuses type "
                        f"'{_short(annotation.source)}' ({type(exc).__name__}), so Prefect "
                        "cannot load this flow; the parameter accepts any value here",
                    )
                )
            type_ = typing.Any
        fields[name] = (type_, field)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            schema = _create_v2_schema("Parameters", fields)
        except Exception as exc:  # a default pydantic refuses, say: Prefect fails too
            problems.append(
                SchemaWarning(
                    func.lineno,
                    f"pydantic cannot build this flow's parameter schema ({type(exc).__name__}),"
                    " so Prefect cannot load it; every parameter accepts any value here",
                )
            )
            return _open_schema(params, descriptions), problems
    for item in caught:
        text = str(item.message)
        if "excluding default" in text and repr(_UnknownDefault()) not in text:
            problems.append(SchemaWarning(func.lineno, f"pydantic: {text}"))
    stored: dict[str, Any] = {}
    for key in ("title", "type", "properties", "required", "definitions"):
        if key in schema:
            stored[key] = schema[key]
    return stored, problems


# --- docstrings ----------------------------------------------------------------------------

# griffe's Google parser (what Prefect uses), reduced to what decides parameter
# descriptions: section detection, block reading and the `name (type): text` items.
_SECTION_KINDS: Final[dict[str, str]] = {
    "args": "parameters",
    "arguments": "parameters",
    "params": "parameters",
    "parameters": "parameters",
    "keyword args": "other",
    "keyword arguments": "other",
    "other args": "other",
    "other arguments": "other",
    "other params": "other",
    "other parameters": "other",
    "type args": "other",
    "type arguments": "other",
    "type params": "other",
    "type parameters": "other",
    "raises": "other",
    "exceptions": "other",
    "returns": "other",
    "yields": "other",
    "receives": "other",
    "examples": "block",
    "attributes": "other",
    "functions": "other",
    "methods": "other",
    "classes": "other",
    "type aliases": "other",
    "modules": "other",
    "warns": "other",
    "warnings": "other",
}
_RE_ADMONITION: Final = re.compile(
    r"^(?P<type>[\w][\s\w-]*):(\s+(?P<title>[^\s].*))?\s*$", re.IGNORECASE
)


def _is_empty(line: str) -> bool:
    return not line or line.isspace()


def _read_block_items(lines: list[str], offset: int) -> tuple[list[list[str]], int]:
    if offset >= len(lines):
        return [], offset
    new_offset = offset
    while new_offset < len(lines) and _is_empty(lines[new_offset]):
        new_offset += 1
    if new_offset >= len(lines):
        return [], new_offset - 1
    indent = len(lines[new_offset]) - len(lines[new_offset].lstrip())
    if indent == 0:
        return [], new_offset - 1
    items: list[list[str]] = []
    current = [lines[new_offset][indent:]]
    new_offset += 1
    while new_offset < len(lines):
        line = lines[new_offset]
        if _is_empty(line):
            current.append("")
        elif line.startswith(indent * 2 * " "):
            current.append(line[indent * 2 :])
        elif line.startswith((indent + 1) * " "):
            current.append(line[len(line) - len(line.lstrip()) :])
        elif line.startswith(indent * " "):
            items.append(current)
            current = [line[indent:]]
        else:
            break
        new_offset += 1
    items.append(current)
    return items, new_offset - 1


def _read_block(lines: list[str], offset: int) -> tuple[str, int]:
    if offset >= len(lines):
        return "", offset - 1
    new_offset = offset
    while new_offset < len(lines) and _is_empty(lines[new_offset]):
        new_offset += 1
    if new_offset >= len(lines):
        return "", offset - 1
    indent = len(lines[new_offset]) - len(lines[new_offset].lstrip())
    if indent == 0:
        return "", offset - 1
    block = [lines[new_offset].lstrip()]
    new_offset += 1
    while new_offset < len(lines) and (
        lines[new_offset].startswith(indent * " ") or _is_empty(lines[new_offset])
    ):
        block.append(lines[new_offset][indent:])
        new_offset += 1
    return "\n".join(block).rstrip("\n"), new_offset - 1


def docstring_parameter_descriptions(docstring: str | None) -> dict[str, str]:
    """Parameter descriptions from a Google-style docstring, as Prefect finds them.

    Same result as `prefect.utilities.callables.parameter_docstrings` (griffe's Google
    parser): the last `Args:`/`Arguments:`/`Params:`/`Parameters:` section wins, a section
    needs a blank line above it and its items indented below it, continuation lines are
    joined with newlines.
    """
    if not docstring:
        return {}
    return _descriptions(cleandoc(docstring.rstrip()).split("\n"))


def _descriptions(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    in_code_block = False
    offset = 0
    count = len(lines)
    while offset < count:
        line = lines[offset]
        is_fence = line.lstrip(" ").startswith("```")
        if in_code_block:
            if is_fence:
                in_code_block = False
        elif is_fence:
            in_code_block = True
        elif ":" in line and (match := _RE_ADMONITION.match(line)):
            blank_above = offset == 0 or _is_empty(lines[offset - 1])
            has_next = offset < count - 1
            has_next2 = offset < count - 2
            blank_below = has_next and _is_empty(lines[offset + 1])
            blank_below2 = has_next2 and _is_empty(lines[offset + 2])
            indented_below = has_next and not blank_below and lines[offset + 1].startswith(" ")
            indented_below2 = has_next2 and not blank_below2 and lines[offset + 2].startswith(" ")
            if (
                not (indented_below or indented_below2)
                or not blank_above
                or (indented_below2 and blank_below)
            ):
                offset += 1
                continue
            kind = _SECTION_KINDS.get(match.group("type").lower())
            if kind == "parameters":
                items, offset = _read_block_items(lines, offset + 1)
                # A section where no item parses is empty, and griffe drops it.
                found = _parameter_items(items) or found
            elif kind == "other":
                _, offset = _read_block_items(lines, offset + 1)
            else:  # examples and admonitions read a plain block
                _, offset = _read_block(lines, offset + 1)
        offset += 1
    return found


def _parameter_items(items: list[list[str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        head, sep, description = item[0].partition(":")
        if not sep:
            continue
        text = "\n".join([description.lstrip(), *item[1:]]).rstrip("\n")
        # `name (type): text`; otherwise griffe keeps the head as is, spaces included.
        name = head.split("(", 1)[0].strip() if "(" in head and head.endswith(")") else head
        found[name] = text
    return found
