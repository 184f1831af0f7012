"""`build_parameter_schema`: one flow's parameter schema, by the fast path where it can.

The fast path (`_fast_schema`) translates each annotation and default straight to JSON
(`type_expressions`, `safe_values`); nearly every flow takes it. Where a parameter needs
more of pydantic's logic it raises `_NeedsPydanticError` and `pydantic_path` makes the
whole schema instead. A signature nobody foresaw gets the open schema and a warning, never
an exception: discovery goes on.
"""

from __future__ import annotations

import ast
from typing import Any

from control_plane.parameters.docstrings import docstring_parameter_descriptions
from control_plane.parameters.names import ModuleContext, _Scope
from control_plane.parameters.pydantic_path import _pydantic_schema
from control_plane.parameters.safe_values import _UNSET, _encode_default, _sort_json, _Values
from control_plane.parameters.signatures import (
    _RESERVED_FOR_VALIDATION,
    SchemaWarning,
    _Annotation,
    _annotations,
    _default_warning,
    _function_docstring,
    _name_warnings,
    _open_schema,
    _Param,
    _prefect_rules,
    _signature,
    _type_problem,
)
from control_plane.parameters.type_expressions import _dict_schema, _TypeReader
from control_plane.parameters.vocabulary import (
    _NeedsPydanticError,
    _PrefectAnyError,
    _UnboundError,
    _UnknownError,
)


def build_parameter_schema(
    func: ast.FunctionDef | ast.AsyncFunctionDef, context: ModuleContext
) -> tuple[dict[str, Any], list[SchemaWarning]]:
    """The JSON schema Prefect would store as the deployment's parameter_openapi_schema.

    Equal to `parameter_schema(flow).model_dump(exclude_unset=True)` for the imported flow,
    except where a warning says a type or default could not be known without running code.
    """
    params = _signature(func)
    docstring = _function_docstring(func)
    # Prefect passes inspect.getdoc(fn) to griffe: the docstring, cleaned as here.
    descriptions = docstring_parameter_descriptions(docstring)
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
