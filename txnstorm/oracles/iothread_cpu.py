"""An oracle of an idle QEMU's iothreads: asleep between requests, not spinning.

An iothread that polls something that is always "ready" burns a CPU with no I/O to do (the shape of
c42c3833e0, teeth/upstream-c42c3833e0-virtio-scsi-event-vq-polled: virtio-scsi's event queue,
which the guest keeps full of buffers, re-attached *with* polling after every drained section).  No
request is lost and every point in time holds, so only the thread's time shows it.

The oracle samples ``/proc/<pid>/task/*/`` of the QEMU process twice, a window apart, and judges
only QEMU's iothreads (``debug-threads=on`` names them ``IO <id>``): under TCG the vCPU threads are
busy by nature.  Its measure is the share of the window a thread was **runnable** (on a CPU or
waiting for one: ``schedstat``'s run and wait times), not its CPU share: beside two CPU hogs and
TCG's vCPUs a spinning iothread gets a fraction of a core, but it never sleeps.  Where the kernel
keeps no ``schedstat`` the CPU time (``stat``'s utime + stime) stands in.  A thread runnable for at
least ``BUSY`` of the window is busy.  Its negative control (``scenario/idle.py``) makes an iothread
poll for a second after every event while the guest trickles writes: it must be judged busy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

BUSY = 0.5  # runnable for half the window or more: the thread does not sleep
IOTHREAD_PREFIX = "IO "  # QEMU's name of an iothread's thread (debug-threads=on): "IO io0"


@dataclass(frozen=True)
class ThreadTimes:
    """One thread's counters at a moment: CPU seconds (user + system) and runnable seconds (on a
    CPU or waiting for one; None where the kernel keeps no schedstat)."""

    tid: int
    name: str
    cpu_s: float
    runnable_s: float | None


def parse_stat(text: str) -> float:
    """utime + stime of a ``/proc/.../stat`` line, in clock ticks (the name may hold spaces and
    parentheses: the fields are after its last ``)``)."""
    fields = text.rsplit(")", 1)[1].split()
    return float(int(fields[11]) + int(fields[12]))


def parse_schedstat(text: str) -> float:
    """Seconds on a CPU plus seconds waiting for one, from a ``schedstat`` line (ns ns slices)."""
    run_ns, wait_ns, *_ = text.split()
    return (int(run_ns) + int(wait_ns)) / 1e9


def sample(pid: int, prefix: str = IOTHREAD_PREFIX, proc: Path = Path("/proc")) -> dict[int, ThreadTimes]:
    """{tid: its counters} of ``pid``'s threads whose name starts with ``prefix``."""
    tick = os.sysconf("SC_CLK_TCK")
    threads: dict[int, ThreadTimes] = {}
    for task in (proc / str(pid) / "task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            if not name.startswith(prefix):
                continue
            cpu = parse_stat((task / "stat").read_text()) / tick
        except OSError:  # the thread ended meanwhile
            continue
        try:
            runnable: float | None = parse_schedstat((task / "schedstat").read_text())
        except (OSError, ValueError):
            runnable = None
        threads[int(task.name)] = ThreadTimes(int(task.name), name, cpu, runnable)
    return threads


@dataclass(frozen=True)
class ThreadShare:
    """What one thread did in a window of ``seconds``: CPU (cores) and the share of it runnable."""

    name: str
    seconds: float
    cpu: float
    runnable: float
    measured_by: str  # "schedstat", or "stat" where the kernel keeps no schedstat

    @property
    def busy(self) -> bool:
        return self.runnable >= BUSY

    def describe(self) -> str:
        return (f"{self.name}: runnable {self.runnable:.0%} of {self.seconds:.1f} s ({self.measured_by}), "
                f"CPU {self.cpu:.2f} cores")  # fmt: skip


def shares(before: dict[int, ThreadTimes], after: dict[int, ThreadTimes], seconds: float) -> list[ThreadShare]:
    """Each thread present at both samples, what it did between them."""
    found = []
    for tid, end in sorted(after.items()):
        start = before.get(tid)
        if start is None or start.name != end.name:
            continue
        cpu = (end.cpu_s - start.cpu_s) / seconds
        if start.runnable_s is not None and end.runnable_s is not None:
            runnable, how = (end.runnable_s - start.runnable_s) / seconds, "schedstat"
        else:
            runnable, how = cpu, "stat"
        found.append(ThreadShare(end.name, seconds, cpu, min(runnable, 1.0), how))
    return found


def measure(pid: int, seconds: float, prefix: str = IOTHREAD_PREFIX) -> list[ThreadShare]:
    """The iothreads of ``pid`` over the next ``seconds``."""
    before, started = sample(pid, prefix), time.monotonic()
    time.sleep(seconds)
    after = sample(pid, prefix)
    return shares(before, after, time.monotonic() - started)
