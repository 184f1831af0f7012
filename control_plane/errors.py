"""The errors of deploy-manager and the `Problem` record of a bad input.

A `Problem` is data: discovery and planning collect them and go on, so that one bad
file never hides the good ones. An exception is for what stops the current step:
`ConfigError` is the user's to fix and is never retried, `TransientError` may be
retried, `ApplyError` carries the change that failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "info"]  # info: what deploy-manager chose, no fault


@dataclass(frozen=True, order=True)
class Problem:
    """One bad input: where it is, what is wrong, and how to fix it.

    `code` is stable (tests and users grep for it); `line` is 1-based, 0 when the
    problem concerns a whole file.
    """

    file: str
    line: int
    code: str
    message: str
    remedy: str
    severity: Severity = "error"

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity} {self.code}: {self.message} ({self.remedy})"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "code": self.code,
            "message": self.message,
            "remedy": self.remedy,
            "severity": self.severity,
        }


class DeployManagerError(Exception):
    """The root of every error deploy-manager raises on purpose."""


class ConfigError(DeployManagerError):
    """A bad input the user has to fix; retrying cannot help."""


class TransientError(DeployManagerError):
    """A failure of an outside system that may go away when retried."""


class ApplyError(DeployManagerError):
    """Applying one change failed; `change` names what was being done."""

    def __init__(self, change: str, message: str) -> None:
        super().__init__(f"{change}: {message}")
        self.change = change
