"""Markers: the tags deploy-manager writes on a deployment, and the functions that read them.

Everything the plan knows about a live deployment beyond its fields comes from here:
whether it is managed and by which source / environment / branch (its scope), which
files of the repository defined it, the digest of its code, whether a person protected
it. All of them are *tags*, because tags are what Prefect's `create_deployment` writes
and every server returns (3.8's client takes no labels; a marker nobody writes is how a
typo in one prefect.yaml entry once pruned that entry's deployment). A test reads each
marker back from a real server after registration.

Pure: no Prefect, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from control_plane.environments import Environment, slugify_branch

MANAGED_TAG = "deploy-manager"
PROTECT_TAG = "deploy-manager:protect"
SOURCE_TAG_PREFIX = "source:"
ENV_TAG_PREFIX = "env:"
BRANCH_TAG_PREFIX = "branch:"
# The digest of a flow's code (its file, local imports, dependency files). A deployment
# pinned to an older commit whose code digest is unchanged runs the same code, so a new
# commit that does not touch a flow does not rewrite its deployment.
CODE_TAG_PREFIX = "deploy-manager:code="
# A file of the repository that defines the deployment: the prefect.yaml that declares
# it and the flow's file. A deployment whose defining file failed to parse is never pruned.
FILE_TAG_PREFIX = "deploy-manager:file="


def source_tag(source: str) -> str:
    return f"{SOURCE_TAG_PREFIX}{source}"


def scope_tags(source: str, environment: Environment, branch: str | None) -> frozenset[str]:
    """The tags every deployment of one reconcile carries; the plan manages exactly those.

    Environments whose names depend on the branch (previews) are scoped per branch, so a
    reconcile of one preview branch never prunes another branch's deployments.
    """
    tags = {MANAGED_TAG, source_tag(source), f"{ENV_TAG_PREFIX}{environment.name}"}
    if "{branch}" in environment.name_pattern:
        tags.add(f"{BRANCH_TAG_PREFIX}{slugify_branch(branch or 'local')}")
    return frozenset(tags)


def render_marker_tags(
    scope: Iterable[str], defining_files: Iterable[str], code_fingerprint: str | None
) -> frozenset[str]:
    """The tags that make a deployment ours and let a later run reason about it."""
    tags = set(scope)
    tags.update(f"{FILE_TAG_PREFIX}{path}" for path in defining_files if path)
    if code_fingerprint:
        tags.add(f"{CODE_TAG_PREFIX}{code_fingerprint}")
    return frozenset(tags)


def is_owned(tags: Iterable[str], scope: frozenset[str]) -> bool:
    return scope <= set(tags)


def is_protected(tags: Iterable[str]) -> bool:
    return PROTECT_TAG in set(tags)


def read_code_fingerprint(tags: Iterable[str]) -> str | None:
    for tag in tags:
        if tag.startswith(CODE_TAG_PREFIX):
            return tag.removeprefix(CODE_TAG_PREFIX)
    return None


def read_defining_files(tags: Iterable[str], entrypoint: str | None) -> frozenset[str]:
    """The repository files that defined a live deployment.

    Deployments registered before the file marker existed fall back to the entrypoint's
    file, the one defining file such a deployment's own fields name.
    """
    files = {t.removeprefix(FILE_TAG_PREFIX) for t in tags if t.startswith(FILE_TAG_PREFIX)}
    if not files and entrypoint and ":" in entrypoint:
        files.add(entrypoint.rpartition(":")[0])
    return frozenset(files)


def without_derived(tags: Iterable[str]) -> list[str]:
    """Tags as compared between desired and live: the code digest is compared on its own,
    and the protect tag is a person's, kept by every update."""
    return sorted(t for t in tags if not t.startswith(CODE_TAG_PREFIX) and t != PROTECT_TAG)
