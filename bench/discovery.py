"""How fast deploy-manager discovers flows, next to the way `prefect deploy` loads them.

For synthetic repositories of (by default) 100, 1000 and 5000 Python files, generated
deterministically from a seed, this script measures and prints (no asserts, no pass/fail):

1. deploy-manager's discovery in-process: the wall time of `discover(Path(repo))` alone
   (the import of `control_plane.discovery` is timed once, separately);
2. deploy-manager's discovery as a whole command in a fresh process:
   `deploy-manager discover REPO --json > /dev/null` (exit status 0 or 1 both count);
   the goal is 1000 flow files in under 1 s. Nothing is cached between runs except the
   bytecode of the installed modules, and only if the environment has it: the machine
   facts say whether it does (`make setup` compiles it) and the load average at the
   start and the end, since a busy machine (and a busy second core, which discovery
   uses for half of the files) moves these figures more than most changes do;
3. the way `prefect deploy` loads flows: a fresh process that imports Prefect (timed
   separately) and then, for every flow, runs
   `prefect.flows.load_flow_from_entrypoint("path.py:func")` and
   `prefect.utilities.callables.parameter_schema(flow.fn)`. Above `--prefect-max` files
   it loads an evenly spaced sample of that many files and extrapolates the per-file part
   linearly; such figures are marked "~" and "*" (Prefect's loader adds two sys.path
   entries per file, so a real run may be slower still). `--prefect-max 0` skips it.

The synthetic repositories are realistic and varied: nested packages
(`pipelines/team_k/[sub_j/]flow_n.py`), `from prefect import flow, task`, aliases,
`import prefect` / `import prefect as pf`, `x = flow(...)(fn)`, async flows, decorator
arguments, Google-style docstrings, typed parameters (builtins, Optional, Union, `|`,
generics, Literal, datetime/date, str Enums and pydantic models defined in the file,
module constants as defaults), tasks and helpers, package imports of team modules, about
one plain helper module per ten files, and one prefect.yaml per team directory.
All of it is importable, so Prefect can load every flow. Repositories are generated under
the temp dir (or `--keep DIR`) and reused when the parameters match.

"size" is the number of Python modules, `__init__.py` files not counted; files/s is
size divided by wall time.

Run: `.venv/bin/python bench/discovery.py [--sizes 100 1000 5000] [--keep DIR]`
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GENERATOR_VERSION = 3

# --- the synthetic repository --------------------------------------------------------

VERBS = (
    "load",
    "sync",
    "refresh",
    "export",
    "ingest",
    "score",
    "train",
    "backfill",
    "aggregate",
    "publish",
    "clean",
    "validate",
    "archive",
    "reconcile",
    "snapshot",
)
NOUNS = (
    "orders",
    "customers",
    "invoices",
    "events",
    "sessions",
    "inventory",
    "payments",
    "shipments",
    "metrics",
    "features",
    "reports",
    "campaigns",
    "tickets",
    "users",
    "prices",
    "forecasts",
    "ledgers",
)

# name -> (annotation, default source or None for required, typing names, other imports, doc)
PARAMETERS: dict[str, tuple[str, str | None, tuple[str, ...], tuple[str, ...], str]] = {
    "table": ("str", None, (), (), "The source table."),
    "day": ("date", None, (), ("date",), "The day to process."),
    "limit": ("int", "100", (), (), "Maximum number of rows to read."),
    "ratio": ("float", "0.25", (), (), "Share of rows to sample."),
    "dry_run": ("bool", "False", (), (), "Read, but do not write."),
    "tables": ("list[str]", '["orders", "customers"]', (), (), "Tables to copy."),
    "options": ("dict[str, int] | None", "None", (), (), "Per-table overrides."),
    "since": ("datetime | None", "None", (), ("datetime",), "Start of the window; all when empty."),
    "retries": ("Optional[int]", "None", ("Optional",), (), "Retries per batch."),
    "key": ("Union[int, str]", "0", ("Union",), (), "Partition key."),
    "cadence": (
        'Literal["hourly", "daily", "weekly"]',
        '"daily"',
        ("Literal",),
        (),
        "How often the job runs.",
    ),
    "window": ("tuple[int, int]", "(0, 24)", (), (), "Hours of the day to cover."),
    "labels": ("dict[str, str]", "{}", (), (), "Labels attached to the output."),
    "threshold": ("float | None", "None", (), (), "Alert threshold."),
    "ids": ("list[int] | None", "None", (), (), "Only these ids."),
    "payload": ("dict[str, Any] | None", "None", ("Any",), (), "Extra payload for the sink."),
    "target": ("str", '"s3://warehouse/raw"', (), (), "Where the output goes."),
    "batch_size": ("int", "DEFAULT_BATCH", (), (), "Rows per write."),
}
COMMON_PARAMETERS = tuple(PARAMETERS)


@dataclass
class RepoInfo:
    """What was generated, kept beside the repository so that a rerun can reuse it."""

    root: str
    size: int
    seed: int
    version: int
    flow_files: list[str] = field(default_factory=list)
    helper_files: list[str] = field(default_factory=list)
    entrypoints: list[str] = field(default_factory=list)  # every flow, "path.py:attr"
    prefect_yaml_files: list[str] = field(default_factory=list)
    listed_deployments: int = 0


@dataclass
class _Slot:
    index: int
    kind: str  # "flow", "helper", "common", "shared"
    team: int
    directory: str  # repo-relative posix directory


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _team_name(team: int) -> str:
    return f"team_{team:03d}"


def _prefect_style(rng: random.Random) -> str:
    return rng.choices(
        ("plain", "alias", "module", "module_alias", "assign"), weights=(50, 15, 20, 10, 5)
    )[0]


def _flow_file(
    rng: random.Random, slot: _Slot, team_helpers: list[str], is_sub: bool
) -> tuple[str, list[str]]:
    """The source of one flow file and the module attributes of its flows."""
    idx = slot.index
    team = _team_name(slot.team)
    style = _prefect_style(rng)
    future = rng.random() < 0.3
    has_enum = rng.random() < 0.25
    has_model = rng.random() < 0.07
    is_async = rng.random() < 0.2
    has_subflow = not is_async and rng.random() < 0.15
    verb, noun = rng.choice(VERBS), rng.choice(NOUNS)
    func = f"{verb}_{noun}_{idx:05d}"

    if style in ("plain", "assign"):
        flow_ref, task_ref = "flow", "task"
        prefect_import = "from prefect import flow, task"
    elif style == "alias":
        flow_ref, task_ref = "prefect_flow", "prefect_task"
        prefect_import = "from prefect import flow as prefect_flow, task as prefect_task"
    elif style == "module":
        flow_ref, task_ref = "prefect.flow", "prefect.task"
        prefect_import = "import prefect"
    else:
        flow_ref, task_ref = "pf.flow", "pf.task"
        prefect_import = "import prefect as pf"

    # parameters: required ones first, then defaults
    count = rng.randint(0, 6)
    names = rng.sample(COMMON_PARAMETERS, count)
    params: list[tuple[str, str, str | None, str]] = []
    typing_names: set[str] = set()
    other: set[str] = set()
    for name in names:
        annotation, default, typing_needed, other_needed, doc = PARAMETERS[name]
        params.append((name, annotation, default, doc))
        typing_names.update(typing_needed)
        other.update(other_needed)
    if has_enum:
        params.append(("mode", "Mode", "Mode.FULL", "Full reload or increments."))
    if has_model:
        if rng.random() < 0.5:
            params.append(("load_options", "LoadOptions | None", "None", "How to load."))
        else:
            params.append(("load_options", "LoadOptions", None, "How to load."))
    rng.shuffle(params)
    params.sort(key=lambda p: p[2] is not None)  # stable: required first

    lines: list[str] = [f'"""{verb.capitalize()} {noun} for {team.replace("_", " ")}."""', ""]
    if future:
        lines += ["from __future__ import annotations", ""]
    std: list[str] = []
    if is_async:
        std.append("import asyncio")
    if "datetime" in other and "date" in other:
        std.append("from datetime import date, datetime")
    elif "datetime" in other:
        std.append("from datetime import datetime")
    elif "date" in other:
        std.append("from datetime import date")
    if has_enum:
        std.append("from enum import Enum")
    if typing_names:
        std.append(f"from typing import {', '.join(sorted(typing_names))}")
    lines += sorted(std, key=lambda s: s.split()[1])
    lines.append("")
    third = [prefect_import]
    if has_model:
        third.append("from pydantic import BaseModel, Field")
    lines += sorted(third)
    local: list[str] = []
    helper_calls: list[str] = []
    if rng.random() < 0.4:
        if is_sub or rng.random() < 0.5:
            local.append(f"from pipelines.{team}.{team}_common import normalize_rows")
        else:
            local.append(f"from {team}_common import normalize_rows")
        helper_calls.append("rows = normalize_rows(rows)")
    if rng.random() < 0.2:
        local.append("from shared.io import write_json")
        helper_calls.append('write_json("out.json", {"rows": len(rows)})')
    if team_helpers and rng.random() < 0.15:
        module = rng.choice(team_helpers)
        local.append(f"from {module} import summarize")
        helper_calls.append("print(summarize(rows))")
    if local:
        lines += ["", *sorted(local)]
    lines += [
        "",
        f"DEFAULT_BATCH = {rng.choice((100, 250, 500, 1000, 5000))}",
        f'SOURCE = "{noun}"',
        f"RETRY_DELAYS = [{rng.randint(1, 10)}, {rng.randint(10, 60)}]",
        "",
    ]
    if has_enum:
        lines += [
            "",
            "class Mode(str, Enum):",
            '    FULL = "full"',
            '    INCREMENTAL = "incremental"',
            "",
        ]
    if has_model:
        lines += [
            "",
            "class LoadOptions(BaseModel):",
            '    """How rows are written."""',
            "",
            "    chunk_size: int = 1000",
            "    columns: list[str] = Field(default_factory=list)",
            "    upsert: bool = True",
            "",
        ]

    n_helpers, n_tasks = rng.randint(1, 3), rng.randint(1, 3)
    for k in range(n_helpers):
        lines += [
            "",
            f"def _clean_{k}(rows: list[dict]) -> list[dict]:",
            f'    """Drop empty rows ({k})."""',
            "    return [row for row in rows if row]",
            "",
        ]
    for k in range(n_tasks):
        decorator = rng.choice(
            (f"@{task_ref}", f"@{task_ref}(retries=2, retry_delay_seconds=RETRY_DELAYS)")
        )
        lines += [
            "",
            decorator,
            f"def step_{k}(source: str, limit: int = DEFAULT_BATCH) -> list[dict]:",
            f"    return [{{'source': source, 'i': i, 'step': {k}}} for i in range(min(limit, 3))]",
            "",
        ]

    flow_name = f"{team.replace('_', '-')}-{verb}-{noun}-{idx}"
    decorator_kind = rng.choice(("bare", "empty", "name", "options", "description"))
    if decorator_kind == "bare" or style == "assign":
        call = ""
    elif decorator_kind == "empty":
        call = "()"
    elif decorator_kind == "name":
        call = f'(name="{flow_name}", log_prints=True)'
    elif decorator_kind == "options":
        call = "(log_prints=True, retries=1, retry_delay_seconds=30)"
    else:
        description = f"{verb.capitalize()} the {noun}."
        call = f'(name="{flow_name}", description="{description}", timeout_seconds=3600)'

    if has_subflow:
        sub = f"notify_{noun}_{idx:05d}"
        lines += [
            "",
            f"@{flow_ref}",
            f'def {sub}(message: str = "done") -> None:',
            '    """Tell the team."""',
            "    print(message)",
            "",
        ]

    signature = ", ".join(
        f"{name}: {annotation}" + ("" if default is None else f" = {default}")
        for name, annotation, default, _ in params
    )
    doc_kind = rng.choices(("google", "plain", "none"), weights=(60, 20, 20))[0]
    body_doc: list[str] = []
    if doc_kind == "google" and params:
        body_doc = [f'    """{verb.capitalize()} the {noun} of {team}.', "", "    Args:"]
        body_doc += [f"        {name}: {doc}" for name, _, _, doc in params]
        body_doc += ['    """']
    elif doc_kind != "none":
        body_doc = [f'    """{verb.capitalize()} the {noun}, then report."""']
    define = "async def" if is_async else "def"
    target = f"_{func}_impl" if style == "assign" else func
    if style != "assign":
        lines += ["", f"@{flow_ref}{call}"]
    else:
        lines += [""]
    lines += [f"{define} {target}({signature}) -> int:", *body_doc]
    lines.append("    rows: list[dict] = []")
    for k in range(n_tasks):
        lines.append(f"    rows += step_{k}(SOURCE)")
    lines.append(f"    rows = _clean_{rng.randrange(n_helpers)}(rows)")
    lines += [f"    {c}" for c in helper_calls]
    if is_async:
        lines.append("    await asyncio.sleep(0)")
    if has_subflow:
        lines.append(f'    {sub}(f"{{len(rows)}} rows")')
    lines += ['    print(f"processed {len(rows)} rows")', "    return len(rows)", ""]
    if style == "assign":
        assign_call = f'(name="{flow_name}", log_prints=True)' if rng.random() < 0.5 else ""
        if assign_call:
            lines += ["", f"{func} = flow{assign_call}({target})"]
        else:
            lines += ["", f"{func} = flow({target})"]
    attributes = [func] + ([sub] if has_subflow else [])
    if rng.random() < 0.5:
        run = f"asyncio.run({func}())" if is_async else f"{func}()"
        if not any(default is None for _, _, default, _ in params):
            lines += ["", 'if __name__ == "__main__":', f"    {run}"]
    return "\n".join(lines).rstrip() + "\n", attributes


def _helper_file(rng: random.Random, slot: _Slot) -> str:
    """A plain helper module: constants and functions, sometimes tasks, never a flow."""
    with_tasks = rng.random() < 0.3
    lines = [f'"""Helpers {slot.index} of {_team_name(slot.team)}."""', ""]
    lines += ["import json", "from collections import Counter", ""]
    if with_tasks:
        lines += ["from prefect import task", ""]
    lines += [f"THRESHOLD = {rng.randint(1, 99)}", ""]
    lines += [
        "",
        "def summarize(rows: list[dict]) -> str:",
        '    """Count rows by source."""',
        '    return json.dumps(Counter(str(row.get("source")) for row in rows))',
        "",
    ]
    for k in range(rng.randint(1, 4)):
        lines += [
            "",
            f"def ratio_{k}(a: int, b: int) -> float:",
            f"    return a / b if b else float({k})",
            "",
        ]
    if with_tasks:
        lines += [
            "",
            "@task",
            "def count(rows: list[dict]) -> int:",
            "    return len(rows)",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


COMMON_SOURCE = '''"""Shared code of {team}."""

TEAM = "{team}"


def normalize_rows(rows: list[dict]) -> list[dict]:
    """Lower-case the keys of every row."""
    return [{{str(k).lower(): v for k, v in row.items()}} for row in rows]
'''

SHARED_IO = '''"""Output helpers used by many teams."""

import json
from pathlib import Path


def write_json(path: str, data: dict) -> None:
    Path(path).write_text(json.dumps(data))
'''

SHARED_DATES = '''"""Date helpers used by many teams."""

from datetime import date, timedelta


def yesterday(today: date | None = None) -> date:
    return (today or date.today()) - timedelta(days=1)
'''


def _prefect_yaml(rng: random.Random, team: int, entries: list[tuple[str, str]]) -> str:
    name = _team_name(team).replace("_", "-")
    lines = [
        f"# Deployments of {name}; entrypoints are relative to this directory.",
        "deployments:",
    ]
    for rel, attr in entries:
        minute, hour = rng.randrange(60), rng.randrange(24)
        lines += [
            f"  - name: {rng.choice(('daily', 'nightly', 'main', 'prod'))}",
            f"    entrypoint: {rel}:{attr}",
            f"    tags: [{name}, {rng.choice(VERBS)}]",
            "    work_pool:",
            f"      name: {name}-pool",
            "    schedules:",
            f'      - cron: "{minute} {hour} * * *"',
            "        timezone: UTC",
        ]
        if rng.random() < 0.2:
            lines += [
                "  - name: backfill",
                f"    entrypoint: {rel}:{attr}",
                f"    tags: [{name}, backfill]",
                "    work_pool:",
                f"      name: {name}-pool",
                "      work_queue_name: backfill",
            ]
    return "\n".join(lines) + "\n"


def generate(root: Path, size: int, seed: int) -> RepoInfo:
    """Write a repository of `size` Python modules (plus `__init__.py`s) under `root`."""
    rng = random.Random(seed * 1_000_003 + size)
    writer = _Writer(root)
    teams = max(2, round(size / 25))
    helpers = max(min(size, teams + 2), round(size / 10))
    team_dirs: dict[int, list[str]] = {}
    for team in range(teams):
        base = f"pipelines/{_team_name(team)}"
        subs = rng.choice((0, 0, 0, 1, 2))
        team_dirs[team] = [base] + [f"{base}/sub_{j}" for j in range(subs)]

    slots: list[_Slot] = [
        _Slot(0, "shared", 0, "shared"),
        _Slot(1, "shared", 0, "shared"),
    ]
    for team in range(teams):
        if len(slots) >= helpers:
            break
        slots.append(_Slot(len(slots), "common", team, team_dirs[team][0]))
    while len(slots) < size:
        kind = "helper" if len(slots) < helpers else "flow"
        team = rng.randrange(teams)
        slots.append(_Slot(len(slots), kind, team, rng.choice(team_dirs[team])))
    slots = slots[:size]

    info = RepoInfo(root=str(root), size=size, seed=seed, version=GENERATOR_VERSION)
    writer.write("pyproject.toml", '[project]\nname = "synthetic-flows"\nversion = "0.1.0"\n')
    writer.write("README.md", f"Synthetic flow repository: {size} modules, seed {seed}.\n")
    writer.write("pipelines/__init__.py", "")
    for dirs in team_dirs.values():
        for directory in dirs:
            writer.write(f"{directory}/__init__.py", "")
        if rng.random() < 0.3:
            writer.write(f"{dirs[0]}/requirements.txt", "pandas>=2\nrequests>=2.31\n")

    team_helpers: dict[int, list[str]] = {t: [] for t in range(teams)}
    for slot in slots:
        if slot.kind == "helper":
            dotted = slot.directory.replace("/", ".")
            team_helpers[slot.team].append(f"{dotted}.util_{slot.index:05d}")

    flows_by_dir: dict[str, list[tuple[str, str]]] = {}
    for slot in slots:
        if slot.kind == "shared":
            rel = "shared/io.py" if slot.index == 0 else "shared/dates.py"
            writer.write("shared/__init__.py", "")
            writer.write(rel, SHARED_IO if slot.index == 0 else SHARED_DATES)
            info.helper_files.append(rel)
        elif slot.kind == "common":
            rel = f"{slot.directory}/{_team_name(slot.team)}_common.py"
            writer.write(rel, COMMON_SOURCE.format(team=_team_name(slot.team)))
            info.helper_files.append(rel)
        elif slot.kind == "helper":
            rel = f"{slot.directory}/util_{slot.index:05d}.py"
            writer.write(rel, _helper_file(rng, slot))
            info.helper_files.append(rel)
        else:
            rel = f"{slot.directory}/flow_{slot.index:05d}.py"
            is_sub = slot.directory != team_dirs[slot.team][0]
            text, attributes = _flow_file(rng, slot, team_helpers[slot.team], is_sub)
            compile(text, rel, "exec")  # the generator must write valid Python
            writer.write(rel, text)
            info.flow_files.append(rel)
            info.entrypoints += [f"{rel}:{attr}" for attr in attributes]
            flows_by_dir.setdefault(team_dirs[slot.team][0], []).append((rel, attributes[0]))

    for team, dirs in team_dirs.items():
        flows = flows_by_dir.get(dirs[0], [])
        if not flows:
            continue
        chosen = rng.sample(flows, min(len(flows), rng.randint(2, 5)))
        entries = [(rel.removeprefix(dirs[0] + "/"), attr) for rel, attr in sorted(chosen)]
        text = _prefect_yaml(rng, team, entries)
        rel = f"{dirs[0]}/prefect.yaml"
        writer.write(rel, text)
        info.prefect_yaml_files.append(rel)
        info.listed_deployments += text.count("  - name:")
    return info


def ensure_repository(base: Path, size: int, seed: int) -> tuple[RepoInfo, bool]:
    """The repository for (size, seed), generated unless an identical one exists."""
    name = f"repo-{size}-s{seed}-v{GENERATOR_VERSION}"
    root, manifest = base / name, base / f"{name}.json"
    if root.is_dir() and manifest.is_file():
        try:
            data = json.loads(manifest.read_text())
            info = RepoInfo(**data)
            if (info.size, info.seed, info.version) == (size, seed, GENERATOR_VERSION):
                return info, True
        except (ValueError, TypeError):
            pass
    partial = base / f"{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    info = generate(partial, size, seed)
    partial.rename(root)
    info.root = str(root)
    manifest.write_text(json.dumps(asdict(info)))
    return info, False


# --- measurements --------------------------------------------------------------------


def _run(argv: list[str], cwd: Path | None = None) -> tuple[float, int, str]:
    """Wall time, exit status and stderr tail of a fresh process; stdout is discarded."""
    start = time.perf_counter()
    proc = subprocess.run(
        argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    return time.perf_counter() - start, proc.returncode, proc.stderr.decode(errors="replace")


def _timed_python(code: str) -> tuple[float, int]:
    """Wall time (best of three) and exit status of `python -c code` in a fresh process."""
    runs = [_run([sys.executable, "-c", code], cwd=PROJECT_ROOT) for _ in range(3)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


@dataclass
class DmInProcess:
    times: list[float]
    flows: int
    deployments: int
    problems: dict[str, int]
    schemas: dict[str, Any]


def measure_dm_in_process(discover: Any, repo: Path, repeat: int) -> DmInProcess:
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = discover(repo)
        times.append(time.perf_counter() - start)
    problems: dict[str, int] = {}
    for problem in result.problems:
        key = f"{problem.severity} {problem.code}"
        problems[key] = problems.get(key, 0) + 1
    return DmInProcess(
        times=times,
        flows=len(result.flows),
        deployments=len(result.deployments),
        problems=problems,
        schemas={f.entrypoint: f.parameters for f in result.flows},
    )


@dataclass
class DmCommand:
    times: list[float]
    status: int
    stderr: str

    @property
    def failed(self) -> bool:
        """Exit 0 (clean) and 1 (problems found) are results; a traceback is not."""
        return self.status not in (0, 1) or "Traceback (most recent call last)" in self.stderr


def measure_dm_command(repo: Path, repeat: int) -> DmCommand:
    times: list[float] = []
    status, stderr = 0, ""
    for _ in range(repeat):
        elapsed, status, stderr = _run([str(_dm_command()), "discover", str(repo), "--json"])
        times.append(elapsed)
        if "Traceback (most recent call last)" in stderr:
            break
    return DmCommand(times, status, stderr)


def _dm_command() -> Path:
    beside = Path(sys.executable).parent / "deploy-manager"
    if beside.exists():
        return beside
    found = shutil.which("deploy-manager")
    return Path(found) if found else beside


PREFECT_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import prefect
import prefect.flows
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema
t1 = time.perf_counter()
fallbacks = []
_safe = prefect.flows.safe_load_flow_from_entrypoint
def _counting(entrypoint, *args, **kwargs):
    fallbacks.append(entrypoint)
    return _safe(entrypoint, *args, **kwargs)
prefect.flows.safe_load_flow_from_entrypoint = _counting
entrypoints = json.load(open(sys.argv[1]))
schemas, failures = {}, []
for entrypoint in entrypoints:
    try:
        loaded = load_flow_from_entrypoint(entrypoint)
        schemas[entrypoint] = parameter_schema(loaded.fn).model_dump(exclude_unset=True)
    except Exception as exc:
        failures.append([entrypoint, f"{type(exc).__name__}: {exc}"[:300]])
t2 = time.perf_counter()
with open(sys.argv[2], "w") as out:
    json.dump({"import": t1 - t0, "load": t2 - t1, "failures": failures,
               "fallbacks": fallbacks, "schemas": schemas}, out, default=str)
"""


@dataclass
class PrefectResult:
    total: float  # wall time of the whole subprocess (extrapolated when sampled)
    import_s: float
    per_file_part: float  # load + schema of every flow (extrapolated when sampled)
    files_loaded: int
    flows_loaded: int
    extrapolated: bool
    failures: list[list[str]]
    fallbacks: list[str]
    schemas: dict[str, Any]
    status: int
    stderr: str


def measure_prefect(info: RepoInfo, cap: int, work: Path) -> PrefectResult:
    files = info.flow_files
    sample = files
    if len(files) > cap:
        step = len(files) / cap
        sample = [files[int(i * step)] for i in range(cap)]
    chosen = set(sample)
    entrypoints = [e for e in info.entrypoints if e.rpartition(":")[0] in chosen]
    entry_file, out_file = work / "entrypoints.json", work / "prefect-out.json"
    entry_file.write_text(json.dumps(entrypoints))
    out_file.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PREFECT_CHILD, str(entry_file), str(out_file)],
        cwd=info.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    total = time.perf_counter() - start
    stderr = proc.stderr.decode(errors="replace")
    if not out_file.is_file():
        return PrefectResult(
            total, 0.0, 0.0, 0, 0, False, [], [], {}, proc.returncode, stderr[-2000:]
        )
    data = json.loads(out_file.read_text())
    load = data["load"]
    extrapolated = len(sample) < len(files)
    if extrapolated:
        scaled = load * len(files) / len(sample)
        total += scaled - load
        load = scaled
    return PrefectResult(
        total=total,
        import_s=data["import"],
        per_file_part=load,
        files_loaded=len(sample),
        flows_loaded=len(entrypoints),
        extrapolated=extrapolated,
        failures=data["failures"],
        fallbacks=data["fallbacks"],
        schemas=data["schemas"],
        status=proc.returncode,
        stderr=stderr[-2000:],
    )


def compare_schemas(dm: dict[str, Any], prefect: dict[str, Any]) -> tuple[int, int, list[str]]:
    """(identical, compared, a few differing entrypoints with the first differing key)."""
    same, compared, differing = 0, 0, []
    for entrypoint, expected in prefect.items():
        if entrypoint not in dm:
            differing.append(f"{entrypoint}: not found by deploy-manager")
            continue
        compared += 1
        got = json.loads(json.dumps(dm[entrypoint], default=str))
        if got == expected:
            same += 1
            continue
        where = _first_difference(got, expected)
        differing.append(f"{entrypoint}: {where}")
    return same, compared, differing


def _first_difference(got: Any, expected: Any, path: str = "") -> str:
    if isinstance(got, dict) and isinstance(expected, dict):
        for key in sorted(set(got) | set(expected)):
            if key not in got:
                return f"{path}/{key} missing (prefect: {json.dumps(expected[key])[:120]})"
            if key not in expected:
                return f"{path}/{key} extra (dm: {json.dumps(got[key])[:120]})"
            if got[key] != expected[key]:
                return _first_difference(got[key], expected[key], f"{path}/{key}")
    return f"{path}: dm {json.dumps(got)[:120]} != prefect {json.dumps(expected)[:120]}"


# --- report --------------------------------------------------------------------------


def _fmt(seconds: float | None, extrapolated: bool = False) -> str:
    if seconds is None:
        return "-"
    text = f"{seconds:.3f}" if seconds < 100 else f"{seconds:.1f}"
    return f"~{text}" if extrapolated else text


def _machine_facts() -> list[str]:
    try:
        prefect_version = metadata.version("prefect")
    except metadata.PackageNotFoundError:
        prefect_version = "not installed"
    try:
        pydantic_version = metadata.version("pydantic")
    except metadata.PackageNotFoundError:
        pydantic_version = "not installed"
    cpus = os.cpu_count()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    return [
        f"cpu count: {cpus} (usable: {affinity}); machine: {platform.machine()}, "
        f"{platform.system()} {platform.release()}",
        f"python: {platform.python_version()} ({sys.executable})",
        f"prefect: {prefect_version}; pydantic: {pydantic_version}",
        f"load average: {_load_average()}",
        _bytecode_fact(),
    ]


def _load_average() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    return ", ".join(f"{x:.2f}" for x in load) or "-"


def _bytecode_fact() -> str:
    """Whether the command's imports start from cached bytecode: a fresh process without it
    compiles every module it imports (pydantic, yaml, ours) from source, every time."""
    flag = "set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "unset"
    cached = []
    for label, module in (("pydantic", "pydantic.main"), ("control_plane", "control_plane.files")):
        spec = importlib.util.find_spec(module)
        origin = spec.origin if spec else None
        has = bool(origin) and Path(importlib.util.cache_from_source(origin)).is_file()
        cached.append(f"{label} {'yes' if has else 'no'}")
    hint = "" if all(c.endswith("yes") for c in cached) else " (`make setup` compiles it)"
    return f"bytecode: PYTHONDONTWRITEBYTECODE {flag}; cached .pyc: {', '.join(cached)}{hint}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--keep", type=Path, help="generate (and reuse) repositories here")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each dm figure (median)")
    parser.add_argument(
        "--prefect-max",
        type=int,
        default=1000,
        help="load at most this many flow files the Prefect way; extrapolate beyond, 0 skips",
    )
    args = parser.parse_args(argv)

    base = args.keep or Path(tempfile.gettempdir()) / f"deploy-manager-bench-{os.getuid()}"
    base = base.resolve()
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dm-bench-"))

    print("deploy-manager discovery benchmark")
    for fact in _machine_facts():
        print(f"  {fact}")
    print(f"  repositories: {base} (seed {args.seed}); dm figures: median of {args.repeat}")
    print()

    print("fresh-process baselines (best of 3):")
    baselines = {
        "python -c pass": "pass",
        "import pydantic": "import pydantic",
        "import control_plane.discovery": "import control_plane.discovery",
        "import prefect": "import prefect",
    }
    for label, code in baselines.items():
        elapsed, status = _timed_python(code)
        failed = "" if status == 0 else f"  (FAILED, exit status {status})"
        print(f"  {label:<34} {elapsed:.3f} s{failed}")

    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    discover: Any = None
    start = time.perf_counter()
    try:
        from control_plane.discovery import discover
    except Exception as exc:  # the library may be mid-edit: report and go on
        print(f"  in-process import of control_plane.discovery FAILED: {type(exc).__name__}: {exc}")
    else:
        elapsed = time.perf_counter() - start
        print(f"  in-process import of control_plane.discovery (once): {elapsed:.3f} s")
    print()

    rows: list[list[str]] = []
    for size in args.sizes:
        start = time.perf_counter()
        info, reused = ensure_repository(base, size, args.seed)
        how = "reused" if reused else f"generated in {time.perf_counter() - start:.1f} s"
        print(
            f"size {size}: {len(info.flow_files)} flow files, {len(info.helper_files)} helper "
            f"modules, {len(info.entrypoints)} flows, {len(info.prefect_yaml_files)} prefect.yaml "
            f"({info.listed_deployments} listed deployments); {how}"
        )
        print(f"  repository: {info.root}")
        repo = Path(info.root)

        dm: DmInProcess | None = None
        if discover is not None:
            try:
                dm = measure_dm_in_process(discover, repo, args.repeat)
            except Exception as exc:  # report, and measure the rest
                print(f"  dm in-process: FAILED: {type(exc).__name__}: {exc}")
        if dm is not None:
            in_med = statistics.median(dm.times)
            print(
                f"  dm in-process: median {in_med:.3f} s (min {min(dm.times):.3f}), "
                f"{size / in_med:,.0f} files/s; found {dm.flows} flows, {dm.deployments} "
                "deployments"
            )
            if dm.problems:
                listed = ", ".join(f"{n} x {k}" for k, n in sorted(dm.problems.items()))
                print(f"    problems: {listed}")
        cmd = measure_dm_command(repo, args.repeat)
        cmd_med = statistics.median(cmd.times)
        if cmd.failed:
            print(f"  dm command:    FAILED (exit status {cmd.status}) after {cmd_med:.3f} s")
            for line in cmd.stderr.strip().splitlines()[-3:]:
                print(f"    {line}")
        else:
            print(
                f"  dm command:    median {cmd_med:.3f} s (min {min(cmd.times):.3f}), "
                f"{size / cmd_med:,.0f} files/s; exit status {cmd.status}"
            )

        pf: PrefectResult | None = None
        if args.prefect_max > 0:
            pf = measure_prefect(info, args.prefect_max, work)
            label = " (extrapolated from an evenly spaced sample)" if pf.extrapolated else ""
            print(
                f"  prefect-style: {_fmt(pf.total, pf.extrapolated)} s total{label}: "
                f"import prefect {pf.import_s:.3f} s, load+schema "
                f"{_fmt(pf.per_file_part, pf.extrapolated)} s "
                f"(measured on {pf.files_loaded} files / {pf.flows_loaded} flows, "
                f"{pf.per_file_part / max(len(info.flow_files), 1) * 1000:.1f} ms per file)"
            )
            if pf.status != 0:
                print(f"    exit status {pf.status}: {pf.stderr.strip()[-600:]}")
            if pf.failures:
                print(f"    {len(pf.failures)} flows failed to load, e.g. {pf.failures[0]}")
            if pf.fallbacks:
                print(
                    f"    {len(pf.fallbacks)} flows needed Prefect's AST fallback, "
                    f"e.g. {pf.fallbacks[0]}"
                )
            if dm is not None and pf.schemas:
                same, compared, differing = compare_schemas(dm.schemas, pf.schemas)
                print(
                    f"  parameter schemas: {same}/{compared} identical to Prefect's "
                    f"(model_dump(exclude_unset=True), the form deployments store)"
                    + (f", {len(differing)} differ or missing" if differing else "")
                )
                for line in differing[:5]:
                    print(f"    {line}")
        elif args.prefect_max == 0:
            print("  prefect-style: skipped (cap)")
        print()

        dm_in = statistics.median(dm.times) if dm else None
        dm_cmd = None if cmd.failed else statistics.median(cmd.times)
        pf_total = pf.total if pf and pf.files_loaded else None
        extrap = bool(pf and pf.extrapolated)
        rows.append(
            [
                str(size),
                _fmt(dm_in),
                "FAILED" if cmd.failed else _fmt(dm_cmd),
                f"{size / dm_cmd:,.0f}" if dm_cmd else "-",
                _fmt(pf_total, extrap) + ("*" if extrap else "")
                if args.prefect_max
                else "skipped (cap)",
                f"{size / pf_total:,.0f}" + ("*" if extrap else "") if pf_total else "-",
                f"{pf_total / dm_cmd:.1f}x" + ("*" if extrap else "")
                if pf_total and dm_cmd
                else "-",
            ]
        )

    header = [
        "size",
        "dm in-process s",
        "dm command s",
        "dm files/s",
        "prefect-style s",
        "prefect files/s",
        "ratio",
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"load average at the end: {_load_average()}")
    print("summary (dm files/s from the command; ratio = prefect-style s / dm command s;")
    print("         * = extrapolated from a sample of --prefect-max files)")
    print("  " + " | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    print("  " + "-+-".join("-" * w for w in widths))
    for row in rows:
        print("  " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
