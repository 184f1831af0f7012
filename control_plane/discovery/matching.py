"""The deployments of a checkout: prefect.yaml entries matched to flows, and the defaults.

`_match_deployments` pairs each declared deployment with the flow its entrypoint names,
or says why it cannot (no such flow; a flow whose name only running code could tell). A
flow no prefect.yaml lists gets a default deployment unless deploy-manager.yaml switches
defaults off, a `deployments: []` or an unreadable prefect.yaml above it holds it back,
or its flow name is defined more than once. A deployment declared twice is refused. Each
of those is a `Problem`; nothing here reads a Python file.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path, PurePosixPath

from control_plane.discovery.model import DiscoveredDeployment, FlowSpec, _parent
from control_plane.environments import RepositoryConfig
from control_plane.errors import Problem
from control_plane.files import read_repository_bytes
from control_plane.prefect_yaml.models import DeclaredDeployment, PrefectYamlFile


def _match_deployments(
    flows: list[FlowSpec],
    unnamed: dict[str, Problem],
    yaml_files: tuple[PrefectYamlFile, ...],
    config: RepositoryConfig,
    problems: list[Problem],
    root: Path,
) -> list[DiscoveredDeployment]:
    by_entrypoint = {flow.entrypoint: flow for flow in flows}
    flow_files = {flow.path for flow in flows}
    broken_files = {p.file for p in problems if p.severity == "error"}
    matched: list[DiscoveredDeployment] = []
    for yaml_file in yaml_files:
        for declared in yaml_file.deployments:
            if declared.flow_entrypoint is None:
                continue  # its problem is already recorded
            flow = by_entrypoint.get(declared.flow_entrypoint)
            if flow is None and declared.flow_entrypoint in unnamed:
                why = unnamed[declared.flow_entrypoint]
                problems.append(
                    Problem(
                        declared.source_file,
                        declared.line,
                        "dynamic-flow-name",
                        f"deployment {declared.name!r} is not applied: the name of its flow "
                        f"{declared.flow_entrypoint} cannot be read without running code "
                        f"(see {why.file}:{why.line}), and Prefect registers a deployment "
                        "under its flow's name",
                        why.remedy,
                    )
                )
                continue
            if flow is None:
                path, _, function = declared.flow_entrypoint.rpartition(":")
                if path in broken_files:
                    continue  # the flow file itself failed; that problem says why
                where = "has no @flow" if path not in flow_files else "has no @flow named"
                known = sorted(f.function for f in flows if f.path == path)
                problems.append(
                    Problem(
                        declared.source_file,
                        declared.line,
                        "entrypoint-not-a-flow",
                        f"deployment {declared.name!r}: entrypoint {declared.flow_entrypoint!r}: "
                        f"{path} {where} {function!r}"
                        + (f"; flows there: {', '.join(known)}" if known else ""),
                        "point the entrypoint at a function decorated with @flow",
                    )
                )
                continue
            matched.append(DiscoveredDeployment(declared, flow, False, yaml_file))

    listed = {d.flow.entrypoint for d in matched}
    # A flow named by a prefect.yaml entry that failed validation gets no default deployment:
    # the user meant to declare it, and a default one would be a surprise. Nor does a flow
    # below a prefect.yaml that could not be read at all (see _without_switched_off).
    mentioned = _mentioned_in_broken_yaml(yaml_files, root)
    if config.default_deployments:
        candidates = [f for f in flows if f.entrypoint not in listed | mentioned]
        candidates = _without_switched_off(candidates, yaml_files, problems)
        defaults = _default_deployments(flows, candidates, listed, problems)
        _say_where_defaults_come_from(defaults, yaml_files, problems)
        matched.extend(defaults)
    return _drop_duplicates(matched, problems)


def _under(path: str, directory: str) -> bool:
    return not directory or path.startswith(directory + "/")


def _without_switched_off(
    flows: list[FlowSpec], yaml_files: tuple[PrefectYamlFile, ...], problems: list[Problem]
) -> list[FlowSpec]:
    """The flows no `deployments: []` switches off, nor an unreadable prefect.yaml covers.

    `deployments: []` in a prefect.yaml means: no deployments for the flows of its
    directory and below (a monorepo's switched-off pipelines). A prefect.yaml that cannot be
    read might say that, or list them: its flows get no default deployment until it is fixed.
    """
    kept = flows
    for yaml_file in yaml_files:
        if yaml_file.deployments_list not in ("empty", "unreadable"):
            continue
        directory = _parent(yaml_file.path)
        held = [f for f in kept if _under(f.path, directory)]
        kept = [f for f in kept if not _under(f.path, directory)]
        if held and yaml_file.deployments_list == "unreadable":
            where = f"under {directory}/" if directory else "of the repository"
            problems.append(
                Problem(
                    yaml_file.path,
                    0,
                    "no-default-deployments",
                    f"{yaml_file.path} could not be read, so the {len(held)} flow(s) {where} "
                    "that no prefect.yaml lists get no default deployment in this run: it may "
                    "list them, or switch them off with deployments: []",
                    f"fix {yaml_file.path} (see its other problem)",
                    "warning",
                )
            )
    return kept


def _say_where_defaults_come_from(
    defaults: list[DiscoveredDeployment],
    yaml_files: tuple[PrefectYamlFile, ...],
    problems: list[Problem],
) -> None:
    """An info for a prefect.yaml without `deployments:` whose flows get default deployments.

    Prefect deploys nothing from such a file with `--all`; it often only holds build, push
    or pull steps for `prefect deploy path.py:flow`. It says nothing about which flows to
    deploy, so they get default deployments like any flow no prefect.yaml lists; the info
    says how to switch them off.
    """
    for yaml_file in yaml_files:
        if yaml_file.deployments_list != "missing":
            continue
        directory = _parent(yaml_file.path)
        covered = [d.flow.entrypoint for d in defaults if _under(d.flow.path, directory)]
        if not covered:
            continue
        shown = ", ".join(covered[:5]) + (
            f" and {len(covered) - 5} more" if len(covered) > 5 else ""
        )
        problems.append(
            Problem(
                yaml_file.path,
                0,
                "no-deployments-list",
                f"{yaml_file.path} has no deployments: list, so it does not say which flows of "
                f"its directory to deploy; {len(covered)} flow(s) there get a default "
                f"deployment: {shown}",
                "list their deployments under deployments:, or write deployments: [] to deploy "
                "none of the flows of this directory",
                "info",
            )
        )


def _default_deployments(
    flows: list[FlowSpec],
    candidates: list[FlowSpec],
    listed: set[str],
    problems: list[Problem],
) -> list[DiscoveredDeployment]:
    """A default deployment for each candidate whose flow name no other flow has.

    One flow name in several places (copies, examples, tutorials) would make the same
    deployment `name/name` several times; no guess is made: none of them gets one, and one
    warning says how to choose.
    """
    by_name: dict[str, list[FlowSpec]] = defaultdict(list)
    for flow in flows:
        by_name[flow.name].append(flow)
    made: list[DiscoveredDeployment] = []
    ambiguous: dict[str, list[FlowSpec]] = defaultdict(list)
    for flow in candidates:
        if len(by_name[flow.name]) == 1:
            made.append(DiscoveredDeployment(_default_declared(flow), flow, True, None))
        else:
            ambiguous[flow.name].append(flow)
    for name, skipped in ambiguous.items():
        same = by_name[name]
        places = ", ".join(f"{f.entrypoint} (line {f.line})" for f in same)
        declared = [f.entrypoint for f in same if f.entrypoint in listed]
        note = f"; {', '.join(declared)} is deployed as a prefect.yaml declares" if declared else ""
        first = skipped[0]
        problems.append(
            Problem(
                first.path,
                first.line,
                "ambiguous-flow-name",
                f"the flow name {name!r} is defined {len(same)} times ({places}); none of "
                f"{', '.join(f.entrypoint for f in skipped)} gets a default deployment, "
                f"which would be {name}/{name} for each{note}",
                "pick one: declare it in a prefect.yaml (deployments: [{name: ..., "
                f"entrypoint: {first.entrypoint}}}]), or exclude the others in "
                "deploy-manager.yaml (exclude: [...]), or give each flow its own name=",
                "warning",
            )
        )
    return made


def _mentioned_in_broken_yaml(yaml_files: tuple[PrefectYamlFile, ...], root: Path) -> set[str]:
    mentioned: set[str] = set()
    for yaml_file in yaml_files:
        if not any(p.severity == "error" for p in yaml_file.problems):
            continue
        try:
            text = read_repository_bytes(root, yaml_file.path).decode("utf-8", "replace")
        except OSError:
            continue
        base = PurePosixPath(yaml_file.path).parent
        for match in re.finditer(r"([\w./-]+\.py:[\w.]+)", text):
            entry = match.group(1)
            mentioned.add(entry)
            mentioned.add((base / entry).as_posix())
    return mentioned


def _default_declared(flow: FlowSpec) -> DeclaredDeployment:
    return DeclaredDeployment(
        name=flow.name,
        entrypoint=flow.entrypoint,
        source_file=flow.path,
        line=flow.line,
        description=flow.description,
    )


def _drop_duplicates(
    deployments: list[DiscoveredDeployment], problems: list[Problem]
) -> list[DiscoveredDeployment]:
    """Two deployments of one flow with one name: Prefect would keep the last; we refuse both."""
    groups: dict[tuple[str, str], list[DiscoveredDeployment]] = defaultdict(list)
    for deployment in deployments:
        groups[(deployment.flow.name, deployment.name)].append(deployment)
    kept: list[DiscoveredDeployment] = []
    for (flow_name, name), group in groups.items():
        if len(group) == 1:
            kept.append(group[0])
            continue
        places = ", ".join(f"{d.source_file}:{d.declared.line}" for d in group)
        for deployment in group:
            problems.append(
                Problem(
                    deployment.source_file,
                    deployment.declared.line,
                    "duplicate-deployment",
                    f"deployment {flow_name}/{name} is declared {len(group)} times ({places}); "
                    "none of them is applied",
                    "give each deployment of a flow its own name",
                )
            )
    return sorted(kept, key=lambda d: (d.flow.name, d.name))
