"""Problems of one prefect.yaml, at their YAML lines.

`_FileProblems` collects a file's problems and validates a mapping against a model: each
pydantic error becomes a problem at the line of the YAML that caused it (through
`control_plane.yaml_lines`), with the bad value, what was expected and a remedy; an unknown
key gets the accepted keys and the likely one it was meant to be. `_EntryProblems` is one
`deployments:` entry's view of that: paths from the entry, messages that name it, and a
count of its errors (an entry with errors is not deployed). Also how values and paths are
shown in messages.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from control_plane.errors import Problem, Severity
from control_plane.prefect_yaml.entrypoints import ENTRYPOINT_CODES
from control_plane.prefect_yaml.models import MOVED_KEYS, DeploymentEntry
from control_plane.yaml_lines import LineMapping, data_path, line_at, node_at, value_at

M = TypeVar("M", bound=BaseModel)


def _fmt_path(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = value.isoformat() if isinstance(value, datetime | date) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _suggest(word: str, choices: list[str]) -> list[str]:
    return difflib.get_close_matches(word, choices, n=3, cutoff=0.6)


class _FileProblems:
    """The problems of one prefect.yaml, each at its line; pydantic errors become problems."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(
        self, line: int, code: str, message: str, remedy: str, severity: Severity = "error"
    ) -> None:
        self.problems.append(Problem(self.path, line, code, message, remedy, severity))

    # -- shared with the entries --

    def validate(
        self,
        model: type[M],
        data: dict[Any, Any],
        tree: Any,
        base: tuple[Any, ...],
        where: str,
        shown: tuple[Any, ...] = (),
        codes: Mapping[str, str] | None = None,
        remedies: Mapping[str, str] | None = None,
    ) -> tuple[M, set[Any]]:
        """Validate `data` (found at `base` in the tree); failing fields become problems.

        Returns the model made of the fields that passed, and the keys that failed.
        """
        try:
            return model.model_validate(data), set()
        except ValidationError as exc:
            context = _Context(tree, base, where, shown, codes or {}, remedies or {})
            bad = self.report(exc, model, data, context)
        clean = {k: v for k, v in data.items() if k not in bad}
        try:
            return model.model_validate(clean), bad
        except ValidationError:
            return model.model_construct(), set(data)

    def report(
        self, exc: ValidationError, model: type[BaseModel], data: dict[Any, Any], ctx: _Context
    ) -> set[Any]:
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for error in exc.errors():
            groups.setdefault(data_path(data, error["loc"]), []).append(error)
        bad: set[Any] = set()
        for path, errors in groups.items():
            bad.add(path[0] if path else None)
            if path and any(e["type"] == "extra_forbidden" for e in errors):
                self.unknown_key(path, model, ctx)
                continue
            field = path[0] if path else None
            info = next(
                (info for name, info in model.model_fields.items() if field in (name, info.alias)),
                None,
            )
            description = info.description if info else None
            value = value_at(data, path)
            if value is None:
                detail = f"null is not allowed here; expected {description or 'a value'}"
            elif len(errors) > 1 and description:
                detail = f"{_show(value)} is not valid: expected {description}"
            else:
                reason = errors[0]["msg"][0].lower() + errors[0]["msg"][1:]
                detail = f"{_show(value)} is not valid: {reason}"
            remedy = ctx.remedies.get(str(field)) or (
                f"{field}: {description}" if description else "fix the value"
            )
            self.problem(
                line_at(ctx.tree, ctx.base + path),
                ctx.codes.get(str(field), "invalid-value"),
                f"{ctx.prefix}{_fmt_path(ctx.shown + path)}: {detail}",
                remedy,
            )
        return bad

    def unknown_key(self, path: tuple[Any, ...], model: type[BaseModel], ctx: _Context) -> None:
        key, parent = path[-1], path[:-1]
        owner = model
        for part in parent:  # the nested model that refused the key
            info = owner.model_fields.get(part) if isinstance(part, str) else None
            annotation = info.annotation if info else None
            options = getattr(annotation, "__args__", (annotation,))
            owner = next(
                (o for o in options if isinstance(o, type) and issubclass(o, BaseModel)), owner
            )
        accepted = sorted(owner.model_fields)
        moved = MOVED_KEYS if owner is DeploymentEntry else {}
        close = _suggest(str(key), accepted + list(moved))
        if str(key) in moved:
            close.insert(0, str(key))
        suggestions = list(dict.fromkeys(moved.get(c, c) for c in close))
        hint = f"; did you mean {', '.join(map(repr, suggestions))}?" if suggestions else ""
        inside = f"{_fmt_path(ctx.shown + parent)}: " if ctx.shown + parent else ""
        self.problem(
            line_at(ctx.tree, ctx.base + path),
            "unknown-key",
            f"{ctx.prefix}{inside}unknown key {key!r}{hint}",
            f"remove or rename it; accepted keys here: {', '.join(accepted)}",
        )


@dataclass(frozen=True)
class _Context:
    """Where a validated mapping sits: in the tree (`base`) and in messages (`shown`)."""

    tree: Any
    base: tuple[Any, ...]
    where: str
    shown: tuple[Any, ...]
    codes: Mapping[str, str]
    remedies: Mapping[str, str]

    @property
    def prefix(self) -> str:
        return f"{self.where}: " if self.where else ""


class _EntryProblems:
    """One `deployments:` item's view of its file's problems: paths from the entry."""

    def __init__(self, file: _FileProblems, index: int, entry: Any, tree: LineMapping) -> None:
        self.file = file
        self.entry = entry
        self.tree = tree
        self.base: tuple[Any, ...] = ("deployments", index)
        name = entry.get("name") if isinstance(entry, dict) else None
        self.where = f"deployments[{index}]" + (f" {name!r}" if isinstance(name, str) else "")
        self.errors = 0

    def line(self, *path: Any) -> int:
        return line_at(self.tree, self.base + path)

    def has_own(self, key: str) -> bool:
        """Whether the entry itself has `key` (not through a `<<:` merge)."""
        node, _ = node_at(self.tree, self.base)
        return isinstance(node, LineMapping) and key in node.own_keys

    def problem(
        self,
        path: tuple[Any, ...],
        code: str,
        detail: str,
        remedy: str,
        severity: Severity = "error",
    ) -> None:
        where = f"{self.where}: {_fmt_path(path)}: " if path else f"{self.where}: "
        self.file.problem(self.line(*path), code, where + detail, remedy, severity)
        if severity == "error" and code not in ENTRYPOINT_CODES:
            self.errors += 1

    def validate(
        self,
        model: type[M],
        data: dict[Any, Any],
        path: tuple[Any, ...],
        codes: Mapping[str, str] | None = None,
        remedies: Mapping[str, str] | None = None,
    ) -> tuple[M, set[Any]]:
        before = len(self.file.problems)
        result = self.file.validate(
            model, data, self.tree, self.base + path, self.where, path, codes, remedies
        )
        self.errors += sum(p.severity == "error" for p in self.file.problems[before:])
        return result
