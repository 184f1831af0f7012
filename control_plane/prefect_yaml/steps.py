"""The build, push and pull sections of a prefect.yaml, and the image references in them.

`_StepChecks.steps` checks a section the way Prefect runs it (one function per step, its
arguments a mapping; `image_name` and tags of the docker steps checked against docker's
reference grammar) and records each step's line. Which sections an entry finally runs
(its own or the project's) is decided by the parser (`_EntryParser.effective_steps`);
`INVALID` marks a project section that failed, so that no entry inheriting it is deployed.
`image_problem` says why a string is not an image reference.
"""

from __future__ import annotations

import re
from typing import Any

from control_plane.prefect_yaml.models import (
    BUILD_DOCKER_IMAGE,
    PUSH_DOCKER_IMAGE,
    _jsonable,
    is_templated,
)
from control_plane.prefect_yaml.problems import _FileProblems, _fmt_path, _show
from control_plane.yaml_lines import line_at

IMAGE_REMEDY = (
    "an image is [registry[:port]/]lowercase/path[:tag][@digest], "
    "e.g. 'registry.example.com:5000/team/app:1.2.0'"
)


# The reference grammar of docker's distribution/reference.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
NAME_PATTERN = re.compile(_NAME)
TAG_PATTERN = re.compile(_TAG)
REFERENCE_PATTERN = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?")


def image_problem(value: str, *, repository_only: bool = False) -> str | None:
    """Why `value` is not an image reference (a repository name if `repository_only`)."""
    if not value:
        return "it is empty"
    if any(char.isspace() for char in value):
        return "it contains whitespace"
    match = (NAME_PATTERN if repository_only else REFERENCE_PATTERN).fullmatch(value)
    if match:
        name = value if repository_only else match.group("name")
        return "the name is longer than 255 characters" if len(name) > 255 else None
    rest, at, _ = value.partition("@")
    head, _, tail = rest.rpartition("/")
    last, colon, tag = tail.partition(":")
    if repository_only and (colon or at):
        return "image_name must not carry a tag or digest; give the tag in `tag:`"
    if colon and not TAG_PATTERN.fullmatch(tag):
        return f"tag {tag!r} is not valid (letters, digits, '_', '.', '-'; at most 128)"
    path = f"{head}/{last}" if head else last
    first, _, remainder = path.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        path = remainder
    if path != path.lower():
        return "repository names must be lowercase"
    if at:
        return "the digest is not algorithm:hex (e.g. sha256:<64 hex digits>)"
    return "separators ('.', '_', '__', '-') go between letters and digits only"


class _Invalid:
    """A project-level section that failed validation: what inherits it is not returned."""


INVALID = _Invalid()
StepsValue = tuple[dict[str, Any], ...] | dict[str, Any] | _Invalid | None


def _wrap_single_steps(data: dict[Any, Any]) -> dict[Any, Any]:
    """Prefect's `_wrap_single_action_mappings`: one step given as a mapping is a list."""
    updates = {
        section: [value]
        for section in ("build", "push", "pull")
        if isinstance(value := data.get(section), dict) and value
    }
    return {**data, **updates} if updates else data


class _InheritsInvalid(Exception):
    pass


def _known(value: StepsValue) -> tuple[dict[str, Any], ...] | dict[str, Any] | None:
    if isinstance(value, _Invalid):
        raise _InheritsInvalid
    return value


class _StepChecks(_FileProblems):
    """The build, push and pull sections of one prefect.yaml, checked as Prefect runs them."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.section_lines: dict[tuple[Any, ...], tuple[int, ...]] = {}  # by section path

    def steps(self, value: Any, base: tuple[Any, ...], tree: Any, where: str) -> StepsValue:
        """A validated build/push/pull section: None, {} (an empty mapping) or its steps."""
        if value is None or isinstance(value, dict):
            return value  # a non-empty mapping was wrapped into a list before validation
        ok = True
        prefix = f"{where}: " if where else ""
        shown = base[2:] if where else base
        for index, step in enumerate(value):
            if not step:
                continue  # Prefect skips empty steps
            path = (*base, index)
            here = f"{prefix}{_fmt_path((*shown, index))}"
            if len(step) > 1:
                ok = False
                self.problem(
                    line_at(tree, path),
                    "invalid-step",
                    f"{here}: a step has one key, the function to run; this one has "
                    f"{len(step)}: {', '.join(map(repr, step))}",
                    "indent the step's arguments under its function name",
                )
                continue
            [(function, inputs)] = step.items()
            if not isinstance(inputs, dict):
                ok = False
                self.problem(
                    line_at(tree, (*path, function)),
                    "invalid-step",
                    f"{here}: the arguments of {function} are {_show(inputs)}, not a mapping",
                    "give the step's arguments as a mapping ({} for none)",
                )
            elif function in (BUILD_DOCKER_IMAGE, PUSH_DOCKER_IMAGE):
                ok = self.docker_step(function, inputs, (*path, function), tree, here) and ok
        if ok:
            self.section_lines[base] = tuple(
                line_at(tree, (*base, index, *step)) for index, step in enumerate(value)
            )
        return tuple(_jsonable(value)) if ok else INVALID

    def docker_step(
        self, function: str, inputs: dict[str, Any], path: tuple[Any, ...], tree: Any, here: str
    ) -> bool:
        short = function.rsplit(".", 1)[-1]
        if "image_name" not in inputs:
            self.problem(
                line_at(tree, path),
                "invalid-step",
                f"{here}: {short} needs image_name",
                "add image_name: registry/repository (without a tag)",
            )
            return False
        checks: list[tuple[tuple[Any, ...], Any, bool]] = [
            (("image_name",), inputs["image_name"], True)
        ]
        if inputs.get("tag") is not None:
            checks.append((("tag",), inputs["tag"], False))
        if isinstance(extra := inputs.get("additional_tags"), list):
            checks.extend((("additional_tags", i), tag, False) for i, tag in enumerate(extra))
        ok = True
        for sub, value, is_name in checks:
            if not isinstance(value, str) or is_templated(value):
                continue
            if is_name:
                reason = image_problem(value, repository_only=True)
            elif not TAG_PATTERN.fullmatch(value):
                reason = (
                    "a tag is up to 128 of letters, digits, '_', '.', '-', not first '.' or '-'"
                )
            else:
                reason = None
            if reason:
                ok = False
                kind = "image name" if is_name else "image tag"
                self.problem(
                    line_at(tree, path + sub),
                    "invalid-image",
                    f"{here}.{_fmt_path(sub)}: {value!r} is not a valid {kind}: {reason}",
                    IMAGE_REMEDY,
                )
        return ok
