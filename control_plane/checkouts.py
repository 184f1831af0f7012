"""Checkouts: the repository at one commit, on disk, as the rest of a reconcile sees it.

`Checkout` is the one description of where the desired state comes from: the named source,
the commit and branch, the directory that holds it, and the URL and credentials block a
worker clones it with again. Planning reads it (the ownership tags, the version, the pinned
pull step), so it lives here, below planning, as a plain frozen value: no git, no Prefect.

Making one is `control_plane.sources`' job (it runs git and reads the source's block).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Checkout:
    """A directory holding the repository of a named source at one commit."""

    path: Path
    source: str  # the GitHubRepository block's name (or a name given on the CLI)
    commit: str | None  # full sha; None for a directory that is not a git work tree
    branch: str | None  # None when detached or not a git work tree
    remote_url: str | None = None  # the URL without credentials: safe to store and show
    credentials_block: str | None = None  # GitHubCredentials block the remote needs

    @property
    def short_commit(self) -> str | None:
        """The commit as versions and reports show it (8 characters)."""
        return self.commit[:8] if self.commit else None
