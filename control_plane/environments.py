"""Environments: what a branch of the repository maps to, read from `deploy-manager.yaml`.

A repository may carry a `deploy-manager.yaml` at its root. It says which files to
skip, which files are prefect.yaml files, whether flows that no prefect.yaml lists get a
default deployment, and, per environment, which branches (globs) map to it and what its
deployments look like: name pattern, work pool and queue, default job variables,
parameters and tags, image registry, prune policy. Without the file, `main`/`master` map
to `production`, `develop` to `staging` and any other branch to `preview`.

This module parses and resolves configuration; it reads one file and nothing else. The
file is read with `control_plane.yaml_lines`, as prefect.yaml is: an error names its line.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import pathspec
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from control_plane.errors import ConfigError, Problem
from control_plane.files import DEFAULT_PREFECT_FILES, OutsideRepositoryError, read_repository_bytes
from control_plane.yaml_lines import ExpansionError, data_path, line_at, load_with_lines, plain_copy

CONFIG_FILE = "deploy-manager.yaml"
NAME_PATTERN_FIELDS = ("name", "flow", "environment", "branch")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkPoolDefaults(_Config):
    name: str = Field(
        default="default", description="Work pool of deployments that do not name one."
    )
    work_queue_name: str | None = Field(default=None, description="Work queue in that pool.")
    job_variables: dict[str, Any] = Field(
        default_factory=dict,
        description="Job variables merged under each deployment's own (theirs win).",
    )
    type: str | None = Field(
        default=None,
        description="The pool's worker type (process, docker, kubernetes, ...); "
        "needed with create: true.",
    )
    create: bool = Field(
        default=False,
        description="Create the pool (of `type`) when the server lacks it; never deleted.",
    )

    @model_validator(mode="after")
    def _create_needs_a_type(self) -> WorkPoolDefaults:
        if self.create and not self.type:
            raise ValueError(
                f"work_pool {self.name!r} has create: true but no type; "
                "add type: process (or docker, kubernetes, ...)"
            )
        return self


class PrunePolicy(_Config):
    enabled: bool = Field(
        default=True, description="Delete managed deployments that left the repository."
    )
    max_fraction: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description=(
            "Refuse a prune that would delete more than this fraction of the source's "
            "managed deployments (or all of them) unless forced."
        ),
    )


class Environment(_Config):
    name: str = Field(description="The environment's name, e.g. production.")
    branches: tuple[str, ...] = Field(
        default=("*",), description="Branch globs mapped to this environment; first match wins."
    )
    name_pattern: str = Field(
        default="{name}",
        description=(
            "Deployment name pattern; fields: {name} (the declared name, or the flow name "
            "for default deployments), {flow}, {environment}, {branch}."
        ),
    )
    work_pool: WorkPoolDefaults = Field(default_factory=WorkPoolDefaults)
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Default parameters; a deployment's own win."
    )
    tags: tuple[str, ...] = Field(default=(), description="Tags added to every deployment.")
    image_registry: str | None = Field(
        default=None, description="Registry images are pushed to, e.g. ghcr.io/acme."
    )
    prune: PrunePolicy = Field(default_factory=PrunePolicy)

    @field_validator("name_pattern")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        for field in re.findall(r"{([^{}]*)}", value):
            if field not in NAME_PATTERN_FIELDS:
                raise ValueError(
                    f"unknown field {{{field}}} in name pattern {value!r}; "
                    f"use {', '.join('{' + f + '}' for f in NAME_PATTERN_FIELDS)}"
                )
        return value

    def render_name(self, *, name: str, flow: str, branch: str | None) -> str:
        return self.name_pattern.format(
            name=name,
            flow=flow,
            environment=self.name,
            branch=slugify_branch(branch or "local"),
        )


DEFAULT_ENVIRONMENTS: tuple[Environment, ...] = (
    Environment(name="production", branches=("main", "master")),
    Environment(name="staging", branches=("develop",), name_pattern="{name}-staging"),
    Environment(name="preview", branches=("*",), name_pattern="{name}-{branch}"),
)


class RepositoryConfig(_Config):
    """The whole of deploy-manager.yaml."""

    exclude: tuple[str, ...] = Field(
        default=(), description="Gitignore-style globs of files discovery skips."
    )
    prefect_files: tuple[str, ...] = Field(
        default=DEFAULT_PREFECT_FILES,
        description=(
            "Gitignore-style patterns, relative to the root, of the prefect.yaml files to "
            "read, e.g. ['prefect.yaml', '**/prefect.*.yaml']; default: prefect.yaml (and "
            "prefect.yml) at any depth."
        ),
    )
    max_file_bytes: int = Field(
        default=2_000_000,
        gt=0,
        description=(
            "Python files and prefect.yaml files larger than this are skipped with a warning "
            "(a generated file must not slow or kill a reconcile); their deployments are kept."
        ),
    )
    default_deployments: bool = Field(
        default=True,
        description="Give flows that no prefect.yaml lists a deployment from the defaults.",
    )
    default_environment: str = Field(
        default="production",
        description="Environment used when the checkout has no branch (a local directory).",
    )
    environments: tuple[Environment, ...] = Field(default=DEFAULT_ENVIRONMENTS)

    @field_validator("exclude", "prefect_files")
    @classmethod
    def _gitignore_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                pathspec.GitIgnoreSpec.from_lines([pattern])
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{pattern!r} is not a gitignore-style pattern: {exc}") from exc
        return value

    def environment_for(self, branch: str | None, override: str | None = None) -> Environment:
        """The environment a branch maps to; `override` names one directly."""
        if override is not None:
            for env in self.environments:
                if env.name == override:
                    return env
            known = ", ".join(env.name for env in self.environments)
            raise ConfigError(
                f"unknown environment {override!r}; this repository defines: {known} "
                f"(add it under 'environments:' in {CONFIG_FILE})"
            )
        if branch is None:
            return self.environment_for(None, self.default_environment)
        for env in self.environments:
            if any(fnmatch.fnmatchcase(branch, glob) for glob in env.branches):
                return env
        known = ", ".join(f"{env.name} ({', '.join(env.branches)})" for env in self.environments)
        raise ConfigError(
            f"branch {branch!r} maps to no environment; environments: {known} "
            f"(add a branch glob such as '*' to one of them in {CONFIG_FILE})"
        )


def slugify_branch(branch: str) -> str:
    """A branch name as it can appear in a deployment name or tag: feature/x -> feature-x."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", branch).strip("-")
    return slug or "branch"


class _ConfigFileError(ConfigError):
    """A bad deploy-manager.yaml; `line` is where (0: the whole file)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def parse_repository_config(text: str, file: str = CONFIG_FILE) -> RepositoryConfig:
    """Parse deploy-manager.yaml; raise ConfigError naming the file, line and key."""
    try:
        tree, _ = load_with_lines(text)
        data = plain_copy(tree)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise _ConfigFileError(
            line,
            f"{file}:{line}: invalid YAML: {getattr(exc, 'problem', exc)} "
            "(fix the syntax; `python -c 'import yaml,sys; yaml.safe_load(sys.stdin)'` checks it)",
        ) from exc
    except (ExpansionError, RecursionError) as exc:
        raise _ConfigFileError(
            0,
            f"{file}: invalid YAML: {exc or 'it nests too deeply'} "
            "(use anchors and aliases without cycles, and sparingly)",
        ) from exc
    if data is None:
        return RepositoryConfig()
    if not isinstance(data, dict):
        raise _ConfigFileError(
            1, f"{file}:1: the top level must be a mapping, not {type(data).__name__}"
        )
    raw_envs = data.get("environments")
    if raw_envs is not None:
        if not isinstance(raw_envs, dict):
            raise _ConfigFileError(
                0,
                f"{file}: 'environments' must map environment names to settings, "
                "e.g. 'environments: {production: {branches: [main]}}'",
            )
        for name, entry in raw_envs.items():
            if entry is not None and not isinstance(entry, dict):
                line = line_at(tree, ("environments", name)) or 0
                raise _ConfigFileError(
                    line,
                    f"{file}:{line}: environment {name!r} must be a mapping of settings, not "
                    f"{type(entry).__name__}, e.g. '{name}: {{branches: [main]}}'",
                )
        data = {
            **data,
            "environments": tuple(
                {"name": str(name), **(entry or {})} for name, entry in raw_envs.items()
            ),
        }
    try:
        return RepositoryConfig.model_validate(data)
    except ValidationError as exc:
        loc = _location_in_file(exc.errors()[0]["loc"], raw_envs)
        path = data_path(tree, loc)
        line = line_at(tree, path) if path else 0
        where = f"{file}:{line}" if line else file
        raise _ConfigFileError(
            line,
            f"{where}: {'.'.join(str(part) for part in loc)}: {exc.errors()[0]['msg']} "
            "(see the deploy-manager.yaml reference in README.md)",
        ) from exc


def _location_in_file(loc: tuple[Any, ...], raw_envs: Any) -> tuple[Any, ...]:
    """A pydantic error location, with the index of an environment replaced by its name."""
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "environments" and isinstance(raw_envs, dict):
        names = list(raw_envs)
        if isinstance(parts[1], int) and parts[1] < len(names):
            parts[1] = names[parts[1]]
    return tuple(parts)


def read_repository_config(root: Path) -> tuple[RepositoryConfig, tuple[Problem, ...]]:
    """The repository's config, or the defaults with a problem when the file is bad."""
    path = root / CONFIG_FILE
    if not path.is_file() and not path.is_symlink():
        return RepositoryConfig(), ()
    try:
        text = read_repository_bytes(root, CONFIG_FILE).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        outside = isinstance(exc, OutsideRepositoryError)
        return RepositoryConfig(), (
            Problem(
                file=CONFIG_FILE,
                line=0,
                code="invalid-config",
                message=str(exc) if outside else f"cannot read {CONFIG_FILE}: {exc}",
                remedy="replace the link with the file itself"
                if outside
                else "make it a readable UTF-8 file",
            ),
        )
    try:
        return parse_repository_config(text), ()
    except _ConfigFileError as exc:
        return RepositoryConfig(), (
            Problem(
                file=CONFIG_FILE,
                line=exc.line,
                code="invalid-config",
                message=str(exc),
                remedy=f"fix {CONFIG_FILE}; until then the built-in defaults apply",
            ),
        )
