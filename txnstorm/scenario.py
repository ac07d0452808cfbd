"""The pieces of a storm scenario that every test tells in the same order:
boot, storm, transact, verify.  Tests compose these; they never repeat them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .boot import Booted
from .errors import DeadlineExceeded, TxnstormError
from .machine import Machine
from .storm import FioJob, FioResult, RunningStorm, StormHung
from .txn import Action, Fired, drive_backup, job_ids, snapshot_sync, wait_jobs


class NoOverlap(TxnstormError):
    """The storm did not write around the transaction: the test would prove nothing."""


@dataclass
class Timeline:
    """What happened when (host monotonic seconds since QEMU start)."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def mark(self, vm: Machine, what: str, **data: Any) -> None:
        self.events.append({"t": round(time.monotonic() - vm.launched_at, 3), "what": what, **data})
        vm.note(f"{what} {json.dumps(data, sort_keys=True)}" if data else what)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.events, indent=1) + "\n")


def start_storm(booted: Booted, disks: Sequence[str], runtime_s: int, name: str = "storm") -> RunningStorm:
    """fio random writes (direct I/O) on the named disks, found by serial."""
    by_serial = booted.guest.disks_by_serial()
    missing = [d for d in disks if d not in by_serial]
    if missing:
        raise TxnstormError(f"guest has no disk with serial {missing} (found {by_serial})")
    job = FioJob(name=name, devices={d: by_serial[d] for d in disks}, runtime_s=runtime_s)
    return RunningStorm(booted.guest, job)


def wait_until_writing(vm: Machine, disks: Sequence[str], timeout: float = 30.0) -> dict[str, int]:
    """Return write counters once every disk has completed new writes."""
    first = vm.write_ops()
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.2)
        now = vm.write_ops()
        if all(now.get(d, 0) > first.get(d, 0) for d in disks):
            return now
        if time.monotonic() > deadline:
            stalled = [d for d in disks if now.get(d, 0) <= first.get(d, 0)]
            raise DeadlineExceeded(f"storm wrote nothing to {stalled} within {timeout:.0f} s")


@dataclass(frozen=True)
class Overlap:
    """Evidence that the storm wrote before and after the actions fired."""

    before: dict[str, int]
    after_actions: dict[str, int]
    later: dict[str, int]
    fio_running_after: bool

    def check(self, disks: Sequence[str]) -> None:
        idle = [d for d in disks if self.later.get(d, 0) <= self.after_actions.get(d, 0)]
        if idle or not self.fio_running_after:
            raise NoOverlap(
                f"storm did not overlap the actions: fio running after={self.fio_running_after}, "
                f"no writes after the actions on {idle} (counters {asdict(self)})"
            )


def measure_overlap(vm: Machine, storm: RunningStorm, before: dict[str, int], settle_s: float = 1.0) -> Overlap:
    after = vm.write_ops()
    time.sleep(settle_s)
    later = vm.write_ops()
    return Overlap(before, after, later, storm.is_running())


@dataclass(frozen=True)
class SnapshotBackupPlan:
    """Back up one disk and snapshot all disks; the pair to compare is the
    backup and the frozen base of the backed-up disk.

    The backup is listed first on purpose: a drive-backup of a node listed
    after that node's snapshot would read the frozen base and be identical by
    construction (no teeth).  Listed first, a write that sneaks in between the
    two actions lands in the base but not in the backup.
    """

    actions: tuple[Action, ...]
    backup: Path
    frozen_base: Path
    jobs: tuple[str, ...]


def plan_snapshot_and_backup(
    images: dict[str, Path], scratch: Path, disks: Sequence[str], backup_disk: str, round_no: int = 1
) -> SnapshotBackupPlan:
    backup = scratch / f"{backup_disk}-backup{round_no}.qcow2"
    actions: list[Action] = [drive_backup(backup_disk, backup, job_id=f"backup-{backup_disk}-{round_no}")]
    for disk in disks:
        overlay = scratch / f"{disk}-overlay{round_no}.qcow2"
        actions.append(snapshot_sync(disk, overlay, f"{disk}-overlay{round_no}"))
    return SnapshotBackupPlan(tuple(actions), backup, images[backup_disk], tuple(job_ids(actions)))


def fire_during_storm(
    booted: Booted,
    storm: RunningStorm,
    disks: Sequence[str],
    fire: Callable[[], Fired],
    jobs: Sequence[str],
    timeline: Timeline,
) -> tuple[Fired, Overlap]:
    """Wait until the storm writes, fire, wait for the jobs, prove overlap."""
    vm = booted.vm
    before = wait_until_writing(vm, disks)
    timeline.mark(vm, "storm writing", write_ops=before)
    fired = fire()
    timeline.mark(vm, f"{fired.mode} answered", seconds=round(fired.done_at - fired.sent_at, 4))
    wait_jobs(vm, jobs)
    timeline.mark(vm, "jobs completed", jobs=list(jobs))
    overlap = measure_overlap(vm, storm, before)
    timeline.mark(vm, "overlap measured", later=overlap.later)
    return fired, overlap


def finish_storm(storm: RunningStorm, logdir: Path, timeout: float) -> FioResult:
    try:
        result = storm.wait(timeout)
    except StormHung as hung:
        (logdir / f"fio-{storm.job.name}-hung.txt").write_text(hung.evidence)
        raise
    (logdir / f"fio-{storm.job.name}.json").write_text(result.raw)
    return result.check()
