"""The flow's whole parameter schema made by pydantic, the way Prefect makes it.

Taken where the fast path cannot match pydantic's output: pydantic types, `Field(...)`
defaults, `Annotated` with constraints, instances of models as defaults, a class pydantic
refuses. Each annotation becomes a type object (`type_expressions._type_object`), each
default a value (`safe_values`), and the schema is built as Prefect's `process_v2_params`
and `create_v2_schema` build it; a parameter pydantic cannot describe becomes Any with a
warning, as it does in Prefect. pydantic is imported here on first use only.
"""

from __future__ import annotations

import ast
import warnings
from typing import Any

from control_plane.parameters.names import ModuleContext, _Scope, _short
from control_plane.parameters.safe_values import _UNSET, _encode_default, _UnknownDefault, _Values
from control_plane.parameters.signatures import (
    SchemaWarning,
    _Annotation,
    _default_warning,
    _name_warnings,
    _open_schema,
    _Param,
    _prefect_any_warning,
    _prefect_rules,
    _type_problem,
)
from control_plane.parameters.type_expressions import _type_object
from control_plane.parameters.v2_schema import _create_v2_schema
from control_plane.parameters.vocabulary import _PrefectAnyError, _UnboundError, _UnknownError


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
