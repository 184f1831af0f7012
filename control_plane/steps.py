"""Steps: the build and push steps each deployment runs, and what its fields take from them.

`prefect deploy` runs a deployment's build steps, then its push steps, and templates the
deployment's fields with their outputs (`{{ build-image.image }}`,
`{{ get-commit-hash.stdout }}`). This module is the pure part of doing the same at apply
time:

- `StepPolicy`: which step functions may run at all. The operator decides (the
  deploy-manager flow's `allowed_steps`), never the repository; a step outside the policy
  is a `Problem` at its file and line, and the deployments that would run it are neither
  registered nor pruned (`check_step_policy`).
- `plan_step_runs`: the distinct step runs a set of deployments needs. Steps are run as
  a tree of prefixes: deployments whose sequences start alike share those runs, so the
  root `build:` that every deployment of a monorepo inherits runs once.
- `step_references`, `render_pending`: which fields use which step outputs, and those
  fields as a plan shows them before any step ran (`<from step build-image>`): the CLI
  `plan` and dry runs run no steps.
- `redact_plan`: a plan's field diffs without the values templating took from blocks.

It imports no Prefect and runs nothing; running steps with Prefect's `run_step` and
applying Prefect's templating is `control_plane.prefect_steps`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from control_plane.deployments import DeploymentSpec
from control_plane.errors import Problem
from control_plane.plans import FieldDiff, Plan
from control_plane.prefect_yaml.models import PLACEHOLDER

# The step functions Prefect and prefect-docker ship, by every name `prefect deploy`
# imports them under. Globs over module paths would let more through than steps:
# `prefect.deployments.steps.run_step` runs any step it is given, `...core.import_object`
# and `...core.install_packages` run or install whatever a repository names.
PREFECT_STEPS = (
    "prefect.deployments.steps.git_clone",
    "prefect.deployments.steps.pull.git_clone",
    "prefect.deployments.steps.set_working_directory",
    "prefect.deployments.steps.pull.set_working_directory",
    "prefect.deployments.steps.pull_from_remote_storage",
    "prefect.deployments.steps.pull.pull_from_remote_storage",
    "prefect.deployments.steps.pull_with_block",
    "prefect.deployments.steps.pull.pull_with_block",
    "prefect.deployments.steps.run_shell_script",
    "prefect.deployments.steps.utility.run_shell_script",
    "prefect.deployments.steps.pip_install_requirements",
    "prefect.deployments.steps.utility.pip_install_requirements",
)
PREFECT_DOCKER_STEPS = (
    "prefect_docker.deployments.steps.build_docker_image",
    "prefect_docker.deployments.steps.push_docker_image",
)
DEFAULT_ALLOWED_STEPS = (*PREFECT_STEPS, *PREFECT_DOCKER_STEPS)
# Steps that run what the repository says on deploy-manager's own machine.
CODE_RUNNING_STEPS = tuple(
    step
    for step in PREFECT_STEPS
    if step.endswith(("run_shell_script", "pip_install_requirements"))
)
# Environments that branches from anyone deploy to: no code-running steps by default.
UNTRUSTED_ENVIRONMENTS = frozenset({"preview"})
# Never allowed, whatever a glob says: they run other steps, or import or install code.
STEP_RUNNERS = re.compile(r"prefect\.deployments\.steps\.(run_step|core\..*)")
DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
STEP_NOT_ALLOWED = "step-not-allowed"

Section = Literal["build", "push"]


def _glob(pattern: str) -> re.Pattern[str]:
    """A glob over dotted names: `*` stays within one name, `**` crosses dots."""
    parts = re.split(r"(\*\*|\*)", pattern)
    regex = "".join(
        ".*" if part == "**" else r"[^.]*" if part == "*" else re.escape(part) for part in parts
    )
    return re.compile(regex)


@dataclass(frozen=True)
class StepPolicy:
    """Which step functions a prefect.yaml may run: the operator's list, not the repository's.

    `allowed` are dotted function names or globs (`*` within one name, `**` across dots).
    A step is written as a dotted name (`module.function`); `module:function` and
    `path.py:function`, which Prefect would also import, are never allowed.
    """

    allowed: tuple[str, ...] = DEFAULT_ALLOWED_STEPS
    environment: str | None = None
    default: bool = True  # the default list (shown shortened in messages)

    @classmethod
    def for_environment(cls, environment: str, allowed: Sequence[str] | None = None) -> StepPolicy:
        """The operator's list when given (in every environment), else the default.

        The default is Prefect's and prefect-docker's built-in steps; in an untrusted
        environment (`preview`) without `run_shell_script` and `pip_install_requirements`.
        """
        if allowed:
            return cls(tuple(allowed), environment, default=False)
        steps: tuple[str, ...] = DEFAULT_ALLOWED_STEPS
        if environment in UNTRUSTED_ENVIRONMENTS:
            steps = tuple(s for s in steps if s not in CODE_RUNNING_STEPS)
        return cls(steps, environment)

    def refusal(self, function: str) -> str | None:
        """Why `function` may not run, or None when it may."""
        if not DOTTED_NAME.fullmatch(function):
            return "only dotted names of installed functions (package.module.function) can run"
        if STEP_RUNNERS.fullmatch(function):
            return "it would run or install code the allow-list never sees"
        if any(_glob(pattern).fullmatch(function) for pattern in self.allowed):
            return None
        where = f" of environment {self.environment!r}" if self.environment else ""
        if function in CODE_RUNNING_STEPS and self.default:
            return (
                "it runs the repository's own commands on deploy-manager's machine, which the "
                f"default allow-list{where} does not permit: branches from anyone land there"
            )
        return f"it is not in deploy-manager's allow-list{where} ({self.describe()})"

    def describe(self) -> str:
        if self.default:
            shown = ["prefect.deployments.steps.*", "prefect_docker.deployments.steps.*"]
            if not any(s in self.allowed for s in CODE_RUNNING_STEPS):
                shown.append("without run_shell_script and pip_install_requirements")
            return "default: " + ", ".join(shown)
        return "allowed: " + ", ".join(self.allowed)


# --- the steps of a deployment ---------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One build or push step as written: `{function: inputs}`, `id` and `requires` included."""

    function: str
    inputs: Mapping[str, Any]
    section: Section
    line: int = 0

    @property
    def id(self) -> str | None:
        """The id its outputs are filed under (`run_steps` reads it before templating)."""
        value = self.inputs.get("id")
        return str(value) if value else None

    @property
    def label(self) -> str:
        """What a person reads in the UI: the id, else the function's own name."""
        return self.id or self.function.rsplit(".", 1)[-1]

    @property
    def as_prefect_step(self) -> dict[str, Any]:
        return {self.function: dict(self.inputs)}


def deployment_steps(spec: DeploymentSpec, lines: Sequence[int] = ()) -> tuple[Step, ...]:
    """The build steps, then the push steps `prefect deploy` runs for `spec`.

    `spec.build_steps` / `push_steps` already follow Prefect's override rules (the
    parser applies them); empty steps are skipped, as `run_steps` does. `lines` are the
    steps' lines in their file, in the same order (`PrefectYamlFile.step_lines`).
    """
    steps: list[Step] = []
    written = [("build", s) for s in spec.build_steps or ()]
    written += [("push", s) for s in spec.push_steps or ()]
    for index, (section, step) in enumerate(written):
        if not step:
            continue
        ((function, inputs),) = step.items()
        line = lines[index] if index < len(lines) else spec.source_line
        steps.append(Step(function, dict(inputs or {}), section, line))  # type: ignore[arg-type]
    return tuple(steps)


def check_step_policy(
    specs: Iterable[DeploymentSpec],
    policy: StepPolicy,
    step_lines: Mapping[tuple[str, int], Sequence[int]] | None = None,
) -> tuple[tuple[Problem, ...], frozenset[str]]:
    """The steps the policy refuses, one `Problem` per written step, and who would run them.

    `step_lines` maps (prefect.yaml, deployment line) to the lines of its steps.
    """
    step_lines = step_lines or {}
    refused: dict[tuple[str, int, str], list[str]] = {}
    reasons: dict[str, str] = {}
    for spec in specs:
        lines = step_lines.get((spec.source_file, spec.source_line), ())
        for step in deployment_steps(spec, lines):
            reason = policy.refusal(step.function)
            if reason is None:
                continue
            reasons[step.function] = reason
            key = (spec.source_file, step.line, step.function)
            refused.setdefault(key, []).append(spec.full_name)
    problems = []
    for (file, line, function), users in sorted(refused.items()):
        shown = ", ".join(sorted(users)[:5]) + (", ..." if len(users) > 5 else "")
        problems.append(
            Problem(
                file,
                line,
                STEP_NOT_ALLOWED,
                f"step {function} may not run: {reasons[function]}; not registered (what the "
                f"server has is kept): {shown}",
                "use an allowed step, or ask whoever runs deploy-manager to allow this one "
                "(the flow's allowed_steps parameter, CLI --allow-step)",
            )
        )
    blocked = frozenset(name for users in refused.values() for name in users)
    return tuple(problems), blocked


# --- the runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRun:
    """One step to run once: the last of a sequence of steps some deployments start with."""

    key: str  # the digest of the sequence up to and including this step
    parent: str | None  # the run whose outputs this one starts from
    step: Step
    name: str  # the task run's name: step[<id or function>]
    used_by: tuple[str, ...]  # the deployments (flow/name) whose steps include it


@dataclass(frozen=True)
class StepRuns:
    """The step runs of a reconcile, parents before children, and each deployment's last run."""

    runs: tuple[StepRun, ...] = ()
    last: Mapping[str, str] = dataclasses.field(default_factory=dict)  # full name -> run key

    def children(self, key: str | None) -> tuple[StepRun, ...]:
        return tuple(run for run in self.runs if run.parent == key)

    def chain(self, full_name: str) -> tuple[StepRun, ...]:
        """The runs of one deployment, first to last."""
        by_key = {run.key: run for run in self.runs}
        chain = []
        key: str | None = self.last.get(full_name)
        while key is not None:
            chain.append(by_key[key])
            key = by_key[key].parent
        return tuple(reversed(chain))


def _digest(parent: str | None, step: Step) -> str:
    text = json.dumps([parent, step.function, step.inputs], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_step_runs(specs: Iterable[DeploymentSpec]) -> StepRuns:
    """The distinct step runs of `specs`: a step runs once per distinct sequence before it.

    A step's outputs depend on it and the steps before it (and the checkout, the same for
    all), so two deployments whose sequences start alike share the runs of that start.
    """
    runs: dict[str, StepRun] = {}
    users: dict[str, list[str]] = {}
    last: dict[str, str] = {}
    for spec in specs:
        parent: str | None = None
        for step in deployment_steps(spec):
            key = _digest(parent, step)
            runs.setdefault(key, StepRun(key, parent, step, "", ()))
            users.setdefault(key, []).append(spec.full_name)
            parent = key
        if parent is not None:
            last[spec.full_name] = parent
    seen: dict[str, int] = {}
    named = []
    for run in runs.values():
        seen[run.step.label] = seen.get(run.step.label, 0) + 1
        count = seen[run.step.label]
        name = f"step[{run.step.label}{f'#{count}' if count > 1 else ''}]"
        named.append(dataclasses.replace(run, name=name, used_by=tuple(users[run.key])))
    return StepRuns(tuple(named), last)


# --- templates that take step outputs ---------------------------------------------------

# The fields `prefect deploy` templates with step outputs, as DeploymentSpec names them.
TEMPLATED_FIELDS = (
    "version",
    "description",
    "tags",
    "parameters",
    "work_pool_name",
    "work_queue_name",
    "job_variables",
    "schedules",
    "triggers",
    "pull_steps",
)
KEPT_PREFIXES = ("prefect.blocks.", "prefect.variables.", "$", "ctx.")


def _step_placeholders(value: Any, *, in_trigger: bool = False) -> Iterable[str]:
    """The names of the placeholders in `value` that only step outputs can fill."""
    if isinstance(value, str):
        for _, name in PLACEHOLDER.findall(value):
            if not name.startswith(KEPT_PREFIXES):
                yield name
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not (in_trigger and key == "parameters"):  # event templates, for later
                yield from _step_placeholders(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _step_placeholders(item, in_trigger=in_trigger)


def _source(name: str, ids: Iterable[str]) -> str | None:
    """The step id a placeholder reads (`build-image.image` -> `build-image`), if any."""
    first = re.split(r"[.\[]", name, maxsplit=1)[0]
    return first if first in set(ids) else None


def step_references(spec: DeploymentSpec) -> dict[str, tuple[str, ...]]:
    """Per templated field, the step ids (or bare output names) its placeholders read.

    In pull steps only build/push step ids count: the rest is the worker's (a pull
    step's own outputs, `{{ clone.directory }}`).
    """
    ids = [s.id for s in deployment_steps(spec) if s.id]
    found = {}
    for field in TEMPLATED_FIELDS:
        value = getattr(spec, field)
        names = _step_placeholders(value, in_trigger=field == "triggers")
        if field == "pull_steps":
            sources = sorted({s for s in (_source(name, ids) for name in names) if s})
        else:
            sources = sorted({_source(name, ids) or name for name in names})
        if sources:
            found[field] = tuple(sources)
    return found


def pending_marker(name: str, ids: Iterable[str]) -> str:
    """What a plan shows for a placeholder only a step can fill (a bare output name, as
    `run_steps` also files each output under its own keys, names no step)."""
    source = _source(name, ids)
    return f"<from step {source}>" if source else f"<from steps: {name}>"


def _render(
    value: Any, ids: Sequence[str], *, in_trigger: bool = False, in_pull: bool = False
) -> Any:
    if isinstance(value, str):

        def marker(match: re.Match[str]) -> str:
            name = match.group(2)
            if name.startswith(KEPT_PREFIXES) or (in_pull and _source(name, ids) is None):
                return match.group(1)
            return pending_marker(name, ids)

        return PLACEHOLDER.sub(marker, value)
    if isinstance(value, Mapping):
        return {
            key: item if in_trigger and key == "parameters" else _render(item, ids, in_pull=in_pull)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(
            _render(item, ids, in_trigger=in_trigger, in_pull=in_pull) for item in value
        )
    return value


def render_pending(spec: DeploymentSpec) -> DeploymentSpec:
    """`spec` as a plan shows it before its steps ran: `<from step build-image>` for each
    placeholder a step output fills; block, variable and environment templates are left,
    and so are the pull steps' own (`{{ clone.directory }}`)."""
    ids = [s.id for s in deployment_steps(spec) if s.id]
    update = {
        field: _render(
            getattr(spec, field),
            ids,
            in_trigger=field == "triggers",
            in_pull=field == "pull_steps",
        )
        for field in TEMPLATED_FIELDS
    }
    if update["tags"] != list(spec.tags):
        update["tags"] = tuple(sorted(set(update["tags"])))
    return spec.model_copy(update=update)


# --- secrets ----------------------------------------------------------------------------

REDACTED = "<from a block>"
MIN_INLINE_SECRET = 8  # shorter values are masked only where they are the whole value


def _redact(value: Any, secrets: frozenset[str]) -> Any:
    if isinstance(value, str):
        if value in secrets:
            return REDACTED
        for secret in secrets:
            if len(secret) >= MIN_INLINE_SECRET and secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {key: _redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, secrets) for item in value]
    return value


def block_paths(spec: DeploymentSpec) -> frozenset[tuple[Any, ...]]:
    """Where in `spec` a `{{ prefect.blocks.* }}` template sits: (field, key, ...).

    `prefect deploy` writes what such a template resolves to; the value there, before and
    after, is a block's, however it changed since.
    """
    found: set[tuple[Any, ...]] = set()

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, str):
            names = (name for _, name in PLACEHOLDER.findall(value))
            if any(name.startswith("prefect.blocks.") for name in names):
                found.add(path)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, (*path, key))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(item, (*path, index))

    for field in TEMPLATED_FIELDS:
        if field != "pull_steps":  # the worker resolves those; they stay templates
            walk(getattr(spec, field), (field,))
    return frozenset(found)


def _redact_at(value: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return REDACTED
    key, rest = path[0], path[1:]
    if isinstance(value, Mapping) and key in value:
        return {k: _redact_at(v, rest) if k == key else v for k, v in value.items()}
    if isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
        return [_redact_at(v, rest) if i == key else v for i, v in enumerate(value)]
    return value


def redact_plan(
    plan: Plan,
    secrets: Iterable[str] = (),
    paths: Mapping[str, Iterable[tuple[Any, ...]]] | None = None,
) -> Plan:
    """The plan with block values hidden in its field diffs, which plans, reports,
    artifacts and messages show: wherever a block template sits (`paths`, by flow/name,
    from `block_paths`), and wherever a value a block gave this run appears (`secrets`).
    The changes' specs keep them: registration writes what Prefect would."""
    hidden = frozenset(s for s in secrets if s)
    paths = paths or {}
    if not hidden and not any(paths.values()):
        return plan
    changes = []
    for change in plan.changes:
        diffs = []
        for diff in change.diffs:
            old, new = _redact(diff.old, hidden), _redact(diff.new, hidden)
            for path in paths.get(change.name, ()):
                if path[0] == diff.field:
                    old, new = _redact_at(old, path[1:]), _redact_at(new, path[1:])
            diffs.append(FieldDiff(diff.field, old, new))
        changes.append(dataclasses.replace(change, diffs=tuple(diffs)) if diffs else change)
    return dataclasses.replace(plan, changes=tuple(changes))
