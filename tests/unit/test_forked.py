"""Work given to a forked child comes back the same as if it were done here, or is done here.

`ForkedMap` forks only in a single-threaded process, and a test session that ran Prefect
before (the integration tests) has threads: each forking check runs in a fresh
interpreter (`in_fresh_interpreter`), as discovery runs in the CLI's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from control_plane.forked import ForkedMap, can_fork
from tests.conftest import REPO_ROOT

needs_fork = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="forking is useful with two cores on Linux only",
)
PARENT = os.getpid()


def in_fresh_interpreter(check: Callable[..., None], *args: str) -> None:
    """Run `check(*args)` (a function of a test module) in a new, single-threaded Python."""
    code = f"import {check.__module__} as t; t.{check.__name__}(*{args!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=False, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr


def _square_and_pid(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def _dies_in_the_child(n: int) -> int:
    if os.getpid() != PARENT:
        os._exit(3)
    return n + 1


def _fails_in_the_child(n: int) -> int:
    if os.getpid() != PARENT:
        raise ValueError("only in the child")
    return n + 1


def _unpicklable(n: int) -> object:
    return lambda: n  # fine here, cannot be sent back


@needs_fork
def test_a_child_computes_the_items_in_order() -> None:
    in_fresh_interpreter(_check_a_child_computes_the_items_in_order)


def _check_a_child_computes_the_items_in_order() -> None:
    assert can_fork()
    results = ForkedMap(_square_and_pid, range(100)).start().results()
    assert [square for square, _ in results] == [n * n for n in range(100)]
    assert {pid for _, pid in results} != {PARENT}  # a child did it


@needs_fork
def test_what_a_failed_child_leaves_is_done_here() -> None:
    in_fresh_interpreter(_check_what_a_failed_child_leaves_is_done_here)


def _check_what_a_failed_child_leaves_is_done_here() -> None:
    for function in (_dies_in_the_child, _fails_in_the_child):
        assert ForkedMap(function, range(10)).start().results() == list(range(1, 11))


@needs_fork
def test_results_that_cannot_be_sent_back_are_computed_here() -> None:
    in_fresh_interpreter(_check_results_that_cannot_be_sent_back_are_computed_here)


def _check_results_that_cannot_be_sent_back_are_computed_here() -> None:
    results = ForkedMap(_unpicklable, range(3)).start().results()
    assert [f() for f in results] == [0, 1, 2]  # type: ignore[operator]


@needs_fork
def test_a_cancelled_child_is_reaped() -> None:
    in_fresh_interpreter(_check_a_cancelled_child_is_reaped)


def _check_a_cancelled_child_is_reaped() -> None:
    work = ForkedMap(_square_and_pid, range(10)).start()
    pid = work._pid
    work.cancel()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert [square for square, _ in work.results()] == [n * n for n in range(10)]


def test_no_fork_while_another_thread_runs() -> None:
    """Forking a process with threads can deadlock the child: the work is done here."""
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert not can_fork()
        results = ForkedMap(_square_and_pid, range(5)).start().results()
        assert {pid for _, pid in results} == {PARENT}
    finally:
        release.set()
        thread.join()
