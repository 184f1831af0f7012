"""Which build/push steps a deployment runs, who may run them, and how a plan shows them."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from control_plane.deployments import DeploymentSpec
from control_plane.discovery import discover
from control_plane.plans import Change, FieldDiff, Plan, render_table
from control_plane.reconcile import ReconcileOptions, build_desired, restrict_steps
from control_plane.sources import read_local_checkout
from control_plane.steps import (
    CODE_RUNNING_STEPS,
    DEFAULT_ALLOWED_STEPS,
    StepPolicy,
    block_paths,
    check_step_policy,
    deployment_steps,
    plan_step_runs,
    redact_plan,
    render_pending,
    step_references,
)
from tests.conftest import REPO_ROOT
from tests.unit.test_cli import run

STEPS_MONOREPO = REPO_ROOT / "tests" / "fixtures" / "steps-monorepo"
SHELL = "prefect.deployments.steps.run_shell_script"
BUILD = "prefect_docker.deployments.steps.build_docker_image"
PUSH = "prefect_docker.deployments.steps.push_docker_image"
FLOW = "from prefect import flow\n\n\n@flow\ndef f(x: int = 1) -> int:\n    return x\n"


def desired_of(root: Path, environment: str = "production") -> Any:
    checkout = read_local_checkout(root)
    discovery = discover(root)
    return discovery, build_desired(checkout, discovery, ReconcileOptions(environment=environment))


# --- which steps a deployment runs: Prefect as the oracle ------------------------------

OVERRIDES = """
build:
  - prefect.deployments.steps.run_shell_script:
      id: root
      script: echo root
push:
  - prefect_docker.deployments.steps.push_docker_image:
      image_name: registry.example.com/x
      tag: "{{ root.stdout }}"
deployments:
  - name: inherits
    entrypoint: flows.py:f
  - name: own-build
    entrypoint: flows.py:f
    build:
      - prefect.deployments.steps.run_shell_script:
          id: mine
          script: echo mine
  - name: build-null
    entrypoint: flows.py:f
    build: null
  - name: build-empty-list
    entrypoint: flows.py:f
    build: []
  - name: build-empty-mapping
    entrypoint: flows.py:f
    build: {}
  - name: push-null-still-inherits
    entrypoint: flows.py:f
    push: null
  - name: push-empty-still-inherits
    entrypoint: flows.py:f
    push: []
  - name: own-push
    entrypoint: flows.py:f
    push:
      - prefect.deployments.steps.run_shell_script:
          script: echo push
  - name: one-step-as-a-mapping
    entrypoint: flows.py:f
    build:
      prefect.deployments.steps.run_shell_script:
        id: single
        script: echo one
"""


def prefect_deploy_steps(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The steps `prefect deploy` runs per deployment: its loader, and the two lines of
    `_run_single_deploy` that pick build and push steps (copied verbatim)."""
    from prefect.cli.deploy._config import _load_deploy_configs_and_actions
    from rich.console import Console

    configs, actions = _load_deploy_configs_and_actions(path, console=Console(file=io.StringIO()))
    out = {}
    for deploy_config in configs:
        build_steps = deploy_config.get("build", actions.get("build")) or []
        push_steps = deploy_config.get("push", actions.get("push")) or []
        push_steps = push_steps or actions.get("push")  # `if push_steps := ... or ...`
        out[deploy_config["name"]] = [s for s in [*build_steps, *(push_steps or [])] if s]
    return out


def test_the_steps_each_deployment_runs_are_prefect_deploys(write_repo) -> None:
    root = write_repo({"flows.py": FLOW, "prefect.yaml": OVERRIDES})
    _, desired = desired_of(root)
    ours = {s.name: [step.as_prefect_step for step in deployment_steps(s)] for s in desired.specs}
    assert ours == prefect_deploy_steps(root / "prefect.yaml")
    assert [s.label for s in deployment_steps(_spec(desired, "own-push"))] == [
        "root",
        "run_shell_script",
    ]


def _spec(desired: Any, name: str) -> DeploymentSpec:
    return next(s for s in desired.specs if s.name == name)


# --- the allow-list ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "allowed", "function", "allows"),
    [
        ("production", None, SHELL, True),
        ("production", None, "prefect.deployments.steps.utility.run_shell_script", True),
        ("production", None, BUILD, True),
        ("production", None, "prefect.deployments.steps.git_clone", True),
        ("preview", None, SHELL, False),
        ("preview", None, "prefect.deployments.steps.utility.run_shell_script", False),
        ("preview", None, "prefect.deployments.steps.pip_install_requirements", False),
        ("preview", None, BUILD, True),
        ("preview", None, PUSH, True),
        # Under prefect.deployments.steps but not steps: they run or install anything.
        ("production", None, "prefect.deployments.steps.run_step", False),
        ("production", None, "prefect.deployments.steps.core.import_object", False),
        ("production", None, "prefect.deployments.steps.core.install_packages", False),
        ("production", ["prefect.deployments.steps.**"], "prefect.deployments.steps.run_step",
         False),
        # Forms Prefect imports that name no installed function.
        ("production", ["**"], "prefect.deployments.steps.utility:os.system", False),
        ("production", ["**"], "scripts/deploy.py:main", False),
        ("production", ["**"], "evil.py:main", False),
        # The operator's list is the whole list; `*` stays within one name.
        ("preview", [SHELL], SHELL, True),
        ("production", ["acme.steps.*"], "acme.steps.tag_image", True),
        ("production", ["acme.steps.*"], SHELL, False),
        ("production", ["prefect_docker.deployments.steps.*"],
         "prefect_docker.deployments.steps.os.system", False),
    ],
)  # fmt: skip
def test_step_policy(environment: str, allowed: list[str] | None, function: str, allows: bool):
    policy = StepPolicy.for_environment(environment, allowed)
    assert (policy.refusal(function) is None) is allows


def test_the_default_list_is_every_step_prefect_and_prefect_docker_ship() -> None:
    import prefect.deployments.steps as prefect_steps
    import prefect_docker.deployments.steps as docker_steps

    exported = [n for n, v in vars(prefect_steps).items() if callable(v) and not n.startswith("_")]
    shipped = {f"prefect.deployments.steps.{n}" for n in exported if n != "run_step"}
    shipped |= {f"prefect_docker.deployments.steps.{n}" for n in ("build_docker_image",
                                                                  "push_docker_image")}  # fmt: skip
    assert shipped <= set(DEFAULT_ALLOWED_STEPS)
    for name in DEFAULT_ALLOWED_STEPS:  # every name is importable as Prefect imports it
        module, _, function = name.rpartition(".")
        owner = prefect_steps if module.startswith("prefect.") else docker_steps
        assert callable(getattr(__import__(module, fromlist=[function]), function)), owner
    assert set(CODE_RUNNING_STEPS) <= set(DEFAULT_ALLOWED_STEPS)


REFUSED = """\
build:
  - prefect.deployments.steps.run_shell_script:
      id: get-commit-hash
      script: git rev-parse --short HEAD
deployments:
  - name: a
    entrypoint: flows.py:f
  - name: b
    entrypoint: flows.py:f
  - name: c
    entrypoint: flows.py:f
    build:
      - prefect_docker.deployments.steps.build_docker_image:
          id: build-image
          image_name: registry.example.com/c
      - acme.steps.sign_image:
          image: "{{ build-image.image }}"
  - name: d
    entrypoint: flows.py:f
    build: null
"""


def test_refused_steps_are_problems_at_their_line_and_their_deployments_set_aside(
    write_repo,
) -> None:
    root = write_repo({"flows.py": FLOW, "prefect.yaml": REFUSED})
    discovery, desired = desired_of(root, "preview")
    restricted = restrict_steps(desired, discovery, StepPolicy.for_environment("preview"))
    problems = [p for p in restricted.problems if p.code == "step-not-allowed"]
    assert [(p.file, p.line, p.severity) for p in problems] == [
        ("prefect.yaml", 2, "error"),  # once for a and b, which inherit it
        ("prefect.yaml", 16, "error"),
    ]
    assert "f/a-local" in problems[0].message and "f/b-local" in problems[0].message
    assert "run_shell_script" in problems[0].message and "preview" in problems[0].message
    assert "acme.steps.sign_image" in problems[1].message and "allowed_steps" in problems[1].remedy
    assert [s.name for s in restricted.specs] == ["d-local"]  # d runs no step
    assert "prefect.yaml" in restricted.failed_files  # so what they registered is kept

    production = StepPolicy.for_environment("production", ["acme.steps.*", *DEFAULT_ALLOWED_STEPS])
    assert restrict_steps(desired, discovery, production) is desired


def test_check_step_policy_without_lines_points_at_the_deployment() -> None:
    spec = DeploymentSpec(
        name="x", flow_name="f", entrypoint="flows.py:f", source_file="prefect.yaml",
        source_line=7, flow_file="flows.py", environment="production",
        build_steps=({"acme.build": {}},),
    )  # fmt: skip
    problems, blocked = check_step_policy([spec], StepPolicy())
    assert [(p.file, p.line) for p in problems] == [("prefect.yaml", 7)]
    assert blocked == {"f/x"}


# --- runs: a sequence shared by several deployments runs once ---------------------------


def test_shared_prefixes_run_once_and_every_run_is_named_for_its_step() -> None:
    _, desired = desired_of(STEPS_MONOREPO)
    runs = plan_step_runs(desired.specs)
    assert [(r.name, r.parent is None, len(r.used_by)) for r in runs.runs] == [
        ("step[get-commit-hash]", True, 3),  # the root build of both pipelines
        ("step[commit-date]", False, 1),
    ]
    assert [r.name for r in runs.chain("steps-close-month/close-month")] == [
        "step[get-commit-hash]",
        "step[commit-date]",
    ]
    assert "steps-backfill-orders/orders-backfill" not in runs.last  # build: null


def test_different_steps_with_one_id_get_distinct_names() -> None:
    specs = [
        DeploymentSpec(
            name=name, flow_name="f", entrypoint="flows.py:f", source_file="prefect.yaml",
            flow_file="flows.py", environment="production",
            build_steps=({SHELL: {"id": "tag", "script": f"echo {name}"}},),
        )
        for name in ("a", "b")
    ]  # fmt: skip
    runs = plan_step_runs(specs)
    assert [r.name for r in runs.runs] == ["step[tag]", "step[tag#2]"]


# --- what fields take from steps, and how a plan shows them before they ran -------------


def test_step_references_and_the_pending_form() -> None:
    _, desired = desired_of(STEPS_MONOREPO)
    hourly = _spec(desired, "orders-hourly")
    assert step_references(hourly) == {
        "version": ("get-commit-hash",),
        "job_variables": ("get-commit-hash",),
        "pull_steps": ("get-commit-hash",),  # not {{ clone.directory }}: the worker's
    }
    pending = render_pending(hourly)
    assert pending.pull_steps[1] == {
        "prefect.deployments.steps.set_working_directory": {"directory": "{{ clone.directory }}"}
    }
    assert pending.version == "<from step get-commit-hash>"
    assert pending.job_variables == {
        "image": "registry.example.com/data/orders:<from step get-commit-hash>",
        "env": {
            "WAREHOUSE_URL": "{{ $WAREHOUSE_URL }}",
            "RELEASE": "<from step get-commit-hash>",
            "ORDERS_API_TOKEN": "{{ prefect.blocks.secret.steps-orders-api-token }}",
        },
    }
    assert pending.parameters == {"source": "{{ prefect.variables.steps_orders_source }}",
                                  "batch_size": 500}  # fmt: skip
    close = render_pending(_spec(desired, "close-month"))
    assert "<from step commit-date>" in close.tags


def test_pending_trigger_parameters_keep_their_event_templates() -> None:
    spec = DeploymentSpec(
        name="x", flow_name="f", entrypoint="flows.py:f", source_file="prefect.yaml",
        flow_file="flows.py", environment="production",
        build_steps=({SHELL: {"id": "sha", "script": "git rev-parse HEAD"}},),
        triggers=({"enabled": True, "description": "{{ sha.stdout }}",
                   "parameters": {"after": "{{ event.payload.after }}"}},),
        parameters={"image": "{{ image }}"},
    )  # fmt: skip
    pending = render_pending(spec)
    assert pending.triggers == (
        {"enabled": True, "description": "<from step sha>",
         "parameters": {"after": "{{ event.payload.after }}"}},
    )  # fmt: skip
    assert pending.parameters == {"image": "<from steps: image>"}  # a bare output name


def test_the_plan_table_shows_what_steps_will_fill() -> None:
    _, desired = desired_of(STEPS_MONOREPO)
    spec = render_pending(_spec(desired, "orders-hourly"))
    plan = Plan(changes=(Change("create", spec.full_name, desired=spec),))
    assert "version=<from step get-commit-hash>" in render_table(plan)


def test_cli_plan_runs_no_step_and_shows_where_values_come_from() -> None:
    result = run("plan", str(STEPS_MONOREPO), "--environment", "staging", "--json")
    assert result.returncode == 0, result.stderr
    versions = {c["deployment"]: c["version"] for c in json.loads(result.stdout)["changes"]}
    assert versions["steps-ingest-orders/orders-hourly-staging"] == "<from step get-commit-hash>"
    refused = run("plan", str(STEPS_MONOREPO), "--environment", "preview", "--branch", "x")
    assert refused.returncode == 1
    assert "pipelines/orders/prefect.yaml:17: error step-not-allowed" in refused.stderr
    allowed = run(
        "plan", str(STEPS_MONOREPO), "--environment", "preview", "--branch", "x",
        "--allow-step", SHELL,
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr


# --- block values never show ------------------------------------------------------------


def test_block_values_are_redacted_from_plan_diffs() -> None:
    token = "tok-8f1c2e9a7b"
    diff = FieldDiff(
        "job_variables",
        {"env": {"TOKEN": "old-secret-value", "URL": f"https://x:{token}@host"}},
        {"env": {"TOKEN": token, "N": "ab"}},
    )
    plan = Plan(changes=(Change("update", "f/x", diffs=(diff,)),))
    (change,) = redact_plan(plan, {token, "old-secret-value", "ab"}).changes
    assert change.diffs[0].old == {
        "env": {"TOKEN": "<from a block>", "URL": "https://x:<from a block>@host"}
    }
    assert change.diffs[0].new == {"env": {"TOKEN": "<from a block>", "N": "<from a block>"}}
    assert redact_plan(plan, ()) is plan


def test_where_a_block_fills_a_field_its_old_and_new_values_are_hidden() -> None:
    _, desired = desired_of(STEPS_MONOREPO)
    hourly = _spec(desired, "orders-hourly")
    assert block_paths(hourly) == {("job_variables", "env", "ORDERS_API_TOKEN")}
    old = {"image": "a:1", "env": {"ORDERS_API_TOKEN": "rotated-away", "RELEASE": "1"}}
    new = {"image": "a:2", "env": {"ORDERS_API_TOKEN": "current-token", "RELEASE": "2"}}
    plan = Plan(changes=(Change("update", hourly.full_name,
                                diffs=(FieldDiff("job_variables", old, new),)),))  # fmt: skip
    (change,) = redact_plan(plan, (), {hourly.full_name: block_paths(hourly)}).changes
    assert change.diffs[0].old["env"] == {"ORDERS_API_TOKEN": "<from a block>", "RELEASE": "1"}
    assert change.diffs[0].new["env"] == {"ORDERS_API_TOKEN": "<from a block>", "RELEASE": "2"}
    assert change.diffs[0].new["image"] == "a:2"


def test_step_lines_point_at_the_step_the_deployment_inherits(write_repo) -> None:
    from control_plane.prefect_yaml.parser import parse_prefect_yaml

    root = write_repo({"flows.py": FLOW, "prefect.yaml": textwrap.dedent(REFUSED)})
    parsed = parse_prefect_yaml(root / "prefect.yaml", root)
    lines = {d.name: parsed.step_lines[d.line] for d in parsed.deployments}
    assert lines == {"a": (2,), "b": (2,), "c": (13, 16), "d": ()}
