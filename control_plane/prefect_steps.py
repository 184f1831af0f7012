"""Running a prefect.yaml's build and push steps, and templating deployments, with Prefect.

What `prefect deploy` does between reading a deployment and registering it
(`prefect.cli.deploy._core._run_single_deploy`), at apply time:

1. `resolve_block_document_references`, `resolve_variables`, then `apply_values` with the
   environment on the deployment's configuration. The pull steps are taken before this,
   so their `{{ prefect.blocks.* }}` / `{{ prefect.variables.* }}` stay for the worker.
2. The build steps, then the push steps, through Prefect's `run_step`; each output is
   filed under the step's id and under its own keys (`run_steps`).
3. `apply_values` with the outputs: on the schedules; on the triggers except their
   parameters (event templates, for later); on the rest except `{{ ctx.* }}`; on the pull
   steps without dropping what stays unresolved.

`run_step` runs one step in a child process: Python in isolated mode (the checkout and
PYTHON* variables are not on its import path), the step's module imported before it
enters the checkout, which is its working directory. So a repository can neither shadow a
module deploy-manager imports nor change the flow's process (`set_working_directory` is a
step too), and `requires:` never installs anything: deploy-manager runs the steps its own
environment has, and a missing package fails the step.

Which steps may run is decided before (`control_plane.steps.StepPolicy`); this module
runs what it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib
import importlib.util
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from control_plane.deployments import DeploymentSpec
from control_plane.errors import DeployManagerError
from control_plane.steps import Step, block_paths, deployment_steps, render_pending

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

OUTPUT_TAIL = 20_000  # characters of a step's output kept for its task run's log
YIELD_EVERY = 25  # deployments resolved between two yields to the event loop (~10 ms)


class StepError(DeployManagerError):
    """A build or push step failed; the deployments that run it are not registered."""


# --- running one step -------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    outputs: dict[str, Any]  # everything the next step and the templates may read
    log: str  # the step's own output (stdout and stderr), its tail


def _child_environment() -> dict[str, str]:
    """The flow's environment and Prefect settings, as Prefect's runner hands them on."""
    from prefect.settings import get_current_settings

    settings = get_current_settings().to_environment_variables(exclude_unset=True)
    return {**os.environ, **{k: str(v) for k, v in settings.items()}}


def file_outputs(upstream: Mapping[str, Any], step: Step, output: Any) -> dict[str, Any]:
    """`upstream` plus one step's output, filed as `run_steps` files it."""
    outputs = copy.deepcopy(dict(upstream))
    if isinstance(output, dict):
        if step.id:
            outputs[step.id] = output
        outputs.update(output)
    return outputs


async def run_step(step: Step, upstream: Mapping[str, Any], checkout: Path) -> StepResult:
    """Run `step` with the outputs of the steps before it; the checkout is its directory."""
    request = {
        "step": step.as_prefect_step,
        "upstream": dict(upstream),
        "directory": str(checkout),
    }
    with tempfile.TemporaryDirectory(prefix="deploy-manager-step-") as scratch:
        result_file = Path(scratch) / "result.json"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-m", "control_plane.prefect_steps", str(result_file),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=scratch, env=_child_environment(),
        )  # fmt: skip
        try:
            out, _ = await process.communicate(json.dumps(request, default=str).encode())
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        log = out.decode(errors="replace")[-OUTPUT_TAIL:]
        try:
            result = json.loads(result_file.read_text())
        except (OSError, ValueError):
            raise StepError(
                f"{step.function} stopped without a result (exit status "
                f"{process.returncode}): {log[-2000:].strip()}"
            ) from None
    if not result["ok"]:
        raise StepError(f"{step.function}: {result['error']}")
    return StepResult(file_outputs(upstream, step, result["output"]), log)


def _strip_version(requirement: str) -> str:
    """`prefect-docker>=0.6` -> `prefect_docker`, as Prefect's `_get_function_for_step` does."""
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].replace("-", "_")


def _missing(requires: Any) -> list[str]:
    packages = requires if isinstance(requires, list) else [requires] if requires else []
    return [str(p) for p in packages if importlib.util.find_spec(_strip_version(str(p))) is None]


async def _run_in_child(request: dict[str, Any]) -> Any:
    from prefect.deployments.steps.core import run_step as prefect_run_step

    ((function, inputs),) = request["step"].items()
    inputs = dict(inputs)
    missing = _missing(inputs.pop("requires", None))
    if missing:
        raise StepError(
            f"it requires {', '.join(missing)}, which deploy-manager's environment lacks; "
            "deploy-manager installs nothing a repository asks for: add it to the image "
            "deploy-manager runs in"
        )
    # Imported before entering the checkout, whose files must not stand in for it.
    importlib.import_module(function.rpartition(".")[0])
    os.chdir(request["directory"])
    return await prefect_run_step({function: inputs}, request["upstream"])


def _child_main(result_file: str) -> int:
    request = json.load(sys.stdin)
    try:
        output = asyncio.run(_run_in_child(request))
        result: dict[str, Any] = {"ok": True, "output": output}
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    Path(result_file).write_text(json.dumps(result, default=str))
    return 0


# --- templating the deployments ---------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """The deployments as they will be compared and written, and those that cannot be."""

    specs: tuple[DeploymentSpec, ...]
    failures: Mapping[str, str]  # flow/name -> why it is not registered
    secrets: frozenset[str]  # values templates took from blocks: never shown
    block_paths: Mapping[str, frozenset[tuple[Any, ...]]]  # where blocks fill: never shown


def _deploy_config(spec: DeploymentSpec) -> dict[str, Any]:
    """The part of `spec` `prefect deploy` templates, in the shape of a deployment entry."""
    return {
        "version": spec.version,
        "description": spec.description,
        "tags": list(spec.tags),
        "parameters": copy.deepcopy(spec.parameters),
        "work_pool": {
            "name": spec.work_pool_name,
            "work_queue_name": spec.work_queue_name,
            "job_variables": copy.deepcopy(spec.job_variables),
        },
        "schedules": copy.deepcopy(list(spec.schedules)),
        "triggers": copy.deepcopy(list(spec.triggers)),
    }


def _with_config(
    spec: DeploymentSpec,
    config: Mapping[str, Any],
    pull_steps: Any,
    default_version: str | None,
) -> DeploymentSpec:
    pool = config.get("work_pool") or {}
    version = config.get("version")
    values = {
        **spec.model_dump(),
        # Where templating leaves no version, Prefect registers none; ours is the commit.
        "version": default_version if version in (None, "") else version,
        "description": config.get("description"),
        "tags": tuple(sorted(set(config.get("tags") or ()))),
        "parameters": config.get("parameters") or {},
        "work_pool_name": pool.get("name"),
        "work_queue_name": pool.get("work_queue_name"),
        "job_variables": pool.get("job_variables") or {},
        "schedules": tuple(config.get("schedules") or ()),
        "triggers": tuple(config.get("triggers") or ()),
        "pull_steps": None if pull_steps is None else tuple(pull_steps),
    }
    return DeploymentSpec.model_validate(values)


def apply_step_outputs(
    spec: DeploymentSpec,
    config: Mapping[str, Any],
    outputs: Mapping[str, Any],
    default_version: str | None,
) -> DeploymentSpec:
    """`config` (already through blocks, variables and the environment) templated with
    the step outputs exactly as `_run_single_deploy` does, back into a spec."""
    from prefect.utilities.templating import apply_values

    rest: dict[str, Any] = copy.deepcopy(dict(config))
    values = dict(outputs)
    schedules = apply_values(list(rest.pop("schedules")), values)
    triggers = []
    for trigger in rest.pop("triggers"):
        parameters = trigger.pop("parameters", None)
        templated = apply_values(dict(trigger), values, warn_on_notset=False)
        if parameters is not None:
            templated["parameters"] = parameters
        triggers.append(templated)
    templated_rest = apply_values(rest, values, warn_on_notset=True, skip_prefixes=["ctx."])
    templated_rest["schedules"], templated_rest["triggers"] = schedules, triggers
    pull: Any = spec.pull_steps
    if pull is not None:
        pull = apply_values([dict(s) for s in pull], values, remove_notset=False)
    return _with_config(spec, templated_rest, pull, default_version)


def _validate(spec: DeploymentSpec) -> None:
    """Refuse what the server would: schedules and triggers as Prefect builds them."""
    from control_plane.prefect_objects import schedule_creates, trigger_objects

    schedule_creates(spec.schedules)
    trigger_objects(spec.name, spec.triggers)


def _block_strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _block_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _block_strings(item)


async def _resolve_references(
    configs: dict[str, Any], client: PrefectClient | None, secrets: set[str]
) -> Any:
    from prefect.utilities.templating import (
        PlaceholderType,
        find_placeholders,
        resolve_block_document_references,
        resolve_variables,
    )

    if client is None:  # no server (a test in memory): nothing to read, or say what
        needs = sorted(
            p.full_match
            for p in find_placeholders(configs)
            if p.type in (PlaceholderType.BLOCK_DOCUMENT, PlaceholderType.VARIABLE)
        )
        if needs:
            raise LookupError(f"{', '.join(needs)} can only be resolved by a Prefect server")
        return configs

    def remember(_placeholder: str, value: Any) -> Any:
        secrets.update(_block_strings(value))
        return value

    resolved = await resolve_block_document_references(
        configs, client=client, value_transformer=remember
    )
    return await resolve_variables(resolved, client=client)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:3]
        )
        return f"invalid after templating: {errors}"
    help_message = getattr(exc, "help_message", None)
    return str(help_message or exc) or type(exc).__name__


async def resolve_specs(
    specs: Iterable[DeploymentSpec],
    client: PrefectClient | None,
    *,
    outputs: Mapping[str, Mapping[str, Any]] | None,
    failures: Mapping[str, str] | None = None,
    default_version: str | None = None,
) -> Resolved:
    """The specs with their templates resolved as `prefect deploy` resolves them.

    `outputs` holds each deployment's step outputs (flow/name -> outputs) once its steps
    ran; None means no step ran (a dry run): the fields its steps would fill show
    `<from step ...>`. A deployment that runs no steps is resolved fully either way.
    `failures` are deployments whose steps failed: shown pending, never registered.
    `client` reads the variables and blocks templates name; None: there is no server, and
    a deployment whose templates need one fails with that reason.
    """
    from prefect.utilities.templating import apply_values

    await asyncio.sleep(0)  # what was started beside this (a read) sends its requests first
    specs = tuple(specs)
    failed = dict(failures or {})
    secrets: set[str] = set()
    configs = {spec.full_name: _deploy_config(spec) for spec in specs}
    try:
        resolved = await _resolve_references(configs, client, secrets)
    except Exception:
        resolved = {}  # one bad reference: find whose, resolve the others
        for name, config in configs.items():
            try:
                resolved[name] = await _resolve_references(config, client, secrets)
            except Exception as exc:
                failed.setdefault(name, f"resolving its templates: {_describe(exc)}")
    resolved = apply_values(dict(resolved), dict(os.environ), remove_notset=False)
    assert isinstance(resolved, dict)  # a mapping stays a mapping (NotSet is per value)

    out = []
    for index, spec in enumerate(specs):
        if index % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # ~10 ms of work: I/O running beside it goes on
        name = spec.full_name
        runs_steps = bool(deployment_steps(spec))
        try:
            if name in failed:
                out.append(render_pending(spec))
                continue
            config = resolved[name]
            if runs_steps and (outputs is None or name not in outputs):
                pending = _with_config(spec, config, spec.pull_steps, spec.version)
                out.append(render_pending(pending))
                continue
            templated = apply_step_outputs(
                spec, config, (outputs or {}).get(name, {}), default_version
            )
            _validate(templated)
            out.append(templated)
        except Exception as exc:
            failed[name] = _describe(exc)
            out.append(render_pending(spec))
    paths = {spec.full_name: block_paths(spec) for spec in specs}
    return Resolved(tuple(out), failed, frozenset(s for s in secrets if s), paths)


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1]))
