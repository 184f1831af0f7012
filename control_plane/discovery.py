"""Discovery: the flows and deployments a checkout declares, found without running its code.

A pushed branch is untrusted input, so nothing here imports, executes or `exec`s a
file of the repository: flows are found with `ast` (`@flow`, `@flow(...)`,
`@prefect.flow`, aliases, async flows, `x = flow(fn)`), their parameter schemas are
translated from the AST (`control_plane.parameters`), and deployments come from every
prefect.yaml (`control_plane.prefect_yaml`). Flows that no prefect.yaml lists get a
default deployment unless `deploy-manager.yaml` switches that off.

Every bad input becomes a `Problem` and discovery goes on: one broken file never hides
the good ones. This module does not talk to Prefect, git or Docker and does not apply
environments (naming, work pool defaults): `control_plane.deployments` does that.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from control_plane.environments import RepositoryConfig, read_repository_config
from control_plane.errors import Problem
from control_plane.files import iter_repository_files
from control_plane.parameters import ModuleContext, build_parameter_schema
from control_plane.prefect_yaml import DeclaredDeployment, PrefectYamlFile, parse_prefect_yaml

# Prefect refuses these characters in flow names (prefect.types.names.BANNED_CHARACTERS).
BANNED_NAME_CHARACTERS = ("/", "%", "&", ">", "<")
DEPENDENCY_FILES = ("pyproject.toml", "requirements.txt", "Dockerfile")
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
    is_async: bool = False
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
    files_scanned: int = 0
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


def _literal_kwarg(
    decorator: ast.expr, key: str, path: str, problems: list[Problem]
) -> tuple[bool, Any]:
    """(present, value) of a decorator keyword; a non-literal value is a warning."""
    kwargs = decorator.keywords if isinstance(decorator, ast.Call) else []
    for kw in kwargs:
        if kw.arg != key:
            continue
        try:
            return True, ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            problems.append(
                Problem(
                    file=path,
                    line=kw.value.lineno,
                    code=f"dynamic-flow-{key}",
                    message=(
                        f"the flow's {key}= is computed at import time "
                        f"({ast.unparse(kw.value)[:80]!r}); discovery never runs repository "
                        "code, so the default is used"
                    ),
                    remedy=f"write {key}= as a string literal",
                    severity="warning",
                )
            )
            return False, None
    return False, None


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
    """The flows of one Python file (`path` repo-relative), and its problems."""
    problems: list[Problem] = []
    try:
        text = source.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [
            Problem(
                path,
                0,
                "unreadable-file",
                f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                "save the file as UTF-8",
            )
        ]
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        return [], [
            Problem(
                path,
                exc.lineno or 0,
                "syntax-error",
                f"Python syntax error: {exc.msg}",
                "fix the syntax (`python -m py_compile " + path + "` shows it); "
                "this file's deployments are kept as they are until then",
            )
        ]
    except (ValueError, RecursionError, MemoryError) as exc:
        return [], [
            Problem(
                path,
                0,
                "unparsable-file",
                f"cannot be parsed: {type(exc).__name__}: {str(exc)[:120]}",
                "simplify the file (null bytes or very deep nesting); its deployments are kept",
            )
        ]
    names = _flow_names(tree)
    if not (names.flow_names or names.prefect_modules or names.flows_modules):
        return [], []
    found = _find_flows(tree, names)
    if not found:
        return [], []
    context = ModuleContext.from_module(tree)
    flows: list[FlowSpec] = []
    for item in found:
        fn = item.function
        has_name, name = _literal_kwarg(item.decorator, "name", path, problems)
        if not has_name or not isinstance(name, str) or not name:
            name = fn.name.replace("_", "-")
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
        has_description, description = _literal_kwarg(item.decorator, "description", path, problems)
        if not has_description or not isinstance(description, str):
            description = ast.get_docstring(fn, clean=True)
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
                entrypoint=f"{path}:{item.attribute}",
                path=path,
                function=item.attribute,
                line=item.line,
                description=description,
                parameters=schema,
                is_async=isinstance(fn, ast.AsyncFunctionDef),
            )
        )
    return flows, problems


_OPEN_SCHEMA_REMEDY = (
    "annotate the parameter with a type Prefect knows (builtins, typing, datetime, or a "
    "pydantic model / Enum defined in the flow's file) to get a typed form in the UI"
)

# --- the whole checkout --------------------------------------------------------------


def discover(root: Path, config: RepositoryConfig | None = None) -> Discovery:
    """Everything the checkout at `root` declares; `config` defaults to its deploy-manager.yaml."""
    root = root.resolve()
    problems: list[Problem] = []
    if config is None:
        config, config_problems = read_repository_config(root)
        problems.extend(config_problems)
    files = iter_repository_files(root, config.exclude)
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

    flows: list[FlowSpec] = []
    parsed = 0
    existing = set(files.python)
    existing_all = existing | _dependency_files(root, files.python)
    graph = _ImportGraph(root, existing)
    for rel in files.python:
        try:
            source = (root / rel).read_bytes()
        except OSError as exc:
            problems.append(Problem(rel, 0, "unreadable-file", str(exc), "check permissions"))
            continue
        if b"flow" not in source:
            continue  # cheap pre-filter: no file without the word can define a flow
        parsed += 1
        graph.remember(rel, source)
        try:
            found, file_problems = parse_flow_file(source, rel)
        except Exception as exc:  # a bug of ours must not hide the other files
            found, file_problems = (
                [],
                [
                    Problem(
                        rel,
                        0,
                        "discovery-failed",
                        f"deploy-manager could not read this file: {type(exc).__name__}: {exc}",
                        "report this as a deploy-manager bug with the file attached; "
                        "its deployments are kept as they are",
                    )
                ],
            )
        problems.extend(file_problems)
        flows.extend(_with_dependencies(spec, existing_all) for spec in found)
    flows = [_with_code(spec, graph) for spec in flows]

    yaml_files = tuple(parse_prefect_yaml(root / rel, root) for rel in files.prefect_yaml)
    for yaml_file in yaml_files:
        problems.extend(yaml_file.problems)

    deployments = _match_deployments(flows, yaml_files, config, problems, root)
    failed = frozenset(p.file for p in problems if p.severity == "error")
    return Discovery(
        root=root,
        config=config,
        flows=tuple(flows),
        deployments=tuple(deployments),
        prefect_yaml_files=yaml_files,
        problems=tuple(sorted(problems, key=lambda p: (p.file, p.line, p.code))),
        files_scanned=len(files.python) + len(files.prefect_yaml),
        python_files_parsed=parsed,
        failed_files=failed,
    )


def _dependency_files(root: Path, python_files: Iterable[str]) -> set[str]:
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
            if os.path.isfile(root / rel):
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

    def __init__(self, root: Path, python_files: set[str]) -> None:
        self.root = root
        self.files = python_files
        self._edges: dict[str, tuple[str, ...]] = {}
        self._digests: dict[str, str] = {}
        self._texts: dict[str, bytes] = {}

    def _read(self, rel: str) -> bytes:
        if rel not in self._texts:
            try:
                self._texts[rel] = (self.root / rel).read_bytes()
            except OSError:
                self._texts[rel] = b""
        return self._texts[rel]

    def remember(self, rel: str, source: bytes) -> None:
        self._texts[rel] = source

    def digest(self, rel: str) -> str:
        if rel not in self._digests:
            self._digests[rel] = hashlib.sha256(self._read(rel)).hexdigest()
        return self._digests[rel]

    def _module_files(self, base: str, dotted: str, found: set[str]) -> None:
        path = base
        for part in dotted.split("."):
            if not part:
                continue
            path = f"{path}/{part}" if path else part
            for candidate in (f"{path}/__init__.py", f"{path}.py"):
                if candidate in self.files:
                    found.add(candidate)

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
                self._module_files(base, module, found)
                for name in names:
                    self._module_files(base, f"{module}.{name}" if module else name, found)
        found.discard(rel)
        self._edges[rel] = tuple(sorted(found))
        return self._edges[rel]

    def closure(self, rel: str) -> tuple[str, ...]:
        seen = {rel}
        todo = [rel]
        while todo:
            for imported in self.imports(todo.pop()):
                if imported not in seen:
                    seen.add(imported)
                    todo.append(imported)
        seen.discard(rel)
        return tuple(sorted(seen))


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
            if declared.entrypoint is None:
                continue  # its problem is already recorded
            flow = by_entrypoint.get(declared.entrypoint)
            if flow is None:
                path, _, function = declared.entrypoint.rpartition(":")
                if path in broken_files:
                    continue  # the flow file itself failed; that problem says why
                where = "has no @flow" if path not in flow_files else "has no @flow named"
                known = sorted(f.function for f in flows if f.path == path)
                problems.append(
                    Problem(
                        declared.source_file,
                        declared.line,
                        "entrypoint-not-a-flow",
                        f"deployment {declared.name!r}: entrypoint {declared.entrypoint!r}: "
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
    # below a prefect.yaml that could not be read at all: it may declare that flow.
    mentioned = _mentioned_in_broken_yaml(yaml_files, root)
    unread_dirs = tuple(
        PurePosixPath(f.path).parent.as_posix().removeprefix(".")
        for f in yaml_files
        if any(p.code in UNREAD_CODES for p in f.errors)
    )
    if config.default_deployments:
        for flow in flows:
            if flow.entrypoint in listed or flow.entrypoint in mentioned:
                continue
            if any(not d or flow.path.startswith(f"{d}/") for d in unread_dirs):
                continue
            matched.append(DiscoveredDeployment(_default_declared(flow), flow, True, None))

    return _drop_duplicates(matched, problems)


def _mentioned_in_broken_yaml(yaml_files: tuple[PrefectYamlFile, ...], root: Path) -> set[str]:
    mentioned: set[str] = set()
    for yaml_file in yaml_files:
        if not any(p.severity == "error" for p in yaml_file.problems):
            continue
        try:
            text = (root / yaml_file.path).read_text(encoding="utf-8", errors="replace")
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
