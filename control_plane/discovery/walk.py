"""`discover`: everything one checkout declares, and what was wrong with it.

It reads deploy-manager.yaml (unless a config is given), walks the checkout
(`control_plane.files`: exclusions, the size limit, links that leave it) and says which
files it skips, parses the Python files that may define flows (`flow_file`) and the
prefect.yaml files, gives each flow its nearest dependency files and its code fingerprint
(`import_graph`), and matches deployments to flows (`matching`). From `PARALLEL_FROM`
files to parse, a forked child parses a little more than half of them where forking is
safe (`control_plane.forked`); the result is the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from control_plane.discovery.flow_file import _FileFlows, _may_define_flows, _parse_or_report
from control_plane.discovery.import_graph import _ImportGraph, _with_code
from control_plane.discovery.matching import _match_deployments
from control_plane.discovery.model import Discovery, FlowSpec, _parent
from control_plane.discovery.static_values import _RepositoryModules
from control_plane.environments import CONFIG_FILE, RepositoryConfig, read_repository_config
from control_plane.errors import Problem
from control_plane.files import RepositoryReader, iter_repository_files
from control_plane.forked import ForkedMap
from control_plane.prefect_yaml.parser import parse_prefect_yaml

DEPENDENCY_FILES = ("pyproject.toml", "requirements.txt", "Dockerfile")
# From this many files to parse, a forked child takes half of them (when it is safe):
# below, the fork and the pickling back are a larger share of the gain.
PARALLEL_FROM = 200


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
