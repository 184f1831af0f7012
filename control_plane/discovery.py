"""Discovery: the flows and deployments a checkout declares, found without running its code.

A pushed branch is untrusted input, so nothing here imports, executes or `exec`s a
file of the repository: flows are found with `ast` (`@flow`, `@flow(...)`,
`@prefect.flow`, aliases, async flows, `x = flow(fn)`), their names and descriptions are
evaluated from literals and module-level constants (of the file, or of a repository module
it imports), their parameter schemas are translated from the AST
(`control_plane.parameters`), and deployments come from the prefect.yaml files
(`control_plane.prefect_yaml`). Flows that no prefect.yaml lists get a default deployment
unless `deploy-manager.yaml` switches that off, a `deployments: []` switches off their
directory, or their flow name is defined more than once. A flow whose name only running
code could tell is not guessed: it is left out, with a problem.

Every bad input becomes a `Problem` and discovery goes on: one broken file never hides
the good ones. This module does not talk to Prefect, git or Docker and does not apply
environments (naming, work pool defaults): `control_plane.deployments` does that.
"""

from __future__ import annotations

import ast
import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from control_plane.environments import CONFIG_FILE, RepositoryConfig, read_repository_config
from control_plane.errors import Problem
from control_plane.files import RepositoryReader, iter_repository_files, read_repository_bytes
from control_plane.forked import ForkedMap
from control_plane.parameters.names import ModuleContext
from control_plane.parameters.schema import build_parameter_schema
from control_plane.prefect_yaml.models import DeclaredDeployment, PrefectYamlFile
from control_plane.prefect_yaml.parser import parse_prefect_yaml

# Prefect refuses these characters in flow names (prefect.types.names.BANNED_CHARACTERS).
BANNED_NAME_CHARACTERS = ("/", "%", "&", ">", "<")
DEPENDENCY_FILES = ("pyproject.toml", "requirements.txt", "Dockerfile")
# From this many files to parse, a forked child takes half of them (when it is safe):
# below, the fork and the pickling back are a larger share of the gain.
PARALLEL_FROM = 200
# Problems after which a prefect.yaml's deployments are unknown (not one bad entry: the file).
UNREAD_CODES = frozenset(
    {"unreadable-file", "invalid-yaml", "invalid-prefect-yaml", "not-a-prefect-yaml"}
)


@dataclass(frozen=True)
class FlowSpec:
    """One `@flow` function of the repository, as Prefect will know it."""

    name: str
    entrypoint: str  # "relative/path.py:function"
    path: str
    function: str
    line: int
    description: str | None
    parameters: dict[str, Any]
    dependencies: tuple[str, ...] = ()  # nearest pyproject.toml / requirements.txt / Dockerfile
    local_imports: tuple[str, ...] = ()  # repository files the flow's file imports, transitively
    code_fingerprint: str = ""  # digest of the flow's file, its local imports and dependencies


@dataclass(frozen=True)
class DiscoveredDeployment:
    """A deployment the repository asks for, before an environment is applied."""

    declared: DeclaredDeployment
    flow: FlowSpec
    is_default: bool = False  # made from the defaults: no prefect.yaml lists the flow
    prefect_yaml: PrefectYamlFile | None = None

    @property
    def name(self) -> str:
        return self.declared.name

    @property
    def source_file(self) -> str:
        return self.declared.source_file


@dataclass(frozen=True)
class Discovery:
    """What one checkout declares, and what was wrong with it."""

    root: Path
    config: RepositoryConfig
    flows: tuple[FlowSpec, ...]
    deployments: tuple[DiscoveredDeployment, ...]
    prefect_yaml_files: tuple[PrefectYamlFile, ...]
    problems: tuple[Problem, ...]
    python_files_parsed: int = 0
    failed_files: frozenset[str] = field(default_factory=frozenset)

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")


# --- finding flows in one file -------------------------------------------------------


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


# --- names and descriptions Python computes at import ------------------------------------


class _NotStatic(Exception):
    """Only running the repository's code could tell the value; `args[0]` says why."""


_MAX_HOPS = 40  # names and imports followed before giving up
_MAX_TEXT = 10_000  # characters a computed name or description may have


@dataclass(frozen=True)
class _Module:
    """A module of the repository: its file (or directory, for a namespace package)."""

    path: str  # "pkg/mod.py", "pkg/__init__.py", or "pkg" for a package without __init__.py
    context: ModuleContext
    package: str | None = None  # the directory of a package, "" for the root


_EMPTY = ast.Module(body=[], type_ignores=[])
_BINDING_KINDS = {
    "module": "a module",
    "class": "a class",
    "a computed assignment": "assigned conditionally or by unpacking",
}


class _RepositoryModules:
    """The Python files of one checkout, parsed on demand (once) for their top-level names."""

    def __init__(self, files: Iterable[str] = (), read: Callable[[str], bytes] | None = None):
        self.files = frozenset(files)
        self._read = read
        self._parsed: dict[str, _Module | None] = {}
        self._directories: frozenset[str] | None = None

    def directories(self) -> frozenset[str]:
        if self._directories is None:
            found = set()
            for path in self.files:
                directory = _parent(path)
                while directory and directory not in found:
                    found.add(directory)
                    directory = _parent(directory)
            self._directories = frozenset(found)
        return self._directories

    def module(self, dotted_path: str) -> _Module | None:
        """`a/b` as a module: a/b.py, the package a/b/__init__.py, or the namespace package a/b."""
        init = f"{dotted_path}/__init__.py" if dotted_path else "__init__.py"
        if init in self.files:
            found = self._file(init)
            return found and _Module(found.path, found.context, dotted_path)
        if f"{dotted_path}.py" in self.files:
            return self._file(f"{dotted_path}.py")
        if not dotted_path or dotted_path in self.directories():
            return _Module(dotted_path, ModuleContext.from_module(_EMPTY), dotted_path)
        return None

    def _file(self, path: str) -> _Module | None:
        if path not in self._parsed:
            module = None
            try:
                source = self._read(path) if self._read else b""
                tree = ast.parse(source.decode("utf-8-sig"), filename=path)
            except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
                pass  # its own problem is reported where it is parsed as a flow file
            else:
                module = _Module(path, ModuleContext.from_module(tree))
            self._parsed[path] = module
        return self._parsed[path]


class _StaticValues:
    """A flow's `name=` / `description=` worked out from the source, as Python would at import.

    String literals, f-strings and `+` of strings, and names bound to such values at the
    top level of the flow's file or of a repository file it imports them from. Names are
    resolved by `control_plane.parameters.names.ModuleContext`: the binding in force above the
    decorator; a conditional or computed binding is refused, so nothing is ever run.
    Absolute imports are looked up where Prefect's loader finds them: the flow file's
    directory, the repository root (the working directory), then the directories between
    (`src/` layouts); a relative import in the flow file also falls back to the root, as
    Prefect loads the file as a package of both.
    """

    def __init__(self, modules: _RepositoryModules, flow_file: str, context: ModuleContext):
        self.modules = modules
        self.flow = _Module(flow_file, context)
        here = _parent(flow_file)
        between = []
        directory = _parent(here) if here else ""
        while directory:
            between.append(directory)
            directory = _parent(directory)
        self.bases = list(dict.fromkeys([here, "", *between]))

    def evaluate(self, node: ast.expr, before_line: int) -> Any:
        """The value of `node` in the flow's file, or _NotStatic saying why it is unknown."""
        try:
            return self._eval(node, self.flow, before_line, 0)
        except RecursionError as exc:
            raise _NotStatic("it nests too deeply") from exc

    def _eval(self, node: ast.expr, module: _Module, before_line: int | None, hops: int) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return _text("".join(self._part(v, module, before_line, hops) for v in node.values))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left = self._eval(node.left, module, before_line, hops)
            right = self._eval(node.right, module, before_line, hops)
            if isinstance(left, str) and isinstance(right, str):
                return _text(left + right)
            raise _NotStatic(f"{_code(node)} does not add two strings")
        if isinstance(node, ast.Name):
            return self._name(node.id, module, before_line, hops)
        if isinstance(node, ast.Attribute):
            target = self._module_of(node.value, module, before_line)
            return self._name(node.attr, target, None, hops)
        if isinstance(node, ast.Call):
            raise _NotStatic(f"it calls {_code(node)}, which runs at import")
        raise _NotStatic(f"it computes {_code(node)}")

    def _part(self, node: ast.expr, module: _Module, before_line: int | None, hops: int) -> str:
        if isinstance(node, ast.Constant):
            return str(node.value)
        assert isinstance(node, ast.FormattedValue)
        value = self._eval(node.value, module, before_line, hops)
        if type(value) not in (str, int, float, bool):
            raise _NotStatic(f"the f-string formats {_code(node.value)}, which is not a string")
        if node.conversion in (ord("r"), ord("a"), ord("s")):
            convert: dict[str, Callable[[object], str]] = {"r": repr, "a": ascii, "s": str}
            value = convert[chr(node.conversion)](value)
        spec = ""
        if node.format_spec is not None:
            spec = str(self._eval(node.format_spec, module, before_line, hops))
            if re.search(r"\d{4,}", spec):
                raise _NotStatic(f"the f-string pads to {spec!r}")
        try:
            return format(value, spec)
        except (ValueError, TypeError) as exc:
            raise _NotStatic(f"the f-string fails: {exc}") from exc

    def _name(self, name: str, module: _Module, before_line: int | None, hops: int) -> Any:
        if hops > _MAX_HOPS:
            raise _NotStatic(f"'{name}' is defined through too many names")
        binding = module.context._lookup(name, before_line)
        if binding is None or binding is False:
            where = "above the decorator" if module is self.flow else f"in {module.path}"
            if module.package is not None and self.modules.module(
                f"{module.package}/{name}" if module.package else name
            ):
                raise _NotStatic(f"'{name}' is a module, not a string")
            raise _NotStatic(f"'{name}' is not a module-level constant {where}")
        if binding.kind == "assign":
            return self._eval(binding.value, module, binding.line, hops + 1)
        if binding.kind == "import":
            source, attr, level = binding.value
            found = self._import(source, level, module)
            if found is None:
                raise _NotStatic(
                    f"'{name}' is imported from '{'.' * level}{source}', which is not a "
                    "module of this repository"
                )
            return self._name(attr, found, None, hops + 1)
        what = _BINDING_KINDS.get(binding.kind) or _BINDING_KINDS.get(binding.value, binding.value)
        raise _NotStatic(f"'{name}' is {what} (line {binding.line})")

    def _module_of(self, node: ast.expr, module: _Module, before_line: int | None) -> _Module:
        """The repository module that `consts` or `pkg.consts` in `node` refers to."""
        found = None
        if isinstance(node, ast.Attribute):
            parent = self._module_of(node.value, module, before_line)
            found = self._submodule(parent, node.attr)
        elif isinstance(node, ast.Name):
            binding = module.context._lookup(node.id, before_line)
            if binding and binding.kind == "module":
                found = self._import(binding.value, 0, module)
            elif binding and binding.kind == "import":
                source, attr, level = binding.value
                package = self._import(source, level, module)
                found = package and self._submodule(package, attr)
        if found is None:
            raise _NotStatic(f"{_code(node)} is not a module of this repository")
        return found

    def _submodule(self, package: _Module, name: str) -> _Module | None:
        if package.package is None:
            return None
        return self.modules.module(f"{package.package}/{name}" if package.package else name)

    def _import(self, dotted: str, level: int, importer: _Module) -> _Module | None:
        if level:
            base = importer.package if importer.package is not None else _parent(importer.path)
            for _ in range(level - 1):
                if not base:
                    return None
                base = _parent(base)
            bases = [base, ""] if importer is self.flow and level == 1 else [base]
        else:
            bases = self.bases
        relative = dotted.replace(".", "/")
        for base in bases:
            path = "/".join(p for p in (base, relative) if p)
            found = self.modules.module(path)
            if found is not None:
                return found
        return None


def _text(value: str) -> str:
    if len(value) > _MAX_TEXT:
        raise _NotStatic(f"it is longer than {_MAX_TEXT} characters")
    return value


def _code(node: ast.AST) -> str:
    """Source code for a message, in backticks."""
    text = " ".join(ast.unparse(node).split())
    return f"`{text if len(text) <= 60 else text[:57] + '...'}`"


def _parent(path: str) -> str:
    """The directory of a repo-relative posix path; "" for the root."""
    return path.rpartition("/")[0]


def _nearest_dependencies(path: str, existing: set[str]) -> tuple[str, ...]:
    found: list[str] = []
    for kind in DEPENDENCY_FILES:
        directory = _parent(path)
        while True:
            candidate = f"{directory}/{kind}" if directory else kind
            if candidate in existing:
                found.append(candidate)
                break
            if not directory:
                break
            directory = _parent(directory)
    return tuple(found)


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

# --- the whole checkout --------------------------------------------------------------


def discover(
    root: Path, config: RepositoryConfig | None = None, *, parallel: bool | None = None
) -> Discovery:
    """Everything the checkout at `root` declares; `config` defaults to its deploy-manager.yaml.

    `parallel` lets a forked child parse half of the Python files where forking is safe
    (`control_plane.forked`); by default from PARALLEL_FROM files on. The result is the same.
    """
    root = root.resolve()
    problems: list[Problem] = []
    if config is None:
        config, config_problems = read_repository_config(root)
        problems.extend(config_problems)
    files = iter_repository_files(root, config.exclude, config.prefect_files, config.max_file_bytes)
    problems.extend(
        Problem(
            rel,
            0,
            "file-too-large",
            f"{rel} is {size:,} bytes, more than max_file_bytes ({config.max_file_bytes:,}); "
            "it is skipped, and the deployments it defines are kept as they are",
            f"exclude it in {CONFIG_FILE} (exclude: [...]) if it holds no flows, or raise "
            f"max_file_bytes in {CONFIG_FILE}",
            "warning",
        )
        for rel, size in files.too_large
    )
    problems.extend(
        Problem(
            rel,
            0,
            "prefect-file-not-read",
            f"{rel} is named like a prefect.yaml but is not read: the prefect_files patterns "
            f"of {CONFIG_FILE} ({', '.join(config.prefect_files) or 'none'}) do not match it",
            f"to read it, add a pattern to prefect_files in {CONFIG_FILE}, e.g. "
            "prefect_files: ['prefect.yaml', '**/prefect.*.yaml']",
            "info",
        )
        for rel in files.unread_prefect_files
    )
    problems.extend(
        Problem(
            link,
            0,
            "symlink-outside-repo",
            "a symbolic link points outside the repository; it is not followed",
            "replace the link with the file itself",
            "warning",
        )
        for link in files.skipped_symlinks
    )
    problems.extend(
        Problem(
            link,
            0,
            "symlink-broken",
            "a symbolic link that leads nowhere (a loop of links, or a missing target); "
            "it is not read",
            "point the link at a file of the repository, or remove it",
            "warning",
        )
        for link in files.broken_symlinks
    )

    existing = set(files.python)
    reader = RepositoryReader(root)
    existing_all = existing | _dependency_files(reader, files.python)
    graph = _ImportGraph(reader, existing)
    modules = _RepositoryModules(existing, graph.source)
    to_parse: list[tuple[str, bytes]] = []
    for rel in files.python:
        try:
            source = reader.read_bytes(rel)
        except OSError as exc:
            problems.append(Problem(rel, 0, "unreadable-file", str(exc), "check permissions"))
            continue
        graph.remember(rel, source)
        if _may_define_flows(source):
            to_parse.append((rel, source))

    def parse(item: tuple[str, bytes]) -> _FileFlows:
        return _parse_or_report(item[1], item[0], modules)

    # The files are independent: with a free core, a forked child parses a little more
    # than half of them while this process parses the rest and the prefect.yaml files.
    if parallel is None:
        parallel = len(to_parse) >= PARALLEL_FROM
    mine = round(len(to_parse) * 0.45) if parallel else len(to_parse)
    child = ForkedMap(parse, to_parse[mine:]).start()
    try:
        results = [parse(item) for item in to_parse[:mine]]
        yaml_files = tuple(parse_prefect_yaml(root / rel, root) for rel in files.prefect_yaml)
    except BaseException:
        child.cancel()
        raise
    results += child.results()

    flows: list[FlowSpec] = []
    unnamed: dict[str, Problem] = {}
    for found, file_unnamed, file_problems in results:
        problems.extend(file_problems)
        unnamed.update(file_unnamed)
        flows.extend(_with_dependencies(spec, existing_all) for spec in found)
    flows = [_with_code(spec, graph) for spec in flows]
    for yaml_file in yaml_files:
        problems.extend(yaml_file.problems)

    deployments = _match_deployments(flows, unnamed, yaml_files, config, problems, root)
    # A flow whose name is unknown keeps its file's deployments from being pruned.
    failed = (
        frozenset(p.file for p in problems if p.severity == "error")
        | {p.file for p in unnamed.values()}
        | {rel for rel, _ in files.too_large}
    )
    return Discovery(
        root=root,
        config=config,
        flows=tuple(flows),
        deployments=tuple(deployments),
        prefect_yaml_files=yaml_files,
        problems=tuple(sorted(problems, key=lambda p: (p.file, p.line, p.code))),
        python_files_parsed=len(to_parse),
        failed_files=failed,
    )


def _dependency_files(reader: RepositoryReader, python_files: Iterable[str]) -> set[str]:
    """The pyproject.toml / requirements.txt / Dockerfile beside or above any Python file."""
    directories = {""}
    for path in python_files:
        directory = _parent(path)
        while directory not in directories:
            directories.add(directory)
            directory = _parent(directory)
    found: set[str] = set()
    for directory in directories:
        for kind in DEPENDENCY_FILES:
            rel = f"{directory}/{kind}" if directory else kind
            if reader.is_file(rel):
                found.add(rel)
    return found


def _with_dependencies(spec: FlowSpec, existing: set[str]) -> FlowSpec:
    return FlowSpec(**{**spec.__dict__, "dependencies": _nearest_dependencies(spec.path, existing)})


# --- what a flow's code is made of ---------------------------------------------------


_IMPORT_LINE = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<from>\.*[\w.]*)[ \t]+import[ \t]+(?P<names>\([^)]*\)|[^\n#;]+)"
    r"|import[ \t]+(?P<modules>[^\n#;]+))",
    re.MULTILINE,
)


class _ImportGraph:
    """Which repository files a Python file imports, found without running anything.

    A fingerprint needs the files a flow's code is made of, not an exact import
    resolver: import statements are read with a regular expression (any depth, also
    inside functions), absolute imports are looked up from the repository root and from
    every directory above the importing file (Prefect puts the flow file's directory on
    sys.path, and `src/` layouts are common), relative imports from the file's package.
    """

    def __init__(self, reader: RepositoryReader, python_files: set[str]) -> None:
        self.reader = reader
        self.files = python_files
        self.directories = {""}  # every directory that holds a Python file, at any depth
        for rel in python_files:
            directory = _parent(rel)
            while directory not in self.directories:
                self.directories.add(directory)
                directory = _parent(directory)
        self._edges: dict[str, tuple[str, ...]] = {}
        self._closures: dict[str, tuple[str, ...]] = {}
        self._digests: dict[str, str] = {}
        self._texts: dict[str, bytes] = {}

    def _read(self, rel: str) -> bytes:
        if rel not in self._texts:
            try:
                self._texts[rel] = self.reader.read_bytes(rel)
            except OSError:
                self._texts[rel] = b""
        return self._texts[rel]

    def remember(self, rel: str, source: bytes) -> None:
        self._texts[rel] = source

    def source(self, rel: str) -> bytes:
        return self._read(rel)

    def digest(self, rel: str) -> str:
        if rel not in self._digests:
            self._digests[rel] = hashlib.sha256(self._read(rel)).hexdigest()
        return self._digests[rel]

    def _module_files(self, base: str, dotted: str, found: set[str]) -> str | None:
        """Add the files `dotted` imports from `base`; its directory, if it is a package."""
        path = base
        for part in dotted.split("."):
            if not part:
                continue
            if path not in self.directories:
                return None  # nothing deeper can be a file of the repository
            path = f"{path}/{part}" if path else part
            for candidate in (f"{path}/__init__.py", f"{path}.py"):
                if candidate in self.files:
                    found.add(candidate)
        return path if path in self.directories else None

    def imports(self, rel: str) -> tuple[str, ...]:
        if rel in self._edges:
            return self._edges[rel]
        text = self._read(rel).decode("utf-8", errors="replace")
        here = rel.rpartition("/")[0]
        bases = [here]
        while bases[-1]:
            bases.append(bases[-1].rpartition("/")[0])
        found: set[str] = set()
        for match in _IMPORT_LINE.finditer(text):
            if match.group("modules"):
                for item in match.group("modules").split(","):
                    module = item.split()[0] if item.split() else ""
                    for base in bases:
                        self._module_files(base, module, found)
                continue
            source = match.group("from")
            names = [
                n.split()[0]
                for n in match.group("names").strip("()").replace("\\", " ").split(",")
                if n.split() and n.split()[0] != "*"
            ]
            level = len(source) - len(source.lstrip("."))
            module = source[level:]
            if level:
                base = here
                for _ in range(level - 1):
                    base = base.rpartition("/")[0]
                candidates = [base]
            else:
                candidates = bases
            for base in candidates:
                package = self._module_files(base, module, found)
                if package is not None:  # `from package import module` imports a file too
                    for name in names:
                        self._module_files(package, name, found)
        found.discard(rel)
        self._edges[rel] = tuple(sorted(found))
        return self._edges[rel]

    def closure(self, rel: str) -> tuple[str, ...]:
        if rel in self._closures:
            return self._closures[rel]
        seen = {rel}
        todo = [rel]
        while todo:
            for imported in self.imports(todo.pop()):
                if imported not in seen:
                    seen.add(imported)
                    todo.append(imported)
        seen.discard(rel)
        self._closures[rel] = tuple(sorted(seen))
        return self._closures[rel]


def _with_code(spec: FlowSpec, graph: _ImportGraph) -> FlowSpec:
    local = graph.closure(spec.path)
    digest = hashlib.sha256()
    for rel in sorted({spec.path, *local, *spec.dependencies}):
        digest.update(f"{rel}\0{graph.digest(rel)}\n".encode())
    return FlowSpec(
        **{**spec.__dict__, "local_imports": local, "code_fingerprint": digest.hexdigest()[:16]}
    )


def _match_deployments(
    flows: list[FlowSpec],
    unnamed: dict[str, Problem],
    yaml_files: tuple[PrefectYamlFile, ...],
    config: RepositoryConfig,
    problems: list[Problem],
    root: Path,
) -> list[DiscoveredDeployment]:
    by_entrypoint = {flow.entrypoint: flow for flow in flows}
    flow_files = {flow.path for flow in flows}
    broken_files = {p.file for p in problems if p.severity == "error"}
    matched: list[DiscoveredDeployment] = []
    for yaml_file in yaml_files:
        for declared in yaml_file.deployments:
            if declared.flow_entrypoint is None:
                continue  # its problem is already recorded
            flow = by_entrypoint.get(declared.flow_entrypoint)
            if flow is None and declared.flow_entrypoint in unnamed:
                why = unnamed[declared.flow_entrypoint]
                problems.append(
                    Problem(
                        declared.source_file,
                        declared.line,
                        "dynamic-flow-name",
                        f"deployment {declared.name!r} is not applied: the name of its flow "
                        f"{declared.flow_entrypoint} cannot be read without running code "
                        f"(see {why.file}:{why.line}), and Prefect registers a deployment "
                        "under its flow's name",
                        why.remedy,
                    )
                )
                continue
            if flow is None:
                path, _, function = declared.flow_entrypoint.rpartition(":")
                if path in broken_files:
                    continue  # the flow file itself failed; that problem says why
                where = "has no @flow" if path not in flow_files else "has no @flow named"
                known = sorted(f.function for f in flows if f.path == path)
                problems.append(
                    Problem(
                        declared.source_file,
                        declared.line,
                        "entrypoint-not-a-flow",
                        f"deployment {declared.name!r}: entrypoint {declared.flow_entrypoint!r}: "
                        f"{path} {where} {function!r}"
                        + (f"; flows there: {', '.join(known)}" if known else ""),
                        "point the entrypoint at a function decorated with @flow",
                    )
                )
                continue
            matched.append(DiscoveredDeployment(declared, flow, False, yaml_file))

    listed = {d.flow.entrypoint for d in matched}
    # A flow named by a prefect.yaml entry that failed validation gets no default deployment:
    # the user meant to declare it, and a default one would be a surprise. Nor does a flow
    # below a prefect.yaml that could not be read at all (see _without_switched_off).
    mentioned = _mentioned_in_broken_yaml(yaml_files, root)
    if config.default_deployments:
        candidates = [f for f in flows if f.entrypoint not in listed | mentioned]
        candidates = _without_switched_off(candidates, yaml_files, problems)
        defaults = _default_deployments(flows, candidates, listed, problems)
        _say_where_defaults_come_from(defaults, yaml_files, problems)
        matched.extend(defaults)
    return _drop_duplicates(matched, problems)


def _under(path: str, directory: str) -> bool:
    return not directory or path.startswith(directory + "/")


def _without_switched_off(
    flows: list[FlowSpec], yaml_files: tuple[PrefectYamlFile, ...], problems: list[Problem]
) -> list[FlowSpec]:
    """The flows no `deployments: []` switches off, nor an unreadable prefect.yaml covers.

    `deployments: []` in a prefect.yaml means: no deployments for the flows of its
    directory and below (a monorepo's switched-off pipelines). A prefect.yaml that cannot be
    read might say that, or list them: its flows get no default deployment until it is fixed.
    """
    kept = flows
    for yaml_file in yaml_files:
        if yaml_file.deployments_list not in ("empty", "unreadable"):
            continue
        directory = _parent(yaml_file.path)
        held = [f for f in kept if _under(f.path, directory)]
        kept = [f for f in kept if not _under(f.path, directory)]
        if held and yaml_file.deployments_list == "unreadable":
            where = f"under {directory}/" if directory else "of the repository"
            problems.append(
                Problem(
                    yaml_file.path,
                    0,
                    "no-default-deployments",
                    f"{yaml_file.path} could not be read, so the {len(held)} flow(s) {where} "
                    "that no prefect.yaml lists get no default deployment in this run: it may "
                    "list them, or switch them off with deployments: []",
                    f"fix {yaml_file.path} (see its other problem)",
                    "warning",
                )
            )
    return kept


def _say_where_defaults_come_from(
    defaults: list[DiscoveredDeployment],
    yaml_files: tuple[PrefectYamlFile, ...],
    problems: list[Problem],
) -> None:
    """An info for a prefect.yaml without `deployments:` whose flows get default deployments.

    Prefect deploys nothing from such a file with `--all`; it often only holds build, push
    or pull steps for `prefect deploy path.py:flow`. It says nothing about which flows to
    deploy, so they get default deployments like any flow no prefect.yaml lists; the info
    says how to switch them off.
    """
    for yaml_file in yaml_files:
        if yaml_file.deployments_list != "missing":
            continue
        directory = _parent(yaml_file.path)
        covered = [d.flow.entrypoint for d in defaults if _under(d.flow.path, directory)]
        if not covered:
            continue
        shown = ", ".join(covered[:5]) + (
            f" and {len(covered) - 5} more" if len(covered) > 5 else ""
        )
        problems.append(
            Problem(
                yaml_file.path,
                0,
                "no-deployments-list",
                f"{yaml_file.path} has no deployments: list, so it does not say which flows of "
                f"its directory to deploy; {len(covered)} flow(s) there get a default "
                f"deployment: {shown}",
                "list their deployments under deployments:, or write deployments: [] to deploy "
                "none of the flows of this directory",
                "info",
            )
        )


def _default_deployments(
    flows: list[FlowSpec],
    candidates: list[FlowSpec],
    listed: set[str],
    problems: list[Problem],
) -> list[DiscoveredDeployment]:
    """A default deployment for each candidate whose flow name no other flow has.

    One flow name in several places (copies, examples, tutorials) would make the same
    deployment `name/name` several times; no guess is made: none of them gets one, and one
    warning says how to choose.
    """
    by_name: dict[str, list[FlowSpec]] = defaultdict(list)
    for flow in flows:
        by_name[flow.name].append(flow)
    made: list[DiscoveredDeployment] = []
    ambiguous: dict[str, list[FlowSpec]] = defaultdict(list)
    for flow in candidates:
        if len(by_name[flow.name]) == 1:
            made.append(DiscoveredDeployment(_default_declared(flow), flow, True, None))
        else:
            ambiguous[flow.name].append(flow)
    for name, skipped in ambiguous.items():
        same = by_name[name]
        places = ", ".join(f"{f.entrypoint} (line {f.line})" for f in same)
        declared = [f.entrypoint for f in same if f.entrypoint in listed]
        note = f"; {', '.join(declared)} is deployed as a prefect.yaml declares" if declared else ""
        first = skipped[0]
        problems.append(
            Problem(
                first.path,
                first.line,
                "ambiguous-flow-name",
                f"the flow name {name!r} is defined {len(same)} times ({places}); none of "
                f"{', '.join(f.entrypoint for f in skipped)} gets a default deployment, "
                f"which would be {name}/{name} for each{note}",
                "pick one: declare it in a prefect.yaml (deployments: [{name: ..., "
                f"entrypoint: {first.entrypoint}}}]), or exclude the others in "
                "deploy-manager.yaml (exclude: [...]), or give each flow its own name=",
                "warning",
            )
        )
    return made


def _mentioned_in_broken_yaml(yaml_files: tuple[PrefectYamlFile, ...], root: Path) -> set[str]:
    mentioned: set[str] = set()
    for yaml_file in yaml_files:
        if not any(p.severity == "error" for p in yaml_file.problems):
            continue
        try:
            text = read_repository_bytes(root, yaml_file.path).decode("utf-8", "replace")
        except OSError:
            continue
        base = PurePosixPath(yaml_file.path).parent
        for match in re.finditer(r"([\w./-]+\.py:[\w.]+)", text):
            entry = match.group(1)
            mentioned.add(entry)
            mentioned.add((base / entry).as_posix())
    return mentioned


def _default_declared(flow: FlowSpec) -> DeclaredDeployment:
    return DeclaredDeployment(
        name=flow.name,
        entrypoint=flow.entrypoint,
        source_file=flow.path,
        line=flow.line,
        description=flow.description,
    )


def _drop_duplicates(
    deployments: list[DiscoveredDeployment], problems: list[Problem]
) -> list[DiscoveredDeployment]:
    """Two deployments of one flow with one name: Prefect would keep the last; we refuse both."""
    groups: dict[tuple[str, str], list[DiscoveredDeployment]] = defaultdict(list)
    for deployment in deployments:
        groups[(deployment.flow.name, deployment.name)].append(deployment)
    kept: list[DiscoveredDeployment] = []
    for (flow_name, name), group in groups.items():
        if len(group) == 1:
            kept.append(group[0])
            continue
        places = ", ".join(f"{d.source_file}:{d.declared.line}" for d in group)
        for deployment in group:
            problems.append(
                Problem(
                    deployment.source_file,
                    deployment.declared.line,
                    "duplicate-deployment",
                    f"deployment {flow_name}/{name} is declared {len(group)} times ({places}); "
                    "none of them is applied",
                    "give each deployment of a flow its own name",
                )
            )
    return sorted(kept, key=lambda d: (d.flow.name, d.name))
