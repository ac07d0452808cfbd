"""The guest's fio storm on a topology's disks: the disks found in the guest by serial, the storm
started with the topology's queue depth (and completion polling), and finished with fio's result
kept in the log dir.  The scenario layer's stories, ``make bench`` and ``scripts/storm-stop-repro``
start and stop it the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from txnstorm.deadline import Deadline
from txnstorm.errors import TxnstormError
from txnstorm.vm.boot import Booted
from txnstorm.workload.fio import FioJob, FioResult, RunningStorm, StormHung
from txnstorm.workload.polled import POLLED_FIO, give_disks_poll_queues

DISK_SCAN_S = 20.0  # how long the guest's disks may take to show up after boot


def guest_devices(booted: Booted, disks: Sequence[str], timeout: float = DISK_SCAN_S) -> dict[str, str]:
    """{disk: /dev/vdX or /dev/sdX}, found by serial (never by name order).  SCSI disks may
    show up after the guest said ready (the kernel scans and probes them asynchronously):
    asked again until ``timeout``."""
    serials = {d: booted.vm.topology.disk(d).serial for d in disks}
    deadline = Deadline(timeout)
    while True:
        by_serial = booted.guest.disks_by_serial()
        missing = [serials[d] for d in disks if serials[d] not in by_serial]
        if not missing:
            return {d: by_serial[serials[d]] for d in disks}
        if deadline.passed():
            raise TxnstormError(f"guest has no disk with serial {missing} after {timeout:.0f} s (found {by_serial})")
        time.sleep(0.5)


def start_storm(
    booted: Booted, disks: Sequence[str], runtime_s: int = 3600, name: str = "storm", size: int | None = None
) -> RunningStorm:
    """fio random writes (direct I/O) on the named disks until stopped, as
    many in flight per disk as the topology's ``storm_iodepth``; with its
    ``storm_polled`` the guest polls their completions (``workload/polled.py``)."""
    topology = booted.vm.topology
    if topology.storm_polled:
        give_disks_poll_queues(booted.guest)  # before the disks are looked up: they are probed again
    job = FioJob(
        name=name, devices=guest_devices(booted, disks), runtime_s=runtime_s, size=size,
        iodepth=topology.storm_iodepth, extra=dict(POLLED_FIO) if topology.storm_polled else {},
    )  # fmt: skip
    return RunningStorm(booted.guest, job)


def finish_storm(storm: RunningStorm, logdir: Path, timeout: float) -> FioResult:
    """Stop the storm and return fio's result (kept in the log dir).  If fio
    hangs, the guest's view is kept (``fio-<name>-hung.txt``) and StormHung
    raised: the caller examines the stall while QEMU still runs."""
    storm.stop()
    try:
        result = storm.wait(timeout)
    except StormHung as hung:
        (logdir / f"fio-{storm.job.name}-hung.txt").write_text(hung.evidence)
        raise
    (logdir / f"fio-{storm.job.name}.json").write_text(result.raw)
    return result.check()
