"""A flow's `name=` and `description=`, worked out from source as Python would at import.

`_StaticValues` evaluates literals, f-strings, `+` of strings and names bound at the top
level of the flow's file or of a repository module it imports them from, looked up where
Prefect's loader finds them. `_RepositoryModules` parses those modules on demand, once per
checkout. Whatever only running code could tell raises `_NotStatic`, saying why: nothing
is imported or run, and a conditional or computed binding is refused, not guessed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from control_plane.discovery.model import _parent
from control_plane.parameters.names import ModuleContext


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
