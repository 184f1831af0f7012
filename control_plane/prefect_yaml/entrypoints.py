"""Where a deployment's entrypoint points, found as `prefect deploy` would find it.

`_Entrypoints.resolve` turns `path/to/file.py:function` into a path relative to the
repository root, looked for from the root and from the prefect.yaml's directory, or says
why it cannot (templated, a module path, not a .py file, outside the repository, through a
link that leaves it, no such file). It reads only whether files exist.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from control_plane.prefect_yaml.models import is_templated

ENTRYPOINT_REMEDY = (
    "write it as path/to/file.py:flow_function, relative to the repository root "
    "or to this prefect.yaml's directory"
)

ENTRYPOINT_CODES = frozenset(
    {"missing-entrypoint", "bad-entrypoint", "entrypoint-not-found", "entrypoint-outside-repo"}
)


@dataclass(frozen=True)
class _Entrypoints:
    """Where the entrypoints of one prefect.yaml are looked for."""

    root: Path
    directory: str  # the prefect.yaml's directory, relative to the root (posix)
    real_root: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "real_root", os.path.realpath(self.root))

    def resolve(
        self, value: str, prefer_directory: bool = False
    ) -> tuple[str | None, str, str, str]:
        """The entrypoint relative to the root, or None and (code, reason, remedy).

        It is looked for from the root, then from the prefect.yaml's directory; the other
        way round with `prefer_directory` (`prefect deploy` runs from that directory, and
        with pull steps of its own the root is not where the deployment runs).
        """
        if is_templated(value):
            reason = "a templated entrypoint cannot be resolved without running anything"
            return None, "bad-entrypoint", reason, ENTRYPOINT_REMEDY
        file_part, colon, function = value.rpartition(":")
        if not colon:
            reason = "it has no ':function' part"
            if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", value):
                reason += "; module paths (package.module.flow) are not supported"
            return None, "bad-entrypoint", reason, ENTRYPOINT_REMEDY
        if not file_part.endswith(".py"):
            reason = f"{file_part!r} is not a .py file (module entrypoints are not supported)"
            return None, "bad-entrypoint", reason, ENTRYPOINT_REMEDY
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", function):
            reason = f"{function!r} is not a function name (nor Class.method)"
            return None, "bad-entrypoint", reason, ENTRYPOINT_REMEDY
        if file_part.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", file_part):
            reason = "it is an absolute path; entrypoints are relative to the repository"
            return None, "entrypoint-outside-repo", reason, ENTRYPOINT_REMEDY
        candidates = [posixpath.normpath(file_part)]
        if self.directory:
            candidates.append(posixpath.normpath(posixpath.join(self.directory, file_part)))
            if prefer_directory:
                candidates.reverse()
        inside = list(dict.fromkeys(c for c in candidates if c != ".." and not c.startswith("../")))
        if not inside:
            reason = "it leaves the repository"
            return None, "entrypoint-outside-repo", reason, "point it at a file in the repository"
        for candidate in inside:
            full = self.root / candidate
            if not full.is_file():
                continue
            real = os.path.realpath(full)
            if os.path.commonpath([real, self.real_root]) != self.real_root:
                reason = f"{candidate} links to {real}, outside the repository"
                remedy = "put the flow's file in the repository instead of linking to it"
                return None, "entrypoint-outside-repo", reason, remedy
            return f"{candidate}:{function}", "", "", ""
        reason = f"there is no file {' or '.join(inside)}"
        remedy = f"{ENTRYPOINT_REMEDY}; check the spelling and that the file is committed"
        return None, "entrypoint-not-found", reason, remedy
