"""A second core for pure, CPU-bound work: part of a list mapped in a forked child.

Discovery spends most of its time in `ast.parse` and in reading parameter schemas, file
by file, with nothing shared between files. On a machine with a free core a forked child
can take half of the files: it starts in milliseconds with everything the parent has
imported and read, and sends back only its results (pickled, through a pipe).

A process is forked only where that is safe and can pay off: on Linux, with at least two
usable cores, and only from a process that runs a single thread (forking one that has
others, such as a Prefect flow run, can leave the child waiting forever on a lock another
thread held). Anywhere else, and whenever the child fails in any way, the work is done
in the calling process: the answer is the same, only the time differs.

This module knows nothing of what is computed; it does not retry, time out or log.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def can_fork() -> bool:
    """Whether a child forked now could run beside this process, safely."""
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    return len(os.sched_getaffinity(0)) >= 2


class ForkedMap(Generic[T, R]):
    """`[function(item) for item in items]`, computed by a forked child, collected later.

    Between `start` and `results` the caller does its own share of the work. Without a
    child (`can_fork()` false, or the fork failed) `results` computes here.
    """

    def __init__(self, function: Callable[[T], R], items: Sequence[T]) -> None:
        self.function = function
        self.items = items
        self._pid = 0
        self._pipe = -1

    def start(self) -> ForkedMap[T, R]:
        if not self.items or not can_fork():
            return self
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return self
        if pid == 0:  # the child: compute, send, and leave without running any cleanup
            status = 1
            try:
                os.close(read_end)
                data = pickle.dumps(
                    [self.function(item) for item in self.items], pickle.HIGHEST_PROTOCOL
                )
                with os.fdopen(write_end, "wb") as out:
                    out.write(data)
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        self._pid, self._pipe = pid, read_end
        return self

    def cancel(self) -> None:
        """Stop the child, if there is one, and forget its work."""
        if self._pid:
            pid, self._pid = self._pid, 0
            os.close(self._pipe)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

    def results(self) -> list[R]:
        if self._pid:
            try:
                data = _read_all(self._pipe)
            except BaseException:  # interrupted: leave no child behind
                self.cancel()
                raise
            pid, self._pid = self._pid, 0
            os.close(self._pipe)
            _, status = os.waitpid(pid, 0)
            if status == 0:
                try:
                    results: list[R] = pickle.loads(data)
                except Exception:  # a truncated stream: compute here instead
                    pass
                else:
                    if len(results) == len(self.items):
                        return results
        return [self.function(item) for item in self.items]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
