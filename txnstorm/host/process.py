"""Child processes that die with us and are ended by PID, never by name."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, core_dumps: bool = False) -> None:  # runs in the child between fork and exec
    if core_dumps:  # as large as the hard limit allows (the soft one is often 0)
        hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died before prctl took effect: the child was re-parented.  (Not "our parent
    # is PID 1": txnstorm itself may be PID 1, in a container.)
    if os.getppid() != parent:
        os._exit(1)


def spawn(
    args: Sequence[str],
    stdout: IO[Any] | int,
    stderr: IO[Any] | int,
    cwd: Path | None = None,
    core_dumps: bool = False,
) -> subprocess.Popen:
    """Start a child in its own session (a terminal's Ctrl-C reaches us, and we
    clean up) that is SIGKILLed by the kernel if this process dies first.
    ``core_dumps``: allow a core file (written where core_pattern says; a
    plain pattern such as ``core`` means ``cwd``)."""
    return subprocess.Popen(
        list(args),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=functools.partial(die_with_parent, os.getpid(), core_dumps),  # noqa: PLW1509 - needed for PDEATHSIG
    )


def end(proc: subprocess.Popen, grace: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reap."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with status {returncode}"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def end_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """End the process group of ``proc`` (started with ``start_new_session``: an iotests check and
    the QEMUs it started): SIGTERM, then SIGKILL to whatever of the group is left after ``grace_s``
    (a qemu-storage-daemon hung in a drain outlives check's SIGTERM: measured on the mutant
    block/io.c:2441)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while group_alive(proc.pid) and time.monotonic() < deadline:
        proc.poll()  # reap the leader: a zombie still counts as the group's
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
