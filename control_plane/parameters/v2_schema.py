"""Prefect's `create_v2_schema` (`prefect._internal.pydantic.v2_schema`), without Prefect.

The one place this package asks pydantic for a JSON schema, with Prefect's model config,
reference template and schema generator (instances of arbitrary classes get `{}`), for the
fast path's class fragments and for the pydantic path. pydantic is imported on first use.
"""

from __future__ import annotations

from typing import Any

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
