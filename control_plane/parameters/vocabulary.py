"""What the parameters package interprets, the limits it keeps, and how it says no.

The whitelists: the modules whose names are interpreted (the standard library and our own
dependencies, never the repository's), what each known symbol is to the fast path, the
constructors a default may call, the calls that only pydantic understands, the class bases
and decorators understood, the names of Prefect's fallback namespace. The limits on depth
and size that keep an untrusted file cheap. The exceptions the interpreters raise to say
why a type or a value cannot be known (`_UnknownError`, `_UnboundError`), that Prefect
would make it Any (`_PrefectAnyError`), or that only the pydantic path gets it right
(`_NeedsPydanticError`).

Data only: nothing here looks at a file.
"""

from __future__ import annotations

import builtins
from typing import Any, Final

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
