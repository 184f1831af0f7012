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
`Args:` sections give the descriptions, parsed by griffe as Prefect parses them.

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

The modules, from the entry point down:

- `schema`: `build_parameter_schema`, the entry point, and the fast path;
- `pydantic_path`: the whole schema made by pydantic, where the fast path cannot match it;
- `signatures`: the parameters, their annotations as Prefect evaluates them, the
  installed Prefect's rules, `SchemaWarning` and the warnings;
- `docstrings`: parameter descriptions from the docstring, by griffe (imported lazily);
- `type_expressions`: annotations to JSON schema (fast path) or to type objects;
- `fragments`: classes of the file on the fast path, described by pydantic once;
- `classes`: enums, models and dataclasses of the file, rebuilt from the AST;
- `safe_values`: defaults and Literal arguments evaluated without running code;
- `v2_schema`: Prefect's `create_v2_schema`, the one call into pydantic's schema generation;
- `names`: what a name in the file means (`ModuleContext`, resolution);
- `vocabulary`: the whitelists and limits, and the exceptions that say why not.

`safe_values`, `classes`, `fragments` and `type_expressions` call one another (a default
can be an enum member, a class body has annotations and defaults): they import each other
as modules, never names, so that any of them may be imported first.

This `__init__` exports nothing: import from the module that holds a name
(`control_plane.parameters.schema.build_parameter_schema`,
`control_plane.parameters.names.ModuleContext`).
"""
