"""`parse_prefect_yaml`: one prefect.yaml, read as `prefect deploy --all` reads it.

`_FileParser` reads the file: YAML with lines (`control_plane.yaml_lines`), several
documents, files that are not prefect.yamls (Kubernetes manifests and the like), the top
level and the project's build, push and pull sections. `_EntryParser` reads each
`deployments:` entry into a `DeclaredDeployment`: name, tags, work pool and image,
concurrency, version type, entrypoint, schedules (`schedules`), and which build, push and
pull steps it runs after inheriting the project's. Every failure is a `Problem`, never an
exception; a bad entry costs only itself.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from control_plane.errors import Problem
from control_plane.files import read_repository_bytes
from control_plane.prefect_yaml.entrypoints import ENTRYPOINT_REMEDY, _Entrypoints
from control_plane.prefect_yaml.models import (
    COLLISION_STRATEGIES,
    IGNORED_KEYS,
    KNOWN_TOP_LEVEL_KEYS,
    NOT_APPLIED_KEYS,
    TOP_LEVEL_KEYS,
    VERSION_TYPES,
    ConcurrencyEntry,
    DeclaredDeployment,
    DeploymentEntry,
    DeploymentsList,
    PrefectYamlFile,
    ProjectEntry,
    WorkPoolEntry,
    _jsonable,
    is_templated,
)
from control_plane.prefect_yaml.problems import _show, _suggest
from control_plane.prefect_yaml.schedules import _ScheduleChecks
from control_plane.prefect_yaml.steps import (
    IMAGE_REMEDY,
    INVALID,
    StepsValue,
    _InheritsInvalid,
    _Invalid,
    _known,
    _StepChecks,
    _wrap_single_steps,
    image_problem,
)
from control_plane.yaml_lines import (
    SAFE_LOADER,
    ExpansionError,
    LineMapping,
    LineSequence,
    line_at,
    load_with_lines,
    plain_copy,
)


class _FileParser(_StepChecks):
    """One prefect.yaml: the file, its project-level sections, then each entry."""

    def __init__(self, text: str, path: str, repo_root: Path) -> None:
        super().__init__(path)
        self.text = text
        self.entrypoints = _Entrypoints(repo_root, posixpath.dirname(path))
        self.step_lines: dict[int, tuple[int, ...]] = {}  # by deployment line

    def result(
        self,
        deployments_list: DeploymentsList,
        name: str | None = None,
        sections: Mapping[str, StepsValue] | None = None,
        deployments: tuple[DeclaredDeployment, ...] = (),
    ) -> PrefectYamlFile:
        sections = sections or {}

        def public(value: StepsValue) -> tuple[dict[str, Any], ...] | None:
            return value if isinstance(value, tuple) else None

        return PrefectYamlFile(
            path=self.path,
            name=name,
            build=public(sections.get("build")),
            push=public(sections.get("push")),
            pull=public(sections.get("pull")),
            deployments=deployments,
            problems=tuple(sorted(self.problems, key=lambda p: (p.line, p.code, p.message))),
            deployments_list=deployments_list,
            step_lines=dict(self.step_lines),
        )

    # -- the file --

    def parse(self) -> PrefectYamlFile:
        try:
            tree, duplicates = load_with_lines(self.text)
        except yaml.composer.ComposerError as exc:
            if "expected a single document" not in str(exc.context):
                raise
            return self.several_documents(exc)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            what = ", ".join(str(part) for part in (exc.context, exc.problem) if part)
            self.problem(
                line,
                "invalid-yaml",
                f"invalid YAML at line {line}, column {column}: {what}",
                "fix the YAML syntax (indentation, ':' after keys); quote values that "
                "contain ': ' or start with '{', '[', '*', '&', '!', '@' or '%'",
            )
            return self.result("unreadable")
        except (yaml.YAMLError, RecursionError) as exc:
            self.problem(0, "invalid-yaml", f"invalid YAML: {exc}", "fix the YAML syntax")
            return self.result("unreadable")
        for line, key, first in duplicates:
            self.problem(
                line,
                "duplicate-key",
                f"key {key!r} is given twice in one mapping (first at line {first}); "
                "YAML keeps the last one",
                "remove one of them",
                "warning",
            )
        if tree is None:
            self.problem(
                0,
                "invalid-prefect-yaml",
                "the file is empty; Prefect skips it",
                "add a `deployments:` list, or delete the file",
                "warning",
            )
            return self.result("missing")
        try:
            data = plain_copy(tree)
        except (ExpansionError, RecursionError) as exc:
            self.problem(
                0,
                "invalid-yaml",
                f"the file cannot be expanded: {exc or 'it nests too deeply'}",
                "use anchors and aliases without cycles, and sparingly",
            )
            return self.result("unreadable")
        foreign = _foreign_content(data)
        if foreign:
            self.not_a_prefect_yaml(getattr(tree, "line", 1), foreign)
            return self.result("not-prefect")
        if not isinstance(data, dict):
            looks_like_entries = isinstance(data, list) and any(
                isinstance(item, dict) and {"name", "entrypoint"} & set(item) for item in data
            )
            self.problem(
                getattr(tree, "line", 1),
                "invalid-prefect-yaml",
                f"the top level is a {_kind_of_value(tree)}, not a mapping; Prefect skips the file",
                "put the list under `deployments:`"
                if looks_like_entries
                else "a prefect.yaml is a mapping with a `deployments:` list "
                "(and optional name, build, push, pull, definitions)",
            )
            return self.result("unreadable")
        return self.parse_project(data, tree)

    def several_documents(self, exc: yaml.MarkedYAMLError) -> PrefectYamlFile:
        """A stream of documents (`---`): Kubernetes manifests, say, or two prefect.yamls."""
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        try:
            documents = [d for d in yaml.load_all(self.text, Loader=SAFE_LOADER) if d]
        except (yaml.YAMLError, RecursionError):
            documents = []
        count = f"{len(documents)} YAML documents" if documents else "several YAML documents"
        if any(isinstance(d, dict) and "deployments" in d for d in documents):
            self.problem(
                line,
                "invalid-prefect-yaml",
                f"the file holds {count}, separated by '---' (the next one starts at line "
                f"{line}); Prefect reads a prefect.yaml as one document and fails on this one",
                "keep one document: merge the deployments: lists into one, or put each "
                "document in a file of its own and name those in deploy-manager.yaml's "
                "prefect_files",
            )
            return self.result("unreadable")
        kinds = [_foreign_content(d) for d in documents]
        what = next((k for k in kinds if k), "")
        self.not_a_prefect_yaml(1, f"{count} separated by '---'" + (f", {what}" if what else ""))
        return self.result("not-prefect")

    def not_a_prefect_yaml(self, line: int, what: str) -> None:
        self.problem(
            line,
            "not-a-prefect-yaml",
            f"this is not a prefect.yaml ({what}); a prefect.yaml is one mapping with a "
            "`deployments:` list, so deploy-manager does not read this file for deployments",
            "rename the file, or leave it out with `exclude:` or `prefect_files:` in "
            "deploy-manager.yaml",
            "warning",
        )

    def parse_project(self, data: dict[Any, Any], tree: Any) -> PrefectYamlFile:
        for key in data:
            if key in KNOWN_TOP_LEVEL_KEYS:
                continue
            close = _suggest(str(key), list(KNOWN_TOP_LEVEL_KEYS))
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            self.problem(
                line_at(tree, (key,)),
                "unknown-key",
                f"unknown top-level key {key!r}{hint}; Prefect ignores it",
                f"top-level keys are {', '.join(KNOWN_TOP_LEVEL_KEYS)}; "
                "keep anchors under `definitions:`",
                "warning",
            )
        top = _wrap_single_steps({k: data[k] for k in TOP_LEVEL_KEYS if k in data})
        project, bad = self.validate(ProjectEntry, top, tree, (), "")
        sections: dict[str, StepsValue] = {}
        for section in ("build", "push", "pull"):
            if section in bad:
                sections[section] = INVALID
            else:
                sections[section] = self.steps(getattr(project, section), (section,), tree, "")
        entries = data.get("deployments")
        if entries is None:
            return self.result("missing", project.name, sections)
        if not isinstance(entries, list):
            self.problem(
                line_at(tree, ("deployments",)),
                "invalid-prefect-yaml",
                f"deployments: is {_show(entries)}, not a list; Prefect skips the file",
                "write `deployments:` as a list, one `- name: ...` item per deployment",
            )
            return self.result("unreadable", project.name, sections)
        deployments = []
        for index, entry in enumerate(entries):
            declared = _EntryParser(self, index, entry, tree, sections).parse()
            if declared is not None:
                deployments.append(declared)
        listed: DeploymentsList = "entries" if entries else "empty"
        return self.result(listed, project.name, sections, tuple(deployments))


def _kind_of_value(value: Any) -> str:
    """What a YAML value is, for a message: sequence, str, int, ..."""
    return "sequence" if isinstance(value, LineSequence) else type(value).__name__.lower()


def _foreign_content(data: Any) -> str:
    """What a YAML document named prefect.yaml is instead, or "" when it may be one."""
    if isinstance(data, dict) and "deployments" not in data:
        if {"apiVersion", "kind"} <= set(data):
            return f"a Kubernetes manifest: apiVersion {data['apiVersion']}, kind {data['kind']}"
        keys = [str(key) for key in data]
        known = list(KNOWN_TOP_LEVEL_KEYS)
        if keys and not any(key in known or _suggest(key, known) for key in keys):
            shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
            return f"none of its top-level keys ({shown}) is a prefect.yaml key"
    if (
        isinstance(data, list)
        and data
        and all(isinstance(item, dict) and {"apiVersion", "kind"} <= set(item) for item in data)
    ):
        return "a list of Kubernetes manifests (apiVersion, kind)"
    return ""


class _EntryParser(_ScheduleChecks):
    """One `deployments:` item; its problems go to the file's list."""

    file: _FileParser

    def __init__(
        self,
        file: _FileParser,
        index: int,
        entry: Any,
        tree: LineMapping,
        sections: Mapping[str, StepsValue],
    ) -> None:
        super().__init__(file, index, entry, tree)
        self.sections = sections

    def parse(self) -> DeclaredDeployment | None:
        if not isinstance(self.entry, dict):
            self.problem(
                (),
                "invalid-deployment",
                f"the entry is {_show(self.entry)}, not a mapping",
                "write each deployment as a mapping: - name: ...  entrypoint: ...",
            )
            return None
        data = _wrap_single_steps(self.entry)
        for key, (why, remedy) in IGNORED_KEYS.items():
            if key in data:
                self.problem((key,), "ignored-key", why, remedy, "warning")
                data = {k: v for k, v in data.items() if k != key}
        entry, bad = self.validate(DeploymentEntry, data, ())

        name = self.check_name(entry, bad)
        tags = self.check_tags(entry, bad)
        schedules = self.check_schedules(entry, data, bad)
        limit, options = self.check_concurrency(entry)
        work_pool = self.check_work_pool(entry, data)
        self.check_version_type(entry)
        if "flow_name" in data and "flow_name" not in bad:
            self.problem(
                ("flow_name",),
                "ignored-key",
                "Prefect ignores flow_name: a deployment takes the name of the flow its "
                "entrypoint points at",
                "remove flow_name",
                "warning",
            )
        steps: dict[str, StepsValue] = {}
        for section in ("build", "push", "pull"):
            if section in bad:
                steps[section] = INVALID
            elif section in data:
                value = getattr(entry, section)
                where = (*self.base, section)
                steps[section] = self.file.steps(value, where, self.tree, self.where)
                if isinstance(steps[section], _Invalid):
                    self.errors += 1
        effective = self.effective_steps(data, steps)
        own_pull = effective is not None and effective[2] is not None
        flow_entrypoint = self.check_entrypoint(entry, bad, prefer_directory=own_pull)
        if self.errors or name is None or effective is None:
            return None
        for key, (why, remedy) in NOT_APPLIED_KEYS.items():
            if data.get(key) is not None:
                self.problem((key,), "not-applied", why, remedy, "info")
        build, push, pull = effective
        line = self.line("name") if self.has_own("name") else self.line()
        self.file.step_lines[line] = self.effective_step_lines(data, steps)
        return DeclaredDeployment(
            name=name,
            # With pull steps of its own, Prefect resolves the entrypoint at run time against
            # the working directory they leave; rewriting it would point elsewhere.
            entrypoint=entry.entrypoint if own_pull and flow_entrypoint else flow_entrypoint,
            flow_entrypoint=flow_entrypoint,
            entrypoint_as_declared=own_pull,
            source_file=self.file.path,
            line=line,
            description=entry.description or None,  # "" falls back to the flow's docstring
            version=entry.version or None,
            version_type=entry.version_type,
            tags=tags,
            parameters=_jsonable(entry.parameters),
            work_pool_name=work_pool.name if work_pool else None,
            work_queue_name=work_pool.work_queue_name if work_pool else None,
            job_variables=_jsonable(work_pool.job_variables) if work_pool else {},
            schedules=schedules,
            triggers=tuple(_jsonable(entry.triggers or [])),
            concurrency_limit=limit,
            concurrency_options=options,
            enforce_parameter_schema=entry.enforce_parameter_schema,
            paused=entry.paused,
            build=build,
            push=push,
            pull=pull,
            sla=tuple(_jsonable(entry.sla)) if entry.sla is not None else None,
        )

    # -- fields --

    def check_name(self, entry: DeploymentEntry, bad: set[Any]) -> str | None:
        if "name" in bad:
            return None
        name = entry.name
        if not name:
            self.problem(
                (),
                "missing-name",
                "the deployment has no name; prefect deploy --all skips it",
                "add name: <deployment name> to the entry",
            )
            return None
        if name.endswith(".py"):
            stem = Path(name).stem
            self.problem(
                ("name",),
                "renamed-deployment",
                f"Prefect strips a trailing .py: {name!r} becomes the deployment {stem!r}",
                f"write name: {stem}",
                "warning",
            )
            return stem
        return name

    def check_entrypoint(
        self, entry: DeploymentEntry, bad: set[Any], prefer_directory: bool
    ) -> str | None:
        if "entrypoint" in bad:
            return None
        value = entry.entrypoint
        if not value:
            self.problem(
                (),
                "missing-entrypoint",
                "the deployment has no entrypoint; prefect deploy refuses it",
                f"add entrypoint: ({ENTRYPOINT_REMEDY})",
            )
            return None
        resolved, code, reason, remedy = self.file.entrypoints.resolve(value, prefer_directory)
        if resolved is None:
            self.problem(("entrypoint",), code, f"{value!r}: {reason}", remedy)
        return resolved

    def check_tags(self, entry: DeploymentEntry, bad: set[Any]) -> tuple[str, ...]:
        tags = entry.tags
        if "tags" in bad:
            return ()
        if tags is None:
            if "tags" in self.entry:
                self.problem(
                    ("tags",),
                    "invalid-value",
                    "null is not allowed: prefect deploy fails on it",
                    "remove the key, or give a list of tags",
                )
            return ()
        if isinstance(tags, str):
            if is_templated(tags):
                detail = f"{tags!r}: one template for the whole list cannot be resolved here"
                remedy = "list the tags; templates inside items are fine: tags: ['{{ $TEAM }}']"
            else:
                detail = f"{tags!r} is a string: Prefect would make one tag of each character"
                remedy = f"write a list: tags: [{tags}]"
            self.problem(("tags",), "invalid-value", detail, remedy)
            return ()
        out = []
        for index, tag in enumerate(_jsonable(tags)):
            text = str(tag)  # Prefect's ListOfNonEmptyStrings: str() of each, blanks dropped
            if not text.strip():
                continue
            if not isinstance(tag, str):
                self.problem(
                    ("tags", index),
                    "invalid-value",
                    f"{_show(tag)} is not a string; Prefect makes it the tag {text!r}",
                    f"quote it: '{text}'",
                    "warning",
                )
            out.append(text)
        return tuple(out)

    def check_version_type(self, entry: DeploymentEntry) -> None:
        value = entry.version_type
        if value is None or is_templated(value) or value in VERSION_TYPES:
            return
        self.problem(
            ("version_type",),
            "invalid-value",
            f"{value!r} is not a version type",
            f"use one of {', '.join(VERSION_TYPES)}",
        )

    def check_work_pool(self, entry: DeploymentEntry, data: dict[Any, Any]) -> WorkPoolEntry | None:
        work_pool = entry.work_pool
        if work_pool is None:
            if "work_pool" in data and data["work_pool"] is None:
                self.problem(
                    ("work_pool",),
                    "invalid-value",
                    "null is not allowed: prefect deploy fails on it",
                    "remove the key, or give a mapping {name, work_queue_name, job_variables}",
                )
            return None
        image = work_pool.job_variables.get("image")
        if isinstance(image, str) and not is_templated(image):
            reason = image_problem(image)
            if reason:
                self.problem(
                    ("work_pool", "job_variables", "image"),
                    "invalid-image",
                    f"{image!r} is not a valid image reference: {reason}",
                    IMAGE_REMEDY,
                )
        return work_pool

    def check_concurrency(self, entry: DeploymentEntry) -> tuple[int | None, dict[str, Any] | None]:
        value = entry.concurrency_limit
        if value is None:
            return None, None
        path: tuple[Any, ...] = ("concurrency_limit",)
        if isinstance(value, int):
            if value <= 0:
                self.problem(
                    path,
                    "invalid-concurrency",
                    f"{value} is not a positive integer; the Prefect server refuses it",
                    "give a limit of 1 or more, or remove concurrency_limit",
                )
            return value, None
        spec, _ = self.validate(ConcurrencyEntry, value, path)
        if spec.limit is not None and spec.limit <= 0:
            self.problem(
                (*path, "limit"),
                "invalid-concurrency",
                f"{spec.limit} is not a positive integer; the Prefect server refuses it",
                "give a limit of 1 or more",
            )
        strategy = spec.collision_strategy
        if strategy is None:
            self.problem(
                path,
                "invalid-concurrency",
                "collision_strategy is missing; prefect deploy fails without it when "
                "concurrency_limit is a mapping",
                f"add collision_strategy: one of {', '.join(COLLISION_STRATEGIES)}",
            )
        elif not is_templated(strategy) and strategy not in COLLISION_STRATEGIES:
            hint = (
                f"; did you mean {strategy.upper()!r}?"
                if strategy.upper() in COLLISION_STRATEGIES
                else ""
            )
            self.problem(
                (*path, "collision_strategy"),
                "invalid-concurrency",
                f"{strategy!r} is not a collision strategy{hint}",
                f"use one of {', '.join(COLLISION_STRATEGIES)}",
            )
        grace = spec.grace_period_seconds
        if grace is not None and not 60 <= grace <= 86400:
            self.problem(
                (*path, "grace_period_seconds"),
                "invalid-concurrency",
                f"{grace} is out of range",
                "give 60 to 86400 seconds",
            )
        options: dict[str, Any] = {"collision_strategy": strategy}
        if grace is not None:
            options["grace_period_seconds"] = grace
        return spec.limit, options

    def effective_steps(
        self, data: dict[Any, Any], steps: Mapping[str, StepsValue]
    ) -> tuple[Any, Any, Any] | None:
        """build, push and pull as `prefect deploy` resolves them (`_run_single_deploy`).

        build: the entry's own section when it has the key (null, [] and {} mean none),
        else the project's. push: the entry's when it has steps, else the project's (an
        entry cannot switch a project push off). pull: an explicit [] (the entry's, else
        the project's) means none; else the entry's steps, else the project's, else None:
        Prefect generates its default pull step.
        """
        project = self.sections
        try:
            build = steps.get("build") if "build" in data else _known(project.get("build"))
            push = steps.get("push") or _known(project.get("push"))
            pull = steps.get("pull") if "pull" in data else _known(project.get("pull"))
            if pull != ():
                pull = pull or _known(project.get("pull")) or None
        except _InheritsInvalid:
            self.problem(
                (),
                "invalid-step",
                "not deployed: it inherits a project-level build, push or pull section "
                "that is invalid",
                "fix that section (see its own problem), or give the deployment its own",
            )
            return None
        return build or None, push or None, pull

    def effective_step_lines(
        self, data: dict[Any, Any], steps: Mapping[str, StepsValue]
    ) -> tuple[int, ...]:
        """The lines of the build, then push steps `effective_steps` chose (same rules)."""
        lines = self.file.section_lines
        build = (*self.base, "build") if "build" in data else ("build",)
        push = (*self.base, "push") if steps.get("push") else ("push",)
        return lines.get(build, ()) + lines.get(push, ())


def parse_prefect_yaml(path: Path, repo_root: Path) -> PrefectYamlFile:
    """Read one prefect.yaml of a checkout; every failure is a `Problem`, never an exception."""
    root = repo_root.absolute()
    rel = Path(os.path.relpath(path.absolute(), root)).as_posix()
    try:
        raw = read_repository_bytes(root, rel)
    except OSError as exc:
        problem = Problem(
            rel,
            0,
            "unreadable-file",
            f"cannot read {rel}: {exc}",
            "check that it is a readable file",
        )
        return PrefectYamlFile(rel, None, None, None, None, (), (problem,), "unreadable")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = Problem(
            rel, 0, "invalid-yaml", f"{rel} is not UTF-8 text ({exc})", "save it as UTF-8"
        )
        return PrefectYamlFile(rel, None, None, None, None, (), (problem,), "unreadable")
    return parse_prefect_yaml_text(text, rel, root)


def parse_prefect_yaml_text(text: str, path: str, repo_root: Path) -> PrefectYamlFile:
    """Parse the text of the prefect.yaml at `path` (relative to `repo_root`, posix)."""
    return _FileParser(text, path, repo_root).parse()
