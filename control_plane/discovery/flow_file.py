"""One Python file's flows, found with `ast`, as Prefect will know them.

`parse_flow_file` recognises every way a file's top level refers to `prefect.flow`
(`@flow`, `@flow(...)`, `@prefect.flow`, aliases, async flows, `x = flow(fn)`), works out
each flow's name and description as Prefect would (`static_values`) and translates its
parameters (`control_plane.parameters`). A file that cannot be decoded or parsed, a name
only running code could tell, a name Prefect refuses: each is a `Problem`, and the file's
other flows are still returned. `_may_define_flows` is the pre-filter that spares
`ast.parse` a file that never names `flow`; `_parse_or_report` turns a bug of ours into
the file's problem.

It reads the bytes it is given: it does not walk the checkout (`checkout`), follow the
file's imports for a fingerprint (`import_graph`) or match flows to deployments
(`matching`).
"""

from __future__ import annotations

import ast
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from control_plane.discovery.model import FlowSpec
from control_plane.discovery.static_values import (
    _code,
    _NotStatic,
    _RepositoryModules,
    _StaticValues,
)
from control_plane.errors import Problem
from control_plane.parameters.names import ModuleContext
from control_plane.parameters.schema import build_parameter_schema

# Prefect refuses these characters in flow names (prefect.types.names.BANNED_CHARACTERS).
BANNED_NAME_CHARACTERS = ("/", "%", "&", ">", "<")


@dataclass
class _FlowNames:
    """How a file's top level refers to `prefect.flow`."""

    flow_names: set[str] = field(default_factory=set)  # `flow`, `f` (aliases)
    prefect_modules: set[str] = field(default_factory=set)  # `prefect`, `p`
    flows_modules: set[str] = field(default_factory=set)  # `prefect.flows` as imported

    def is_flow_ref(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.flow_names
        if isinstance(node, ast.Attribute) and node.attr == "flow":
            return _dotted(node.value) in self.prefect_modules | self.flows_modules
        return False


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _top_level_statements(body: Iterable[ast.stmt]) -> Iterable[ast.stmt]:
    """Module statements, looking into `if`/`try`/`with` blocks (imports often hide there)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If):
            yield from _top_level_statements(stmt.body)
            yield from _top_level_statements(stmt.orelse)
        elif isinstance(stmt, ast.Try | ast.TryStar):
            yield from _top_level_statements(stmt.body)
            for handler in stmt.handlers:
                yield from _top_level_statements(handler.body)
            yield from _top_level_statements(stmt.orelse)
            yield from _top_level_statements(stmt.finalbody)
        elif isinstance(stmt, ast.With):
            yield from _top_level_statements(stmt.body)


def _flow_names(tree: ast.Module) -> _FlowNames:
    names = _FlowNames()
    for stmt in _top_level_statements(tree.body):
        if isinstance(stmt, ast.ImportFrom) and stmt.level == 0:
            if stmt.module in ("prefect", "prefect.flows"):
                for alias in stmt.names:
                    if alias.name == "flow":
                        names.flow_names.add(alias.asname or "flow")
                    elif alias.name == "flows" and stmt.module == "prefect":
                        names.flows_modules.add(alias.asname or "flows")
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name == "prefect":
                    names.prefect_modules.add(alias.asname or "prefect")
                elif alias.name == "prefect.flows":
                    if alias.asname:
                        names.flows_modules.add(alias.asname)
                    else:
                        names.prefect_modules.add("prefect")
                        names.flows_modules.add("prefect.flows")
                elif alias.name.startswith("prefect."):
                    names.prefect_modules.add("prefect")  # `import prefect.x` binds `prefect`
    return names


@dataclass(frozen=True)
class _Found:
    function: ast.FunctionDef | ast.AsyncFunctionDef
    attribute: str  # the module attribute Prefect loads: the function or the assigned name
    decorator: ast.expr
    line: int


def _find_flows(tree: ast.Module, names: _FlowNames) -> list[_Found]:
    found: list[_Found] = []
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            functions[stmt.name] = stmt
            for decorator in stmt.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if names.is_flow_ref(target):
                    found.append(_Found(stmt, stmt.name, decorator, stmt.lineno))
                    break
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            # `my_flow = flow(fn)` or `my_flow = flow(name="x")(fn)`
            target, value = stmt.targets[0], stmt.value
            if not (isinstance(target, ast.Name) and isinstance(value, ast.Call)):
                continue
            if len(value.args) != 1 or not isinstance(value.args[0], ast.Name):
                continue
            fn = functions.get(value.args[0].id)
            if fn is None:
                continue
            if names.is_flow_ref(value.func):
                found.append(_Found(fn, target.id, value, stmt.lineno))
            elif isinstance(value.func, ast.Call) and names.is_flow_ref(value.func.func):
                found.append(_Found(fn, target.id, value.func, stmt.lineno))
    return found


def parse_flow_file(source: bytes, path: str) -> tuple[list[FlowSpec], list[Problem]]:
    """The flows of one Python file (`path` repo-relative), and its problems.

    Names the file imports from other files are not followed here (`discover` does).
    """
    flows, _, problems = _parse_flow_file(source, path, _RepositoryModules())
    return flows, problems


def _parse_flow_file(
    source: bytes, path: str, modules: _RepositoryModules
) -> tuple[list[FlowSpec], dict[str, Problem], list[Problem]]:
    """(flows, {entrypoint: why its name is unknown}, problems) of one Python file.

    A flow whose name= only running code could tell is not returned: Prefect would register
    it under a name discovery cannot know, so it gets no default deployment, and a
    prefect.yaml deployment of it is refused (with the problem kept here).
    """
    problems: list[Problem] = []
    unnamed: dict[str, Problem] = {}
    try:
        text = source.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return (
            [],
            {},
            [
                Problem(
                    path,
                    0,
                    "unreadable-file",
                    f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                    "save the file as UTF-8",
                )
            ],
        )
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        return (
            [],
            {},
            [
                Problem(
                    path,
                    exc.lineno or 0,
                    "syntax-error",
                    f"Python syntax error: {exc.msg}",
                    "fix the syntax (`python -m py_compile " + path + "` shows it); "
                    "this file's deployments are kept as they are until then",
                )
            ],
        )
    except (ValueError, RecursionError, MemoryError) as exc:
        return (
            [],
            {},
            [
                Problem(
                    path,
                    0,
                    "unparsable-file",
                    f"cannot be parsed: {type(exc).__name__}: {str(exc)[:120]}",
                    "simplify the file (null bytes or very deep nesting); its deployments are kept",
                )
            ],
        )
    names = _flow_names(tree)
    if not (names.flow_names or names.prefect_modules or names.flows_modules):
        return [], {}, []
    found = _find_flows(tree, names)
    if not found:
        return [], {}, []
    context = ModuleContext.from_module(tree)
    values = _StaticValues(modules, path, context)
    flows: list[FlowSpec] = []
    for item in found:
        fn = item.function
        entrypoint = f"{path}:{item.attribute}"
        name_node = _keyword(item.decorator, "name")
        name: Any = None
        if name_node is not None:
            try:
                name = values.evaluate(name_node, item.decorator.lineno)
            except _NotStatic as exc:
                unnamed[entrypoint] = Problem(
                    path,
                    name_node.lineno,
                    "dynamic-flow-name",
                    f"flow {item.attribute}: name= {_code(name_node)} cannot be read without "
                    f"running the file ({exc}); Prefect would register the flow under a name "
                    "deploy-manager cannot know, so it gets no default deployment and a "
                    "prefect.yaml deployment of it is not applied",
                    _NAME_REMEDY,
                    "warning",
                )
                problems.append(unnamed[entrypoint])
                continue
            if name is not None and not isinstance(name, str):
                problems.append(
                    Problem(
                        path,
                        name_node.lineno,
                        "invalid-flow-name",
                        f"flow {item.attribute}: name= is {name!r}, not a string; Prefect "
                        "refuses it (TypeError when the file is imported)",
                        "write name= as a string",
                    )
                )
                continue
        name = name or fn.name.replace("_", "-")  # Prefect's rule, also for name=""
        bad = [c for c in BANNED_NAME_CHARACTERS if c in name]
        if bad:
            problems.append(
                Problem(
                    path,
                    item.decorator.lineno,
                    "invalid-flow-name",
                    f"flow name {name!r} contains {', '.join(repr(c) for c in bad)}, "
                    "which Prefect refuses",
                    f"rename it without any of {' '.join(BANNED_NAME_CHARACTERS)}",
                )
            )
            continue
        description: Any = None
        description_node = _keyword(item.decorator, "description")
        if description_node is not None:
            try:
                description = values.evaluate(description_node, item.decorator.lineno)
            except _NotStatic as exc:
                problems.append(
                    Problem(
                        path,
                        description_node.lineno,
                        "dynamic-flow-description",
                        f"flow {name}: description= {_code(description_node)} cannot be read "
                        f"without running the file ({exc}); the docstring is used instead",
                        "write description= as a string literal or a module-level string constant",
                        "warning",
                    )
                )
        if not isinstance(description, str) or not description:
            description = ast.get_docstring(fn, clean=True)  # Prefect: description or getdoc
        schema, warnings = build_parameter_schema(fn, context)
        problems.extend(
            Problem(
                path, w.line, "open-parameter-schema", w.message, _OPEN_SCHEMA_REMEDY, "warning"
            )
            for w in warnings
        )
        flows.append(
            FlowSpec(
                name=name,
                entrypoint=entrypoint,
                path=path,
                function=item.attribute,
                line=item.line,
                description=description,
                parameters=schema,
            )
        )
    return flows, unnamed, problems


def _may_define_flows(source: bytes) -> bool:
    """False only for a file that cannot define a flow: it never names `flow`.

    Every form `_flow_names` and `_find_flows` recognise names it (`from prefect import
    flow as f`, `import prefect` then `prefect.flow`, `prefect.flows.flow`). Python reads
    identifiers after NFKC normalisation, so `\ufb02ow` (a ligature) or full-width letters
    are `flow` too: a file that is not plain ASCII is also looked at normalised. One that
    is not UTF-8 is skipped, as before, when it lacks the bytes: it cannot be read as a
    flow file anyway, and saying so would flag every legacy-encoded helper module.
    """
    if b"flow" in source:
        return True
    if source.isascii():
        return False
    try:
        text = source.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return "flow" in unicodedata.normalize("NFKC", text)


_FileFlows = tuple[list[FlowSpec], dict[str, Problem], list[Problem]]


def _parse_or_report(source: bytes, path: str, modules: _RepositoryModules) -> _FileFlows:
    """`_parse_flow_file`, with a bug of ours reported as the file's problem."""
    try:
        return _parse_flow_file(source, path, modules)
    except Exception as exc:  # a bug of ours must not hide the other files
        problem = Problem(
            path,
            0,
            "discovery-failed",
            f"deploy-manager could not read this file: {type(exc).__name__}: {exc}",
            "report this as a deploy-manager bug with the file attached; "
            "its deployments are kept as they are",
        )
        return [], {}, [problem]


def _keyword(decorator: ast.expr, key: str) -> ast.expr | None:
    kwargs = decorator.keywords if isinstance(decorator, ast.Call) else []
    return next((kw.value for kw in kwargs if kw.arg == key), None)


_NAME_REMEDY = (
    "write name= as a string literal, or as a module-level string constant (NAME = 'etl' "
    "above the flow, or imported from a file of the repository), an f-string or a + of such "
    "constants"
)
_OPEN_SCHEMA_REMEDY = (
    "annotate the parameter with a type Prefect knows (builtins, typing, datetime, or a "
    "pydantic model / Enum defined in the flow's file) to get a typed form in the UI"
)
