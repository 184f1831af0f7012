"""prefect.yaml files are read with Prefect's semantics, without importing Prefect."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from control_plane.errors import Problem
from control_plane.prefect_yaml.models import (
    ConcurrencyEntry,
    DeclaredDeployment,
    DeploymentEntry,
    PrefectYamlFile,
    ProjectEntry,
    ScheduleEntry,
    WorkPoolEntry,
)
from control_plane.prefect_yaml.parser import parse_prefect_yaml, parse_prefect_yaml_text
from control_plane.prefect_yaml.schedules import cron_is_valid
from control_plane.prefect_yaml.steps import image_problem
from tests.conftest import REPO_ROOT

MONOREPO = REPO_ROOT / "tests" / "fixtures" / "monorepo"
WriteRepo = Callable[[dict[str, str]], Path]

ROOT_BUILD = (
    {
        "prefect_docker.deployments.steps.build_docker_image": {
            "id": "build-image",
            "requires": "prefect-docker>=0.6",
            "image_name": "registry.example.com:5000/data/platform",
            "tag": "{{ $GIT_SHA }}",
            "dockerfile": "Dockerfile",
        }
    },
)
ROOT_PUSH = (
    {
        "prefect_docker.deployments.steps.push_docker_image": {
            "requires": "prefect-docker>=0.6",
            "image_name": "{{ build-image.image_name }}",
            "tag": "{{ build-image.tag }}",
        }
    },
)
ROOT_PULL = (
    {
        "prefect.deployments.steps.set_working_directory": {
            "directory": "/opt/prefect/data-platform"
        }
    },
)
DOCKER_JOB_VARIABLES = {
    "image": "{{ build-image.image }}",
    "env": {
        "PREFECT_LOGGING_LEVEL": "INFO",
        "WAREHOUSE_DSN": "{{ prefect.blocks.secret.warehouse-dsn }}",
    },
}
INGEST_PULL = (
    {
        "prefect.deployments.steps.git_clone": {
            "id": "clone",
            "repository": "https://github.com/example/data-platform.git",
            "branch": "main",
            "access_token": "{{ prefect.blocks.secret.github-token }}",
        }
    },
    {
        "prefect.deployments.steps.set_working_directory": {
            "directory": "{{ clone.directory }}/pipelines/ingest"
        }
    },
)
INGEST_POOL: dict[str, Any] = {
    "work_pool_name": "k8s-pool",
    "work_queue_name": "ingest",
    "job_variables": {
        "image": "registry.example.com:5000/data/ingest:2024.06.1",
        "namespace": "{{ $K8S_NAMESPACE }}",
    },
}

EXPECTED_MONOREPO: dict[str, tuple[DeclaredDeployment, ...]] = {
    "prefect.yaml": (
        DeclaredDeployment(
            name="vacuum-nightly",
            entrypoint="maintenance/vacuum.py:vacuum_warehouse",
            flow_entrypoint="maintenance/vacuum.py:vacuum_warehouse",
            entrypoint_as_declared=True,  # the project's pull steps
            source_file="prefect.yaml",
            line=44,
            description="Reclaim space in the warehouse.",
            tags=("data-platform", "team-data"),
            parameters={"full": False, "schemas": ["raw", "staging"]},
            work_pool_name="docker-pool",
            work_queue_name="default",
            job_variables=DOCKER_JOB_VARIABLES,
            schedules=(
                {
                    "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin", "day_or": True},
                    "active": True,
                    "parameters": {},
                    "slug": None,
                },
            ),
            build=ROOT_BUILD,
            push=ROOT_PUSH,
            pull=ROOT_PULL,
        ),
        DeclaredDeployment(
            name="freshness-hourly",
            entrypoint="maintenance/vacuum.py:check_freshness",
            flow_entrypoint="maintenance/vacuum.py:check_freshness",
            entrypoint_as_declared=True,
            source_file="prefect.yaml",
            line=55,
            version="{{ $GIT_SHA }}",
            tags=("data-platform", "monitoring"),
            paused=True,
            enforce_parameter_schema=True,
            work_pool_name="docker-pool",
            work_queue_name="default",
            job_variables={**DOCKER_JOB_VARIABLES, "cpu": 0.5},  # merge key over an anchor
            schedules=(
                {
                    "schedule": {
                        "interval": 3600.0,
                        "anchor_date": "2024-01-01T00:30:00Z",
                        "timezone": "UTC",
                    },
                    "active": True,
                    "parameters": {"max_lag_minutes": 90},
                    "slug": "hourly",
                },
            ),
            build=ROOT_BUILD,
            push=ROOT_PUSH,
            pull=ROOT_PULL,
        ),
        DeclaredDeployment(
            name="orders-backfill",
            entrypoint="pipelines/ingest/flows.py:ingest_orders",
            flow_entrypoint="pipelines/ingest/flows.py:ingest_orders",
            entrypoint_as_declared=True,  # `pull: []` is pull steps of its own: none
            source_file="prefect.yaml",
            line=73,
            parameters={"source": "{{ prefect.variables.backfill_source }}", "since": "2024-01-01"},
            work_pool_name="process-pool",
            build=None,  # `build: null`: no build steps
            push=ROOT_PUSH,  # an entry cannot switch the project's push off
            pull=(),  # `pull: []`: explicitly none
        ),
    ),
    "pipelines/ingest/prefect.yaml": (
        DeclaredDeployment(
            name="orders-every-15m",
            # git_clone, then the working directory pipelines/ingest: as declared
            entrypoint="flows.py:ingest_orders",
            flow_entrypoint="pipelines/ingest/flows.py:ingest_orders",
            entrypoint_as_declared=True,
            source_file="pipelines/ingest/prefect.yaml",
            line=26,
            tags=("ingest",),
            parameters={"source": "shop", "batch_size": 1000},
            **INGEST_POOL,
            schedules=(
                {
                    "schedule": {
                        "interval": 900.0,
                        "anchor_date": "2024-01-01T00:00:00+01:00",
                        "timezone": "Europe/Berlin",
                    },
                    "active": True,
                    "parameters": {},
                    "slug": None,
                },
            ),
            concurrency_limit=1,
            pull=INGEST_PULL,
        ),
        DeclaredDeployment(
            name="customers-weekdays",
            entrypoint="./flows.py:ingest_customers",
            flow_entrypoint="pipelines/ingest/flows.py:ingest_customers",
            entrypoint_as_declared=True,
            source_file="pipelines/ingest/prefect.yaml",
            line=38,
            tags=("ingest",),
            **INGEST_POOL,
            schedules=(
                {
                    "schedule": {
                        "cron": "30 6 * * 1-5",
                        "timezone": "America/New_York",
                        "day_or": False,
                    },
                    "active": "{{ prefect.variables.ingest_enabled }}",
                    "parameters": {},
                    "slug": None,
                },
                {
                    "schedule": {"cron": "{{ $CUSTOMERS_CRON }}", "timezone": None, "day_or": True},
                    "active": False,
                    "parameters": {},
                    "slug": None,
                },
            ),
            concurrency_limit=2,
            concurrency_options={"collision_strategy": "CANCEL_NEW", "grace_period_seconds": 300},
            pull=INGEST_PULL,
        ),
    ),
    "pipelines/reports/prefect.yaml": (
        DeclaredDeployment(
            name="monthly-finance",
            entrypoint="pipelines/reports/report.py:monthly_report",
            source_file="pipelines/reports/prefect.yaml",
            line=6,
            description="Close-of-month finance report.",
            version="2024.06",
            tags=("reports", "finance"),
            parameters={"recipients": ["{{ prefect.variables.finance_list }}"], "currency": "EUR"},
            work_pool_name="process-pool",
            job_variables={"env": {"REPORTS_BUCKET": "{{ $REPORTS_BUCKET }}"}},
            schedules=(
                {
                    "schedule": {
                        "rrule": "FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=7;BYMINUTE=0",
                        "timezone": "Europe/London",
                    },
                    "active": True,
                    "parameters": {},
                    "slug": "first-of-month",
                },
            ),
            pull=None,  # nothing declared: Prefect generates its default pull step
        ),
        DeclaredDeployment(
            name="after-ingest",
            entrypoint="report.py:daily_summary",
            flow_entrypoint="pipelines/reports/report.py:daily_summary",
            entrypoint_as_declared=True,
            source_file="pipelines/reports/prefect.yaml",
            line=24,
            tags=("reports",),
            work_pool_name="process-pool",
            triggers=(
                {
                    "enabled": True,
                    "match": {"prefect.resource.id": "prefect.flow-run.*"},
                    "match_related": {
                        "prefect.resource.name": "ingest-orders",
                        "prefect.resource.role": "flow",
                    },
                    "expect": ["prefect.flow-run.Completed"],
                    "parameters": {"triggered_by": "{{ event.resource.id }}"},
                },
            ),
            # a single step given as a mapping is a one-step list
            pull=(
                {"prefect.deployments.steps.set_working_directory": {"directory": "/srv/reports"}},
            ),
        ),
    ),
}


# --- the monorepo ---------------------------------------------------------------------


@pytest.mark.parametrize("rel", sorted(EXPECTED_MONOREPO))
def test_monorepo_deployments_exactly(rel: str) -> None:
    parsed = parse_prefect_yaml(MONOREPO / rel, MONOREPO)
    assert parsed.problems == ()
    assert parsed.path == rel
    assert parsed.deployments == EXPECTED_MONOREPO[rel]


def test_monorepo_project_sections() -> None:
    root = parse_prefect_yaml(MONOREPO / "prefect.yaml", MONOREPO)
    assert (root.name, root.build, root.push, root.pull) == (
        "data-platform",
        ROOT_BUILD,
        ROOT_PUSH,
        ROOT_PULL,
    )
    ingest = parse_prefect_yaml(MONOREPO / "pipelines/ingest/prefect.yaml", MONOREPO)
    assert (ingest.name, ingest.build, ingest.push, ingest.pull) == (
        "ingest",
        None,
        None,
        INGEST_PULL,
    )


def test_relative_repo_root_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(MONOREPO.parent)
    parsed = parse_prefect_yaml(Path("monorepo/pipelines/ingest/prefect.yaml"), Path("monorepo"))
    assert parsed.deployments == EXPECTED_MONOREPO["pipelines/ingest/prefect.yaml"]


# --- bad entries: a table -------------------------------------------------------------

FLOW = "from prefect import flow\n\n\n@flow\ndef etl():\n    pass\n"
GOOD = "deployments:\n  - name: good\n    entrypoint: flows/etl.py:etl\n"  # lines 1-3


def with_good(entry: str) -> str:
    """A prefect.yaml whose first entry is valid and whose second (from line 4) is `entry`."""
    return GOOD + textwrap.indent(textwrap.dedent(entry).strip("\n"), "  ") + "\n"


def parse_in_repo(write_repo: WriteRepo, text: str, path: str = "prefect.yaml") -> PrefectYamlFile:
    files = ("flows/etl.py", "pipelines/sales/job.py", "pipelines/sales/flows/etl.py")
    root = write_repo(dict.fromkeys(files, FLOW))
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text, encoding="utf-8")
    return parse_prefect_yaml(root / path, root)


E = "- name: bad\n  entrypoint: flows/etl.py:etl\n"  # the bad entry's first lines (4, 5)


def bad(extra: str) -> str:
    """The bad entry: a name, a valid entrypoint, then `extra` keys from line 6."""
    return E + textwrap.indent(textwrap.dedent(extra).strip("\n"), "  ")


def case(entry: str, code: str, line: int, fragment: str, *, id: str) -> Any:
    return pytest.param(entry, code, line, fragment, id=id)


BAD_ENTRIES = [
    case(
        bad("job_variables: {}"),
        "unknown-key",
        6,
        "unknown key 'job_variables'; did you mean 'work_pool.job_variables'?",
        id="unknown-key",
    ),
    case(
        bad("descripton: x"),
        "unknown-key",
        6,
        "unknown key 'descripton'; did you mean 'description'?",
        id="unknown-key-typo",
    ),
    case(
        bad("""
            work_pool:
              name: p
              job_vars: {}
        """),
        "unknown-key",
        8,
        "work_pool: unknown key 'job_vars'; did you mean 'job_variables'?",
        id="unknown-key-work-pool",
    ),
    case(
        bad("""
            schedules:
              - cron: 0 * * * *
                max_scheduled_runs: 3
        """),
        "unknown-key",
        8,
        "schedules[0]: unknown key 'max_scheduled_runs'",
        id="unknown-key-schedule",
    ),
    case(
        bad("""
            schedules:
              - schedule: {cron: 0 * * * *}
        """),
        "unknown-key",
        7,
        "schedules[0]: unknown key 'schedule'",
        id="unknown-key-api-shaped-schedule",
    ),
    case(
        bad("""
            concurrency_limit:
              limit: 2
              strategy: ENQUEUE
        """),
        "unknown-key",
        8,
        "unknown key 'strategy'; did you mean 'collision_strategy'?",
        id="unknown-key-concurrency",
    ),
    case("- entrypoint: flows/etl.py:etl", "missing-name", 4, "has no name", id="missing-name"),
    case(
        "- name: ''\n  entrypoint: flows/etl.py:etl",
        "missing-name",
        4,
        "has no name",
        id="empty-name",
    ),
    case(
        "- just-a-string",
        "invalid-deployment",
        4,
        "'just-a-string', not a mapping",
        id="invalid-deployment",
    ),
    case(
        bad("version: 1.0"),
        "invalid-value",
        6,
        "version: 1.0 is not valid: input should be a valid string",
        id="version-not-a-string",
    ),
    case(
        bad("paused: maybe"),
        "invalid-value",
        6,
        "paused: 'maybe' is not valid",
        id="paused-not-a-boolean",
    ),
    case(
        bad("parameters: null"),
        "invalid-value",
        6,
        "parameters: null is not allowed here",
        id="parameters-null",
    ),
    case(
        bad("tags: prod"),
        "invalid-value",
        6,
        "'prod' is a string: Prefect would make one tag of each character",
        id="tags-a-string",
    ),
    case(bad("tags: null"), "invalid-value", 6, "tags: null is not allowed", id="tags-null"),
    case(
        bad("work_pool: null"),
        "invalid-value",
        6,
        "work_pool: null is not allowed",
        id="work-pool-null",
    ),
    case(
        bad("triggers: [on-completion]"),
        "invalid-value",
        6,
        "triggers[0]: 'on-completion' is not valid: input should be a valid dictionary",
        id="triggers-not-mappings",
    ),
    case(
        bad("concurrency_limit: many"),
        "invalid-value",
        6,
        "concurrency_limit: 'many' is not valid: expected an integer, or a mapping",
        id="concurrency-not-a-number",
    ),
    case(
        bad("version_type: svn"),
        "invalid-value",
        6,
        "'svn' is not a version type",
        id="version-type",
    ),
    case(
        bad("""
            schedules:
              cron: 0 * * * *
        """),
        "invalid-value",
        6,
        "schedules: {'cron': '0 * * * *'} is not valid",
        id="schedules-not-a-list",
    ),
    case(
        bad("""
            schedules:
              - cron: '61 * * * *'
        """),
        "invalid-cron",
        7,
        "schedules[0].cron: '61 * * * *' is not a valid cron expression "
        "(minute must be 0-59, not '61')",
        id="cron-out-of-range",
    ),
    case(
        bad("""
            schedules:
              - cron: '* * * *'
        """),
        "invalid-cron",
        7,
        "expected 5 fields (minute hour day-of-month month day-of-week), got 4",
        id="cron-four-fields",
    ),
    case(
        bad("""
            schedules:
              - cron: 'H * * * *'
        """),
        "invalid-cron",
        7,
        "hashed (H) expressions are not supported by Prefect",
        id="cron-hashed",
    ),
    case(
        bad("""
            schedules:
              - cron: '0 0 * 13 *'
        """),
        "invalid-cron",
        7,
        "month must be 1-12 or JAN-DEC, not '13'",
        id="cron-month",
    ),
    case(
        bad("""
            schedules:
              - cron: '@fortnightly'
        """),
        "invalid-cron",
        7,
        "unknown alias",
        id="cron-unknown-alias",
    ),
    case(
        bad("""
            schedules:
              - cron: ''
        """),
        "invalid-cron",
        7,
        "is empty",
        id="cron-empty",
    ),
    case(
        bad("""
            schedules:
              - cron: 5
        """),
        "invalid-cron",
        7,
        "schedules[0].cron: 5 is not valid: input should be a valid string",
        id="cron-not-a-string",
    ),
    case(
        bad("""
            schedules:
              - cron: 0 6 * * *
                timezone: europe/berlin
        """),
        "invalid-timezone",
        8,
        "'europe/berlin' is not a valid timezone; did you mean 'Europe/Berlin'?",
        id="timezone-case",
    ),
    case(
        bad("""
            schedules:
              - interval: 60
                timezone: Mars/Olympus
        """),
        "invalid-timezone",
        8,
        "schedules[0].timezone: 'Mars/Olympus' is not a valid timezone",
        id="timezone-unknown",
    ),
    case(
        bad("""
            schedules:
              - rrule: FREQ=DAILY
                timezone: ''
        """),
        "invalid-timezone",
        8,
        "'' is not a valid timezone",
        id="timezone-empty-rrule",
    ),
    case(
        bad("""
            schedules:
              - interval: 0
        """),
        "invalid-interval",
        7,
        "0 is not a positive interval",
        id="interval-zero",
    ),
    case(
        bad("""
            schedules:
              - interval: -5
        """),
        "invalid-interval",
        7,
        "-5 is not a positive interval",
        id="interval-negative",
    ),
    case(
        bad("""
            schedules:
              - interval: soon
        """),
        "invalid-interval",
        7,
        "'soon' is not valid: input should be a valid timedelta",
        id="interval-words",
    ),
    case(
        bad("""
            schedules:
              - interval: '{{ $EVERY }}'
        """),
        "invalid-interval",
        7,
        "'{{ $EVERY }}' is not valid",
        id="interval-templated",
    ),
    case(
        bad("""
            schedules:
              - interval: 60
                anchor_date: tomorrow
        """),
        "invalid-anchor-date",
        8,
        "'tomorrow' is not an ISO 8601 date-time",
        id="anchor-date-words",
    ),
    case(
        bad("""
            schedules:
              - interval: 60
                anchor_date: 2024-01-01
                active: false
        """),
        "invalid-anchor-date",
        8,
        "2024-01-01 is an unquoted YAML date",
        id="anchor-date-unquoted-with-extras",
    ),
    case(
        bad("""
            schedules:
              - rrule: FREQ=SOMETIMES
        """),
        "invalid-rrule",
        7,
        "'FREQ=SOMETIMES' is not a valid recurrence rule: invalid 'FREQ': SOMETIMES",
        id="rrule-freq",
    ),
    case(
        bad("""
            schedules:
              - rrule: '{"rule": "FREQ=DAILY"}'
        """),
        "invalid-rrule",
        7,
        "is JSON but not",
        id="rrule-json",
    ),
    case(
        bad("""
            schedules:
              - rrule: ''
        """),
        "invalid-rrule",
        7,
        "is empty",
        id="rrule-empty",
    ),
    case(
        bad("""
            schedules:
              - cron: 0 * * * *
                interval: 60
        """),
        "invalid-schedule",
        7,
        "exactly one of cron, interval or rrule; it has cron and interval",
        id="schedule-two-kinds",
    ),
    case(
        bad("""
            schedules:
              - timezone: UTC
        """),
        "invalid-schedule",
        7,
        "it has none of them",
        id="schedule-none",
    ),
    case(
        bad("""
            schedules:
              - {}
        """),
        "invalid-schedule",
        7,
        "the schedule is empty",
        id="schedule-empty",
    ),
    case(
        bad("""
            schedules:
              - 0 * * * *
        """),
        "invalid-schedule",
        7,
        "'0 * * * *' is not a mapping",
        id="schedule-a-string",
    ),
    case(
        bad("""
            schedules:
              - cron: 0 * * * *
                active: maybe
        """),
        "invalid-schedule",
        8,
        "schedules[0].active: 'maybe' is not a boolean",
        id="schedule-active",
    ),
    case(
        bad("""
            schedule:
              cron: 0 * * * *
            schedules: []
        """),
        "invalid-schedule",
        6,
        "both schedule and schedules are given",
        id="schedule-and-schedules",
    ),
    case(
        bad("""
            work_pool:
              name: p
              job_variables:
                image: Team/App:1.0
        """),
        "invalid-image",
        9,
        "'Team/App:1.0' is not a valid image reference: repository names must be lowercase",
        id="image-uppercase",
    ),
    case(
        bad("""
            work_pool:
              name: p
              job_variables:
                image: app:-x
        """),
        "invalid-image",
        9,
        "tag '-x' is not valid",
        id="image-bad-tag",
    ),
    case(
        bad("""
            build:
              - prefect_docker.deployments.steps.build_docker_image:
                  image_name: registry.io/app:v1
                  tag: v2
        """),
        "invalid-image",
        8,
        "build[0].image_name: 'registry.io/app:v1' is not a valid image name: "
        "image_name must not carry a tag",
        id="image-build-step-tagged-name",
    ),
    case(
        bad("""
            build:
              - prefect_docker.deployments.steps.build_docker_image:
                  image_name: registry.io/app
                  tag: .hidden
        """),
        "invalid-image",
        9,
        "build[0].tag: '.hidden' is not a valid image tag",
        id="image-build-step-tag",
    ),
    case(
        bad("""
            push:
              - prefect_docker.deployments.steps.push_docker_image:
                  image_name: registry.io/app
                  additional_tags: [ok, 'no way']
        """),
        "invalid-image",
        9,
        "push[0].additional_tags[1]: 'no way' is not a valid image tag",
        id="image-push-step-additional-tag",
    ),
    case(
        bad("""
            build:
              - prefect_docker.deployments.steps.build_docker_image:
                  tag: v1
        """),
        "invalid-step",
        7,
        "build_docker_image needs image_name",
        id="build-step-without-image-name",
    ),
    case(
        bad("""
            pull:
              - prefect.deployments.steps.git_clone:
                  repository: r
                branch: main
        """),
        "invalid-step",
        7,
        "pull[0]: a step has one key, the function to run; this one has 2",
        id="step-two-keys",
    ),
    case(
        bad("""
            pull:
              - prefect.deployments.steps.run_shell_script: echo hi
        """),
        "invalid-step",
        7,
        "the arguments of prefect.deployments.steps.run_shell_script are 'echo hi', not a mapping",
        id="step-arguments-not-a-mapping",
    ),
    case(
        bad("concurrency_limit: 0"),
        "invalid-concurrency",
        6,
        "0 is not a positive integer",
        id="concurrency-zero",
    ),
    case(
        bad("""
            concurrency_limit:
              limit: 2
        """),
        "invalid-concurrency",
        6,
        "collision_strategy is missing",
        id="concurrency-no-strategy",
    ),
    case(
        bad("""
            concurrency_limit:
              limit: 2
              collision_strategy: enqueue
        """),
        "invalid-concurrency",
        8,
        "'enqueue' is not a collision strategy; did you mean 'ENQUEUE'?",
        id="concurrency-strategy-case",
    ),
    case(
        bad("""
            concurrency_limit:
              limit: 2
              collision_strategy: ENQUEUE
              grace_period_seconds: 5
        """),
        "invalid-concurrency",
        9,
        "5 is out of range",
        id="concurrency-grace",
    ),
]


@pytest.mark.parametrize(("entry", "code", "line", "fragment"), BAD_ENTRIES)
def test_bad_entry(write_repo: WriteRepo, entry: str, code: str, line: int, fragment: str) -> None:
    parsed = parse_in_repo(write_repo, with_good(entry))
    matching = [p for p in parsed.problems if p.code == code]
    assert [(p.line, p.severity) for p in matching] == [(line, "error")], parsed.problems
    assert fragment in matching[0].message
    assert matching[0].remedy
    assert [d.name for d in parsed.deployments] == ["good"]


def entrypoint(value: str) -> str:
    return f"- name: bad\n  entrypoint: {value}"


# Entrypoint problems keep the entry, with no entrypoint: discovery says why it is skipped.
BAD_ENTRYPOINTS = [
    case("- name: bad", "missing-entrypoint", 4, "has no entrypoint", id="missing"),
    case(
        entrypoint("flows/etl.py"),
        "bad-entrypoint",
        5,
        "'flows/etl.py': it has no ':function' part",
        id="no-function",
    ),
    case(
        entrypoint("flows.etl.etl"),
        "bad-entrypoint",
        5,
        "module paths (package.module.flow) are not supported",
        id="module-path",
    ),
    case(
        entrypoint("flows/etl:etl"),
        "bad-entrypoint",
        5,
        "'flows/etl' is not a .py file",
        id="not-python",
    ),
    case(
        entrypoint("flows/etl.py:1st"),
        "bad-entrypoint",
        5,
        "'1st' is not a function name",
        id="bad-function",
    ),
    case(
        entrypoint("'{{ $ENTRYPOINT }}'"),
        "bad-entrypoint",
        5,
        "a templated entrypoint cannot be resolved",
        id="templated",
    ),
    case(
        entrypoint("flows/missing.py:etl"),
        "entrypoint-not-found",
        5,
        "there is no file flows/missing.py",
        id="not-found",
    ),
    case(
        entrypoint("../../etc/x.py:f"),
        "entrypoint-outside-repo",
        5,
        "it leaves the repository",
        id="parent-dirs",
    ),
    case(
        entrypoint("/etc/x.py:f"),
        "entrypoint-outside-repo",
        5,
        "it is an absolute path",
        id="absolute",
    ),
    case(
        entrypoint("'C:\\flows\\x.py:f'"),
        "entrypoint-outside-repo",
        5,
        "it is an absolute path",
        id="windows-absolute",
    ),
]


@pytest.mark.parametrize(("entry", "code", "line", "fragment"), BAD_ENTRYPOINTS)
def test_bad_entrypoint(
    write_repo: WriteRepo, entry: str, code: str, line: int, fragment: str
) -> None:
    parsed = parse_in_repo(write_repo, with_good(entry))
    assert [(p.code, p.line) for p in parsed.problems] == [(code, line)]
    assert fragment in parsed.problems[0].message
    assert [(d.name, d.entrypoint) for d in parsed.deployments] == [
        ("good", "flows/etl.py:etl"),
        ("bad", None),
    ]


def test_entrypoint_message_follows_the_house_format(write_repo: WriteRepo) -> None:
    parsed = parse_in_repo(write_repo, with_good(entrypoint("flows/nope.py:etl")))
    [problem] = parsed.problems
    assert problem.render() == (
        "prefect.yaml:5: error entrypoint-not-found: deployments[1] 'bad': entrypoint: "
        "'flows/nope.py:etl': there is no file flows/nope.py (write it as "
        "path/to/file.py:flow_function, relative to the repository root or to this "
        "prefect.yaml's directory; check the spelling and that the file is committed)"
    )


def test_cron_message_follows_the_house_format(write_repo: WriteRepo) -> None:
    entry = "- name: etl-daily\n  entrypoint: flows/etl.py:etl\n  schedules: [{cron: 61 * * * *}]"
    text = with_good(entry)
    [problem] = parse_in_repo(write_repo, text).problems
    assert problem.message == (
        "deployments[1] 'etl-daily': schedules[0].cron: '61 * * * *' is not a valid cron "
        "expression (minute must be 0-59, not '61')"
    )
    assert problem.remedy.startswith("write five fields")


# --- entrypoints: where they resolve --------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("job.py:etl", "pipelines/sales/job.py:etl"),  # relative to the prefect.yaml
        ("./job.py:etl", "pipelines/sales/job.py:etl"),
        ("pipelines/sales/job.py:etl", "pipelines/sales/job.py:etl"),  # relative to the root
        ("flows/etl.py:etl", "flows/etl.py:etl"),  # the root wins when both match
        ("../../flows/etl.py:etl", "flows/etl.py:etl"),  # `..` that stays inside
        ("job.py:Pipelines.run", "pipelines/sales/job.py:Pipelines.run"),  # Prefect: Class.method
    ],
)
def test_entrypoint_resolution(write_repo: WriteRepo, given: str, expected: str) -> None:
    text = f"deployments:\n  - name: d\n    entrypoint: {given}\n"
    parsed = parse_in_repo(write_repo, text, "pipelines/sales/prefect.yaml")
    assert parsed.problems == ()
    assert [d.entrypoint for d in parsed.deployments] == [expected]


WORKDIR_PULL = (
    "pull:\n  - prefect.deployments.steps.set_working_directory:\n      directory: /app\n"
)
CLONE_PULL = (
    "pull:\n  - prefect.deployments.steps.git_clone:\n      id: clone\n"
    "      repository: https://example.com/r.git\n"
    "  - prefect.deployments.steps.set_working_directory:\n"
    "      directory: '{{ clone.directory }}/pipelines/sales'\n"
)


@pytest.mark.parametrize(
    ("project", "entry", "given", "expected"),
    [
        pytest.param(
            "", "", "job.py:etl", ("pipelines/sales/job.py:etl",) * 2 + (False,), id="none"
        ),
        pytest.param(
            "",
            textwrap.indent(WORKDIR_PULL, "    "),
            "job.py:etl",
            ("job.py:etl", "pipelines/sales/job.py:etl", True),
            id="its-own-pull",
        ),
        pytest.param(
            CLONE_PULL,
            "",
            "./job.py:etl",
            ("./job.py:etl", "pipelines/sales/job.py:etl", True),
            id="the-files-pull",
        ),
        pytest.param(
            CLONE_PULL,
            "    pull: []\n",
            "job.py:etl",
            ("job.py:etl", "pipelines/sales/job.py:etl", True),
            id="explicitly-none",
        ),
        pytest.param(
            "",
            "",
            "flows/etl.py:etl",
            ("flows/etl.py:etl", "flows/etl.py:etl", False),
            id="root-first-without",
        ),
        pytest.param(
            WORKDIR_PULL,
            "",
            "flows/etl.py:etl",
            ("flows/etl.py:etl", "pipelines/sales/flows/etl.py:etl", True),
            id="directory-first-with",
        ),
    ],
)
def test_entrypoint_is_kept_as_declared_with_pull_steps_of_its_own(
    write_repo: WriteRepo, project: str, entry: str, given: str, expected: tuple[Any, ...]
) -> None:
    """Prefect resolves it against the working directory the pull steps leave."""
    text = f"{project}deployments:\n  - name: d\n    entrypoint: {given}\n{entry}"
    parsed = parse_in_repo(write_repo, text, "pipelines/sales/prefect.yaml")
    assert parsed.problems == ()
    [declared] = parsed.deployments
    assert (declared.entrypoint, declared.flow_entrypoint, declared.entrypoint_as_declared) == (
        expected
    )


def test_entrypoint_not_found_lists_where_it_looked(write_repo: WriteRepo) -> None:
    text = "deployments:\n  - name: d\n    entrypoint: nope.py:etl\n"
    parsed = parse_in_repo(write_repo, text, "pipelines/sales/prefect.yaml")
    [problem] = parsed.problems
    assert problem.file == "pipelines/sales/prefect.yaml"
    assert "there is no file nope.py or pipelines/sales/nope.py" in problem.message


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
@pytest.mark.parametrize("link", ["flows/outside.py", "linked/etl.py"])
def test_entrypoint_through_a_symlink_out_of_the_repository(
    write_repo: WriteRepo, tmp_path: Path, link: str
) -> None:
    root = write_repo({"flows/etl.py": FLOW})
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "etl.py").write_text(FLOW)
    if link == "flows/outside.py":
        (root / link).symlink_to(outside / "etl.py")
    else:
        (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "prefect.yaml").write_text(with_good(entrypoint(f"{link}:etl")))
    parsed = parse_prefect_yaml(root / "prefect.yaml", root)
    assert [(p.code, p.line) for p in parsed.problems] == [("entrypoint-outside-repo", 5)]
    assert f"{link} links to" in parsed.problems[0].message
    assert [(d.name, d.entrypoint) for d in parsed.deployments] == [
        ("good", "flows/etl.py:etl"),
        ("bad", None),
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_symlink_inside_the_repository_is_fine(write_repo: WriteRepo) -> None:
    root = write_repo({"flows/etl.py": FLOW})
    (root / "flows/alias.py").symlink_to(root / "flows/etl.py")
    text = "deployments:\n  - name: d\n    entrypoint: flows/alias.py:etl\n"
    parsed = parse_prefect_yaml_text(text, "prefect.yaml", root)
    assert parsed.problems == ()
    assert [d.entrypoint for d in parsed.deployments] == ["flows/alias.py:etl"]


# --- templates are kept where Prefect resolves them before validating ----------------


def cron_schedule(cron: str, **fields: Any) -> dict[str, Any]:
    schedule = {"cron": cron, "timezone": None, "day_or": True}
    for key in ("timezone", "day_or"):
        if key in fields:
            schedule[key] = fields.pop(key)
    return {"schedule": schedule, "active": True, "parameters": {}, "slug": None, **fields}


TEMPLATED = [
    pytest.param(
        """
        work_pool:
          name: p
          job_variables:
            image: '{{ build-image.image }}'
        """,
        {"job_variables": {"image": "{{ build-image.image }}"}},
        id="image",
    ),
    pytest.param(
        """
        work_pool:
          name: p
          job_variables:
            image: '{{ $REGISTRY }}/App'
        """,
        {"job_variables": {"image": "{{ $REGISTRY }}/App"}},
        id="image-partly",
    ),
    pytest.param(
        """
        schedules:
          - cron: '{{ prefect.variables.etl_cron }}'
        """,
        {"schedules": (cron_schedule("{{ prefect.variables.etl_cron }}"),)},
        id="cron",
    ),
    pytest.param(
        """
        schedules:
          - cron: 0 6 * * *
            timezone: '{{ $TZ }}'
            active: '{{ $ON }}'
            day_or: '{{ $OR }}'
        """,
        {
            "schedules": (
                cron_schedule(
                    "0 6 * * *", timezone="{{ $TZ }}", day_or="{{ $OR }}", active="{{ $ON }}"
                ),
            )
        },
        id="timezone-active-day-or",
    ),
    pytest.param(
        """
        schedules:
          - rrule: '{{ prefect.variables.calendar }}'
        """,
        {
            "schedules": (
                {
                    "schedule": {"rrule": "{{ prefect.variables.calendar }}", "timezone": "UTC"},
                    "active": True,
                    "parameters": {},
                    "slug": None,
                },
            )
        },
        id="rrule",
    ),
    pytest.param(
        """
        schedules:
          - interval: 60
            anchor_date: '{{ $ANCHOR }}'
        """,
        {
            "schedules": (
                {
                    "schedule": {
                        "interval": 60.0,
                        "anchor_date": "{{ $ANCHOR }}",
                        "timezone": "UTC",
                    },
                    "active": True,
                    "parameters": {},
                    "slug": None,
                },
            )
        },
        id="anchor-date",
    ),
    pytest.param(
        """
        build:
          - prefect_docker.deployments.steps.build_docker_image:
              image_name: '{{ $REGISTRY }}/etl'
              tag: '{{ $GIT_SHA }}'
        """,
        {
            "build": (
                {
                    "prefect_docker.deployments.steps.build_docker_image": {
                        "image_name": "{{ $REGISTRY }}/etl",
                        "tag": "{{ $GIT_SHA }}",
                    }
                },
            )
        },
        id="build-step",
    ),
    pytest.param(
        """
        concurrency_limit:
          limit: 1
          collision_strategy: '{{ $STRATEGY }}'
        """,
        {"concurrency_limit": 1, "concurrency_options": {"collision_strategy": "{{ $STRATEGY }}"}},
        id="collision-strategy",
    ),
    pytest.param(
        "version_type: '{{ $VERSION_TYPE }}'",
        {"version_type": "{{ $VERSION_TYPE }}"},
        id="version-type",
    ),
    pytest.param(
        """
        work_pool:
          name: '{{ $POOL }}'
          work_queue_name: '{{ prefect.variables.queue }}'
          job_variables:
            env: {TOKEN: '{{ prefect.blocks.secret.token }}'}
        """,
        {
            "work_pool_name": "{{ $POOL }}",
            "work_queue_name": "{{ prefect.variables.queue }}",
            "job_variables": {"env": {"TOKEN": "{{ prefect.blocks.secret.token }}"}},
        },
        id="pool-queue-block",
    ),
    pytest.param(
        """
        parameters:
          day: '{{ $DAY }}'
          when: '{{ event.occurred }}'
        """,
        {"parameters": {"day": "{{ $DAY }}", "when": "{{ event.occurred }}"}},
        id="parameters",
    ),
]


@pytest.mark.parametrize(("extra", "expected"), TEMPLATED)
def test_templated_values_are_accepted_verbatim(
    write_repo: WriteRepo, extra: str, expected: dict[str, Any]
) -> None:
    parsed = parse_in_repo(write_repo, with_good(bad(extra)))
    assert [p for p in parsed.problems if p.severity != "info"] == []
    [declared] = [d for d in parsed.deployments if d.name == "bad"]
    assert {key: getattr(declared, key) for key in expected} == expected


# --- the file as a whole --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("deployments:\n  - name: a\n   entrypoint: x\n", 3, "line 3, column 4"),
        ("deployments:\n  - name: a\n    tags: [a, b\n", 4, "expected ',' or ']'"),
        ("deployments:\n  - name: {{ x }}\n", 2, "found unhashable key"),
        ("!!python/object/apply:os.system [echo hi]\n", 1, "could not determine a constructor"),
    ],
    ids=["indentation", "unclosed-list", "unquoted-template", "python-tag"],
)
def test_invalid_yaml(write_repo: WriteRepo, text: str, line: int, fragment: str) -> None:
    parsed = parse_in_repo(write_repo, text)
    [problem] = parsed.problems
    assert (problem.code, problem.line, problem.severity) == ("invalid-yaml", line, "error")
    assert fragment in problem.message
    assert parsed.deployments == ()


def test_alias_bombs_and_cycles_are_refused(write_repo: WriteRepo) -> None:
    bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]\n"
        for previous, name in zip("abcdef", "bcdefg", strict=True)
    )
    cycle = "a: &a\n  b: *a\n"
    for text, fragment in ((bomb, "expand to more than"), (cycle, "contains it")):
        [problem] = parse_in_repo(write_repo, text).problems
        assert (problem.code, problem.line) == ("invalid-yaml", 0)
        assert fragment in problem.message


@pytest.mark.parametrize(
    ("text", "line", "severity", "fragment"),
    [
        ("- name: a\n- name: b\n", 1, "error", "the top level is a sequence, not a mapping"),
        ("just words\n", 1, "error", "the top level is a str, not a mapping"),
        ("", 0, "warning", "the file is empty"),
        ("# only a comment\n", 0, "warning", "the file is empty"),
        ("deployments:\n  name: a\n", 1, "error", "deployments: is {'name': 'a'}, not a list"),
    ],
)
def test_invalid_prefect_yaml(
    write_repo: WriteRepo, text: str, line: int, severity: str, fragment: str
) -> None:
    parsed = parse_in_repo(write_repo, text)
    [problem] = parsed.problems
    assert (problem.code, problem.line, problem.severity) == (
        "invalid-prefect-yaml",
        line,
        severity,
    )
    assert fragment in problem.message
    assert parsed.deployments == ()


K8S = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: prefect\n"


@pytest.mark.parametrize(
    ("text", "severity", "listed", "fragment"),
    [
        pytest.param(
            K8S,
            "warning",
            "not-prefect",
            "this is not a prefect.yaml (a Kubernetes manifest: apiVersion v1, kind ConfigMap)",
            id="kubernetes-manifest",
        ),
        pytest.param(
            K8S + "---\napiVersion: apps/v1\nkind: Deployment\n---\n",
            "warning",
            "not-prefect",
            "(2 YAML documents separated by '---', a Kubernetes manifest",
            id="kubernetes-manifests",
        ),
        pytest.param(
            "- " + K8S.replace("\n", "\n  ").rstrip() + "\n",
            "warning",
            "not-prefect",
            "(a list of Kubernetes manifests (apiVersion, kind))",
            id="list-of-manifests",
        ),
        pytest.param(
            "server:\n  replicas: 2\nworker:\n  enabled: true\n",
            "warning",
            "not-prefect",
            "(none of its top-level keys (server, worker) is a prefect.yaml key)",
            id="helm-values",
        ),
        pytest.param(
            GOOD + "---\n" + GOOD,
            "error",
            "unreadable",
            "the file holds 2 YAML documents, separated by '---' (the next one starts at line 4)"
            "; Prefect reads a prefect.yaml as one document",
            id="two-prefect-yamls",
        ),
        pytest.param(
            "- name: a\n  entrypoint: flows/etl.py:etl\n",
            "error",
            "unreadable",
            "the top level is a sequence, not a mapping",
            id="deployments-without-the-key",
        ),
    ],
)
def test_a_file_that_is_not_a_prefect_yaml_says_so(
    write_repo: WriteRepo, text: str, severity: str, listed: str, fragment: str
) -> None:
    parsed = parse_in_repo(write_repo, text)
    [problem] = parsed.problems
    code = "not-a-prefect-yaml" if severity == "warning" else "invalid-prefect-yaml"
    assert (problem.code, problem.severity) == (code, severity)
    assert fragment in problem.message
    assert "YAML syntax" not in problem.remedy
    assert (parsed.deployments, parsed.deployments_list) == ((), listed)


def test_top_level_problems_keep_the_deployments(write_repo: WriteRepo) -> None:
    text = "prefect-version: 3.1\ndeployment: []\ndefinitions: {x: 1}\n" + GOOD
    parsed = parse_in_repo(write_repo, text)
    assert [(p.line, p.code, p.severity) for p in parsed.problems] == [
        (1, "invalid-value", "error"),  # Prefect refuses a float here and skips the file
        (2, "unknown-key", "warning"),  # Prefect ignores unknown top-level keys
    ]
    assert "did you mean 'deployments'?" in parsed.problems[1].message
    assert [d.name for d in parsed.deployments] == ["good"]


def test_invalid_project_section_drops_what_inherits_it(write_repo: WriteRepo) -> None:
    text = (
        "build:\n  - prefect_docker.deployments.steps.build_docker_image:\n"
        "      image_name: Registry.io/App\n"
        "deployments:\n"
        "  - name: inherits\n    entrypoint: flows/etl.py:etl\n"
        "  - name: own-build\n    entrypoint: flows/etl.py:etl\n    build: []\n"
    )
    parsed = parse_in_repo(write_repo, text)
    assert [(p.line, p.code) for p in parsed.problems] == [
        (3, "invalid-image"),
        (5, "invalid-step"),
    ]
    assert "inherits a project-level build, push or pull section" in parsed.problems[1].message
    assert [(d.name, d.build) for d in parsed.deployments] == [("own-build", None)]
    assert parsed.build is None


def test_lines_of_merged_anchors_point_at_the_definition(write_repo: WriteRepo) -> None:
    text = (
        "definitions:\n"
        "  pool: &pool\n"
        "    name: p\n"
        "    job_vars: {}\n"  # line 4: the typo lives here
        "  base: &base\n"
        "    name: from-anchor\n"
        "    entrypoint: flows/etl.py:etl\n"
        + GOOD.removeprefix("deployments:\n").join(["deployments:\n", ""])
        + "  - name: bad\n    entrypoint: flows/etl.py:etl\n    work_pool: *pool\n"  # 11-13
        + "  - <<: *base\n"  # line 14: its name comes from the anchor
        + "  - <<: *base\n    name: own\n"  # lines 15-16: its own name
    )
    parsed = parse_in_repo(write_repo, text)
    assert [(p.line, p.code) for p in parsed.problems] == [(4, "unknown-key")]
    assert parsed.problems[0].message.startswith("deployments[1] 'bad': work_pool: unknown key")
    assert [(d.name, d.line) for d in parsed.deployments] == [
        ("good", 9),
        ("from-anchor", 14),
        ("own", 16),
    ]


def test_duplicate_keys_warn(write_repo: WriteRepo) -> None:
    text = "deployments:\n  - name: first\n    entrypoint: flows/etl.py:etl\n    name: second\n"
    parsed = parse_in_repo(write_repo, text)
    assert [(p.line, p.code, p.severity) for p in parsed.problems] == [
        (4, "duplicate-key", "warning")
    ]
    assert [d.name for d in parsed.deployments] == ["second"]  # YAML keeps the last


def test_unreadable_and_undecodable_files(tmp_path: Path) -> None:
    (tmp_path / "prefect.yaml").write_bytes(b"name: \xff\xfe\n")
    [problem] = parse_prefect_yaml(tmp_path / "prefect.yaml", tmp_path).problems
    assert problem.code == "invalid-yaml"
    [problem] = parse_prefect_yaml(tmp_path / "missing.yaml", tmp_path).problems
    assert (problem.file, problem.code) == ("missing.yaml", "unreadable-file")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, "entries"),
        ("deployments:\n  - name: bad\n", "entries"),  # entries, even if none is valid
        ("deployments: []\n", "empty"),
        ("name: x\ndeployments: []\npull: []\n", "empty"),
        ("name: x\n", "missing"),
        ("deployments:\n", "missing"),  # null says nothing, like a missing key
        ("", "missing"),
        ("deployments: {name: a}\n", "unreadable"),
        ("deployments: [\n", "unreadable"),
        ("- name: a\n", "unreadable"),
    ],
)
def test_what_the_deployments_list_says(write_repo: WriteRepo, text: str, expected: str) -> None:
    assert parse_in_repo(write_repo, text).deployments_list == expected


# --- Prefect behaviours that surprise -------------------------------------------------


@pytest.mark.parametrize(
    ("project", "entry", "expected"),
    [
        # build: the entry's key wins, even null / [] / {} (none); no key: the project's
        ("build: [{a.b: {}}]", "", {"build": ({"a.b": {}},)}),
        ("build: [{a.b: {}}]", "build: null", {"build": None}),
        ("build: [{a.b: {}}]", "build: []", {"build": None}),
        ("build: [{a.b: {}}]", "build: {}", {"build": None}),
        ("build: [{a.b: {}}]", "build: [{c.d: {}}]", {"build": ({"c.d": {}},)}),
        ("", "build: {c.d: {x: 1}}", {"build": ({"c.d": {"x": 1}},)}),  # one step as a mapping
        # push: an entry without steps falls back to the project's
        ("push: [{a.b: {}}]", "push: null", {"push": ({"a.b": {}},)}),
        ("push: [{a.b: {}}]", "push: []", {"push": ({"a.b": {}},)}),
        ("push: [{a.b: {}}]", "push: [{c.d: {}}]", {"push": ({"c.d": {}},)}),
        # pull: [] is explicit "none"; null / {} fall back; nothing at all: Prefect's default
        ("pull: [{a.b: {}}]", "", {"pull": ({"a.b": {}},)}),
        ("pull: [{a.b: {}}]", "pull: []", {"pull": ()}),
        ("pull: [{a.b: {}}]", "pull: null", {"pull": ({"a.b": {}},)}),
        ("pull: [{a.b: {}}]", "pull: {}", {"pull": ({"a.b": {}},)}),
        ("pull: []", "", {"pull": ()}),
        ("pull: []", "pull: null", {"pull": None}),
        ("pull: {}", "", {"pull": None}),
        ("", "", {"build": None, "push": None, "pull": None}),
    ],
)
def test_project_sections_and_entry_overrides(
    write_repo: WriteRepo, project: str, entry: str, expected: dict[str, Any]
) -> None:
    """Mirrors `_run_single_deploy` in prefect/cli/deploy/_core.py (Prefect 3.8)."""
    text = f"{project}\ndeployments:\n  - name: d\n    entrypoint: flows/etl.py:etl\n    {entry}\n"
    parsed = parse_in_repo(write_repo, text)
    assert parsed.problems == ()
    [declared] = parsed.deployments
    assert {key: getattr(declared, key) for key in expected} == expected


def test_legacy_single_schedule_is_accepted_with_a_warning(write_repo: WriteRepo) -> None:
    parsed = parse_in_repo(write_repo, with_good(bad("schedule:\n  cron: 0 6 * * *")))
    assert [(p.line, p.code, p.severity) for p in parsed.problems] == [
        (6, "deprecated-key", "warning")
    ]
    [declared] = [d for d in parsed.deployments if d.name == "bad"]
    assert [s["schedule"] for s in declared.schedules] == [
        {"cron": "0 6 * * *", "timezone": None, "day_or": True}
    ]


def test_small_normalisations_prefect_makes(write_repo: WriteRepo) -> None:
    extra = (
        "  description: ''\n  version: ''\n  tags: [etl, 2024, '', ' ']\n"
        "  schedules:\n    - interval: 90\n      anchor_date: 2024-01-01T09:00:00\n"
        '    - rrule: \'{"rrule": "FREQ=DAILY", "timezone": "Europe/Paris"}\'\n'
        "    - cron: 0 6 * * *\n      day_or: 'false'\n      active: 'no'\n      slug: ''\n"
    )
    parsed = parse_in_repo(
        write_repo, with_good("- name: etl.py\n  entrypoint: flows/etl.py:etl\n" + extra)
    )
    assert [(p.line, p.code, p.severity) for p in parsed.problems] == [
        (4, "renamed-deployment", "warning"),  # Prefect strips .py from a deployment name
        (8, "invalid-value", "warning"),  # the int 2024 becomes the tag '2024'
    ]
    [declared] = [d for d in parsed.deployments if d.name == "etl"]
    assert (declared.description, declared.version, declared.tags) == (None, None, ("etl", "2024"))
    assert declared.schedules == (
        {
            # an unquoted YAML timestamp works in a bare interval schedule; naive is UTC
            "schedule": {
                "interval": 90.0,
                "anchor_date": "2024-01-01T09:00:00Z",
                "timezone": "UTC",
            },
            "active": True,
            "parameters": {},
            "slug": None,
        },
        {
            "schedule": {"rrule": "FREQ=DAILY", "timezone": "Europe/Paris"},
            "active": True,
            "parameters": {},
            "slug": None,
        },
        {
            "schedule": {"cron": "0 6 * * *", "timezone": None, "day_or": False},
            "active": False,
            "parameters": {},
            "slug": None,
        },
    )


# Every key Prefect accepts in a deployment entry (DeploymentEntry's fields are Prefect's,
# see test_accepted_keys_are_prefects), with a value, and how deploy-manager treats it:
# "carried" into DeclaredDeployment, or reported with a problem code saying why not.
ENTRY_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "name": ("name: other", ()),
    "version": ("version: '1.0'", ()),
    "version_type": ("version_type: vcs:git", ("not-applied",)),
    "tags": ("tags: [a]", ()),
    "description": ("description: text", ()),
    "schedule": ("schedule: {cron: '0 * * * *'}", ("deprecated-key",)),
    "schedules": ("schedules: [{cron: '0 * * * *'}]", ()),
    "paused": ("paused: true", ()),
    "concurrency_limit": ("concurrency_limit: 2", ()),
    "flow_name": ("flow_name: x", ("ignored-key",)),
    "entrypoint": ("entrypoint: pipelines/sales/job.py:etl", ()),
    "parameters": ("parameters: {a: 1}", ()),
    "enforce_parameter_schema": ("enforce_parameter_schema: false", ()),
    "build": ("build: [{prefect.deployments.steps.run_shell_script: {script: make}}]", ()),
    "push": ("push: [{prefect.deployments.steps.run_shell_script: {script: push}}]", ()),
    "pull": ("pull: [{prefect.deployments.steps.set_working_directory: {directory: /a}}]", ()),
    "work_pool": ("work_pool: {name: p, work_queue_name: q, job_variables: {x: 1}}", ()),
    "triggers": ("triggers: [{enabled: true, expect: [prefect.flow-run.Completed]}]", ()),
    "sla": ("sla: [{name: fast, duration: 60}]", ("not-applied",)),
}


def test_the_table_covers_every_key_prefect_accepts() -> None:
    assert set(ENTRY_KEYS) == set(DeploymentEntry.model_fields)


def entry_text(lines: dict[str, str]) -> str:
    return "deployments:\n  - " + "\n    ".join(lines.values()) + "\n"


@pytest.mark.parametrize("key", sorted(ENTRY_KEYS))
def test_every_key_of_an_entry_is_carried_or_reported(write_repo: WriteRepo, key: str) -> None:
    """Nothing declared is dropped silently."""
    line, codes = ENTRY_KEYS[key]
    entry = {"name": "name: d", "entrypoint": "entrypoint: flows/etl.py:etl"}
    [before] = parse_in_repo(write_repo, entry_text(entry)).deployments
    parsed = parse_in_repo(write_repo, entry_text({**entry, key: line}))
    assert [p.code for p in parsed.problems if p.severity == "error"] == []
    [after] = parsed.deployments
    reported = tuple(p.code for p in parsed.problems)
    assert reported == codes
    if key != "flow_name":  # the only key Prefect ignores outright
        assert after != before, f"{key} is not carried into DeclaredDeployment"
    for problem in parsed.problems:
        assert key in problem.message and problem.remedy


def test_keys_prefect_ignores_are_warnings_that_keep_the_entry(write_repo: WriteRepo) -> None:
    text = with_good(bad("parameter_openapi_schema: {type: object}"))
    parsed = parse_in_repo(write_repo, text)
    assert [(p.line, p.code, p.severity) for p in parsed.problems] == [
        (6, "ignored-key", "warning")
    ]
    assert "the schema of the flow's signature" in parsed.problems[0].message
    assert [d.name for d in parsed.deployments] == ["good", "bad"]


@pytest.mark.parametrize(
    ("schedule", "key"),
    [
        ("{cron: '0 * * * *', anchor_date: '2024-01-01T00:00:00Z'}", "anchor_date"),
        ("{interval: 60, day_or: false}", "day_or"),
        ("{rrule: 'FREQ=DAILY', anchor_date: '2024-01-01T00:00:00Z'}", "anchor_date"),
    ],
)
def test_schedule_keys_of_another_kind_are_reported(
    write_repo: WriteRepo, schedule: str, key: str
) -> None:
    parsed = parse_in_repo(write_repo, with_good(bad(f"schedules: [{schedule}]")))
    [problem] = parsed.problems
    assert (problem.code, problem.severity) == ("ignored-key", "warning")
    assert f"schedules[0].{key}: {key} belongs to" in problem.message
    assert [d.name for d in parsed.deployments] == ["good", "bad"]


def test_flow_name_is_ignored_with_a_warning(write_repo: WriteRepo) -> None:
    parsed = parse_in_repo(write_repo, with_good(bad("flow_name: something")))
    assert [(p.code, p.severity) for p in parsed.problems] == [("ignored-key", "warning")]
    assert [d.name for d in parsed.deployments] == ["good", "bad"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("python:3.11-slim", None),
        ("registry.example.com:5000/team/app:1.2.0", None),
        ("localhost:5000/app", None),
        ("ghcr.io/org/app@sha256:" + "a" * 64, None),
        ("app:v1@sha256:" + "0" * 64, None),
        ("a__b/c-d.e", None),
        ("Team/app", None),  # an uppercase first component is a registry host to docker
        ("team/App", "repository names must be lowercase"),
        ("app:" + "x" * 129, "tag"),
        ("app: latest", "whitespace"),
        ("app-/x", "separators"),
        ("app@sha256:abc", "digest"),
        ("", "empty"),
    ],
)
def test_image_reference_grammar(value: str, reason: str | None) -> None:
    found = image_problem(value)
    assert found is None if reason is None else reason in (found or "")


# --- Prefect as the oracle ------------------------------------------------------------


def test_accepted_keys_are_prefects() -> None:
    from prefect.cli.deploy._models import (
        ConcurrencyLimitSpec,
        DeploymentConfig,
        PrefectYamlModel,
        RawScheduleConfig,
        WorkPoolConfig,
    )

    assert set(DeploymentEntry.model_fields) == set(DeploymentConfig.model_fields)
    assert set(ScheduleEntry.model_fields) == set(RawScheduleConfig.model_fields)
    assert set(WorkPoolEntry.model_fields) == set(WorkPoolConfig.model_fields)
    assert set(ConcurrencyEntry.model_fields) == set(ConcurrencyLimitSpec.model_fields)
    assert set(ProjectEntry.model_fields) | {"deployments"} == set(PrefectYamlModel.model_fields)


def prefect_schedules(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Schedules as `prefect deploy` builds them, in our shape (the API's fields)."""
    from prefect.cli.deploy._config import (
        _handle_deprecated_schedule_fields,
        _load_deploy_configs_and_actions,
    )
    from prefect.cli.deploy._schedules import _construct_schedules
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from rich.console import Console

    console = Console(file=io.StringIO())
    configs, _ = _load_deploy_configs_and_actions(path, console=console)
    out = {}
    for config in configs:
        config = _handle_deprecated_schedule_fields(config)
        given = config.get("schedules") or []
        built = _construct_schedules(config, {}, console=console, is_interactive=lambda: False)
        shaped = []
        for raw, schedule in zip(given, built, strict=True):
            create = DeploymentScheduleCreate(**schedule)  # what RunnerDeployment sends
            inner = schedule["schedule"].model_dump(mode="json")
            if "interval" in inner and not raw.get("anchor_date"):
                inner["anchor_date"] = None  # Prefect's is "now"
            item = {
                "schedule": inner,
                "active": create.active,
                "parameters": create.parameters,
                "slug": create.slug,
            }
            if create.replaces:
                item["replaces"] = create.replaces
            shaped.append(item)
        out[config["name"]] = shaped
    return out


ORACLE_FILES = {
    "cron": """
        deployments:
          - name: plain
            schedules:
              - cron: "0 6 * * *"
          - name: full
            schedules:
              - cron: "*/15 8-18 * * MON-FRI"
                timezone: America/New_York
                day_or: false
                active: false
                parameters: {region: us}
                slug: business-hours
                replaces: old-slug
              - cron: "0 0 1 * *"
                day_or: "true"
                active: "no"
          - name: seconds-and-aliases
            schedules:
              - cron: "0 0 * * * 30"
              - cron: "@daily"
              - cron: "0 0 L * *"
              - cron: "0 0 * * 5#2"
        """,
    "interval": """
        deployments:
          - name: intervals
            schedules:
              - interval: 3600
              - interval: 90.5
                timezone: Europe/Berlin
              - interval: PT15M
                anchor_date: "2024-01-01T09:00:00"
              - interval: "01:30:00"
                anchor_date: "2024-01-01T09:00:00+02:00"
              - interval: P1D
                anchor_date: "2024-06-01T00:00:00.250Z"
                timezone: Asia/Tokyo
              - interval: 60
                anchor_date: 2024-01-01T09:00:00
          - name: legacy
            schedule:
              interval: 600
        """,
    "rrule": """
        deployments:
          - name: rrules
            schedules:
              - rrule: "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9"
              - rrule: "DTSTART:20240101T090000\\nRRULE:FREQ=DAILY;COUNT=10"
                timezone: America/Chicago
              - rrule: '{"rrule": "FREQ=HOURLY", "timezone": "Europe/Paris"}'
              - rrule: '{"rrule": "FREQ=HOURLY", "timezone": "Europe/Paris"}'
                timezone: Asia/Tokyo
        """,
}


@pytest.mark.parametrize("kind", sorted(ORACLE_FILES))
def test_schedules_equal_what_prefect_builds(tmp_path: Path, kind: str) -> None:
    text = textwrap.dedent(ORACLE_FILES[kind])
    (tmp_path / "prefect.yaml").write_text(text)
    ours = parse_prefect_yaml_text(text, "prefect.yaml", tmp_path)
    assert {p.code for p in ours.problems} <= {"missing-entrypoint", "deprecated-key"}
    assert {d.name: list(d.schedules) for d in ours.deployments} == prefect_schedules(
        tmp_path / "prefect.yaml"
    )


def test_monorepo_files_load_in_prefect() -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    for rel, expected in EXPECTED_MONOREPO.items():
        model = PrefectYamlModel.model_validate(yaml.safe_load((MONOREPO / rel).read_text()))
        assert [d.name for d in model.deployments] == [d.name for d in expected]


CRONS = [
    "0 6 * * *", "*/5 * * * *", "0 0 * * MON-FRI", "0 0 1,15 * *", "0 0 L * *", "0 0 * * 5#2",
    "0 0 * * 5L", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight",
    "0 0 * * * 30", "0 0 * * * 30 2030", "0 0 29 2 *", "0 0 31 4 *", "0 0 * * 7", "0 24 * * *",
    "60 * * * *", "* * * *", "* * * * * * * *", "0 0 1W * *", "0 0 ? * *", "H * * * *",
    "R * * * *", "0 0 * JAN-MAR *", "0 0 * * sun", "*/0 * * * *", "5-1 * * * *", "", "@reboot",
    "0 0 * * 8", "0 0 0 * *", "0 0 * 0 *",
]  # fmt: skip


def prefect_accepts_cron(cron: str) -> bool:
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron)
    except ValidationError:
        return False
    return True


def test_cron_validation_is_prefects() -> None:
    assert {c: cron_is_valid(c) for c in CRONS} == {c: prefect_accepts_cron(c) for c in CRONS}


# Per field (minute, hour, day of month, month, day of week): the plain forms answered
# without croniter, and, for the combinations, their bounds.
PLAIN_FIELDS = [
    ["*", *map(str, range(low, high + 1)), *(f"*/{n}" for n in range(1, high + 1))]
    for low, high in [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
]
PLAIN_BOUNDS = [[f[0], f[1], f[-1], "*/1", next(x for x in reversed(f) if x[0] != "*")]
                for f in PLAIN_FIELDS]  # fmt: skip
NOT_PLAIN = [
    "0 24 * * *", "00 6 * * *", "0 0 0 * *", "0 0 * 0 *", "0 0 * * 7", "*/0 * * * *",
    " 0 6 * * *", "0  6 * * *", "0 6 * * * 0", "0 6 * *", "0 6 * * MON", "0 6 1-5 * *",
]  # fmt: skip


def test_plain_crons_answered_without_croniter_are_valid_for_prefect() -> None:
    import itertools

    from control_plane.prefect_yaml.schedules import _plainly_valid_cron

    singles = [
        " ".join(value if i == index else "*" for i in range(5))
        for index, values in enumerate(PLAIN_FIELDS)
        for value in values
    ]
    combined = [" ".join(fields) for fields in itertools.product(*PLAIN_BOUNDS)]
    for cron in [*singles, *combined]:
        assert _plainly_valid_cron(cron), cron
        assert prefect_accepts_cron(cron), cron
    assert not any(_plainly_valid_cron(cron) for cron in NOT_PLAIN)
    # what is not plain is croniter's to answer, the same way as before
    assert {c: cron_is_valid(c) for c in NOT_PLAIN} == {
        c: prefect_accepts_cron(c) for c in NOT_PLAIN
    }


@pytest.mark.parametrize("kind", ["cron", "interval", "rrule"])
def test_timezone_validation_is_prefects(write_repo: WriteRepo, kind: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
    from pydantic import ValidationError

    names = [
        *("UTC", "Europe/Berlin", "US/Pacific", "EST", "Etc/GMT+5", "Factory", "localtime"),
        *("europe/berlin", "Mars/Olympus", "", "GMT", "America/Argentina/Buenos_Aires"),
    ]
    build = {
        "cron": lambda tz: CronSchedule(cron="0 6 * * *", timezone=tz),
        "interval": lambda tz: IntervalSchedule(interval=timedelta(seconds=60), timezone=tz),
        "rrule": lambda tz: RRuleSchedule(rrule="FREQ=DAILY", timezone=tz),
    }[kind]
    value = {"cron": "cron: 0 6 * * *", "interval": "interval: 60", "rrule": "rrule: FREQ=DAILY"}
    prefect, ours = {}, {}
    for name in names:
        try:
            build(name)
            prefect[name] = True
        except ValidationError:
            prefect[name] = False
        text = "deployments:\n  - name: d\n    entrypoint: flows/etl.py:etl\n    schedules:\n"
        text += f"      - {value[kind]}\n        timezone: '{name}'\n"
        ours[name] = not parse_in_repo(write_repo, text).problems
    assert ours == prefect


@pytest.mark.parametrize(
    "rrule",
    ["FREQ=DAILY", "FREQ=SOMETIMES", "FREQ=WEEKLY;BYDAY=XX", "RRULE:FREQ=DAILY;UNTIL=2024",
     "DTSTART:20240101T000000\nRRULE:FREQ=DAILY\nEXDATE:20240102T000000", "hello",
     "FREQ=DAILY;" + "BYHOUR=1;" * 800],
)  # fmt: skip
def test_rrule_validation_is_prefects(rrule: str) -> None:
    from prefect.client.schemas.schedules import RRuleSchedule
    from pydantic import ValidationError

    try:
        RRuleSchedule(rrule=rrule)
        accepted = True
    except ValidationError:
        accepted = False
    text = yaml.safe_dump(
        {"deployments": [{"name": "d", "schedules": [{"rrule": rrule}]}]}, width=10_000
    )
    parsed = parse_prefect_yaml_text(text, "prefect.yaml", Path("/nonexistent"))
    rejected = any(p.code == "invalid-rrule" for p in parsed.problems)
    assert rejected is not accepted


# --- no Prefect on the discovery path -------------------------------------------------


def test_parsing_imports_no_prefect() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import control_plane.prefect_yaml.parser as m\n"
        f"root = Path({str(MONOREPO)!r})\n"
        "for rel in ('prefect.yaml', 'pipelines/ingest/prefect.yaml', "
        "'pipelines/reports/prefect.yaml'):\n"
        "    assert m.parse_prefect_yaml(root / rel, root).deployments\n"
        "print(sorted(k for k in sys.modules if k == 'prefect' or k.startswith('prefect.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "[]"


def test_problems_are_problems() -> None:
    parsed = parse_prefect_yaml_text("- a\n", "x/prefect.yaml", Path("/nonexistent"))
    assert all(isinstance(p, Problem) for p in parsed.problems)
    assert parsed.problems[0].file == "x/prefect.yaml"
    assert parsed.errors == parsed.problems
