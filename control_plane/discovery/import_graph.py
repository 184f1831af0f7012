"""What a flow's code is made of: the repository files its file imports, and a digest.

`_ImportGraph` finds the files a Python file imports, transitively, without running
anything, and keeps each file's bytes once (`static_values` reads them from it too).
`_with_code` gives a `FlowSpec` its `local_imports` and its `code_fingerprint`: a digest
of its file, those imports and its dependency files.
"""

from __future__ import annotations

import hashlib
import re

from control_plane.discovery.model import FlowSpec, _parent
from control_plane.files import RepositoryReader

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
