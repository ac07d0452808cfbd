"""Idle iothreads after a drained section: asleep, and the oracle's control that one spins.

``idle_after_a_drain``: fio storms every disk of a booted guest, one transaction snapshots every
disk (a drained section of each device: drained_begin detaches its queues' notifiers, drained_end
attaches them again), the storm stops, and the guest trickles writes (``TRICKLE_IOPS`` a second
per disk, one at a time: what a guest that is "idle" still does).  QEMU's iothreads are measured
over ``WINDOW_S`` (``oracles/iothread_cpu``): a correct QEMU sleeps between the trickle's requests.
Then the control: every iothread is told to poll for a second after each event (``qom-set``
``poll-max-ns``; adaptive polling grows to it since the trickle's requests come more often), the
same trickle runs on, and the same measure must find busy every iothread that serves a virtio-blk
disk.  (A virtio-scsi controller's iothread on Debian's 7.2.22 stayed asleep in that control, 1 %
runnable: its requests did not make it poll; on 10.2.2 it spun as virtio-blk's did.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from txnstorm.errors import TxnstormError
from txnstorm.oracles.iothread_cpu import IOTHREAD_PREFIX, ThreadShare, measure
from txnstorm.transactions.actions import fire_transaction, snapshot_sync
from txnstorm.vm.boot import Booted
from txnstorm.vm.topology import Topology
from txnstorm.vm.write_counters import wait_until_writing
from txnstorm.workload.fio import FioJob, RunningStorm
from txnstorm.workload.guest_storm import finish_storm, guest_devices, start_storm

STORM_S = 2.0  # the storm's writes before the transaction
TRICKLE_IOPS = 20  # per disk, one write at a time
SETTLE_S = 1.5  # after the storm (or the control's setting), before a window
WINDOW_S = 3.0
CONTROL_POLL_NS = 1_000_000_000  # the control's iothreads poll a second after each event
STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class IdleWindows:
    """The iothreads as measured with QEMU's own polling (``quiet``) and in the control
    (``control``: every iothread polling ``CONTROL_POLL_NS``)."""

    quiet: list[ThreadShare]
    control: list[ThreadShare]

    def busy(self) -> list[ThreadShare]:
        return [s for s in self.quiet if s.busy]

    def control_missed(self, judged: set[str]) -> list[ThreadShare]:
        """The control's threads named in ``judged`` that were not found busy."""
        return [s for s in self.control if s.name in judged and not s.busy]


def blk_iothreads(topology: Topology) -> set[str]:
    """The thread names of the iothreads that serve a virtio-blk disk: those the control judges."""
    return {f"{IOTHREAD_PREFIX}{d.iothread}" for d in topology.disks if d.bus == "virtio-blk" and d.iothread}


def trickle(booted: Booted, disks: list[str]) -> RunningStorm:
    """A guest that is nearly idle: ``TRICKLE_IOPS`` direct 4 KiB writes a second per disk."""
    job = FioJob(name="trickle", devices=guest_devices(booted, disks), ioengine="psync", iodepth=1,
                 runtime_s=3600, extra={"rate_iops": str(TRICKLE_IOPS)})  # fmt: skip
    return RunningStorm(booted.guest, job)


def idle_after_a_drain(booted: Booted, scratch: Path, logdir: Path) -> IdleWindows:
    """Storm, one snapshot transaction of every disk, then the trickle's two windows (see the
    module's docstring).  Raises what the storm raises (a stall, QEMU's death)."""
    vm = booted.vm
    disks = [d.name for d in vm.topology.disks]
    storm = start_storm(booted, disks, name="storm")
    wait_until_writing(vm, disks)
    time.sleep(STORM_S)
    fire_transaction(vm, [snapshot_sync(vm.root_node(d), scratch / f"{d}-idle.qcow2", f"{d}-idle") for d in disks])
    wait_until_writing(vm, disks)  # every device takes requests again after its drained section
    finish_storm(storm, logdir, STOP_TIMEOUT_S)
    running = trickle(booted, disks)
    wait_until_writing(vm, disks)
    time.sleep(SETTLE_S)
    vm.note(f"iothreads measured for {WINDOW_S:.0f} s: the guest trickles {TRICKLE_IOPS} writes/s per disk")
    if vm.pid is None:
        raise TxnstormError("QEMU has no process to measure")
    names = {f"{IOTHREAD_PREFIX}{t}" for t in vm.topology.machine_iothreads}  # not QEMU's own mon_iothread
    quiet = [s for s in measure(vm.pid, WINDOW_S) if s.name in names]
    for iothread in vm.topology.machine_iothreads:
        vm.cmd("qom-set", path=f"/objects/{iothread}", property="poll-max-ns", value=CONTROL_POLL_NS)
    time.sleep(SETTLE_S)
    vm.note(f"control: iothreads poll {CONTROL_POLL_NS} ns after each event; measured for {WINDOW_S:.0f} s")
    control = [s for s in measure(vm.pid, WINDOW_S) if s.name in names]
    finish_storm(running, logdir, STOP_TIMEOUT_S)
    return IdleWindows(quiet, control)
