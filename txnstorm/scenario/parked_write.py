"""A write that failed waits in the device while the VM is stopped, then lands after ``cont``.

With ``werror=stop`` a guest write that fails is not completed: virtio-blk parks the request
(``virtio_blk_handle_rw_error``), QEMU stops the VM (``BLOCK_IO_ERROR``, status ``io-error``), and
``cont`` restarts the parked requests from a bottom half in the device's iothread
(``virtio_blk_dma_restart_cb/_bh``, which hold the BlockBackend in flight so that a drain waits
for them).  It is what thin-provisioned storage relies on: the VM pauses on ENOSPC, the volume
grows, ``cont``; and a backup or snapshot taken in that window is taken with a request parked.

The story, on one virtio-blk dataplane disk whose write at ``PARKED_AT`` fails once (a blkdebug
filter, ``Disk.fail_once_at``) while fio storms the rest of it (``FIO_SIZE``):

1. the guest writes ``PATTERN`` at ``PARKED_AT``: QEMU must stop with an I/O error;
2. while stopped, one transaction: a snapshot of the disk and a full backup of it (round 1);
3. ``cont``, and at once a second transaction (round 2): a snapshot of the new top and its backup,
   racing the parked request's restart;
4. the guest's write must then succeed and the storm go on.

What the test checks once QEMU quit (``parked_write_checks``): each round's frozen base equals its
backup (one point in time); the base frozen while stopped does not hold the parked write (a
stopped VM writes nothing; the request had not completed); and the final image does (``cont``
completed it, the guest was told so).  The last two read the same block with the same reader and
expect opposite answers: a reader that always or never finds the pattern fails one of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from txnstorm.deadline import Deadline
from txnstorm.errors import DeviceStalled, QemuFailure, QemuHung, TxnstormError
from txnstorm.host.images import QemuImg
from txnstorm.oracles import stall
from txnstorm.oracles.compare import compare_images
from txnstorm.scenario.rounds import Finding
from txnstorm.transactions.actions import blockdev_snapshot, drive_backup, fire_transaction, wait_jobs
from txnstorm.vm.boot import Booted
from txnstorm.vm.topology import Disk, Topology
from txnstorm.vm.write_counters import wait_until_writing
from txnstorm.workload.fio import Detached
from txnstorm.workload.guest_storm import finish_storm, guest_devices, start_storm

DISK = "disk0"
PARKED_AT = 60 << 20  # the byte whose write fails once: beyond the storm's range
FIO_SIZE = 56 << 20  # the storm keeps to the first 56 MiB of the 64 MiB disk
BLOCK = 4096
PATTERN = 0x5A
TOPOLOGY = Topology("werror-stop", (Disk(DISK, iothread="io0", werror="stop", fail_once_at=PARKED_AT),))
STOP_WAIT_S = 30.0  # from the guest's write to QEMU's BLOCK_IO_ERROR
WRITER_END_S = 60.0  # from cont to the guest's write completing


def examined(booted: Booted, stalled: DeviceStalled, logdir: Path) -> DeviceStalled:
    """``stalled`` with the stall's evidence (``oracles/stall.py``, while QEMU still runs): which
    side holds the write, what un-sticks it; its class is what a stall known issue matches."""
    stalled.disks = (DISK,)

    def in_guest(command: str) -> str:
        out = booted.guest.run(command, timeout=10)
        return out.stdout + out.stderr

    try:
        stalled.stall = stall.examine(booted.vm, [DISK], in_guest, logdir)
    except TxnstormError as exc:  # the stall stays the verdict (a FAIL without a class), not the probe
        booted.vm.note(f"stall examination failed: {exc}")
    return stalled


@dataclass(frozen=True)
class ParkedRun:
    base: Path  # the disk's image: frozen by round 1, taken while the VM was stopped
    backup1: Path  # round 1's backup of it
    top1: Path  # round 1's overlay: frozen by round 2, right after cont
    backup2: Path  # round 2's backup of it
    top2: Path  # the final top
    stopped: dict  # BLOCK_IO_ERROR's data
    status: str  # query-status while stopped


def park_a_write_and_snapshot_around_it(booted: Booted, scratch: Path, logdir: Path, qemu_img: QemuImg) -> ParkedRun:
    """Steps 1-4 of the story (QEMU still runs when it returns; the caller's boot block quits it)."""
    vm = booted.vm
    base = vm.images[DISK]
    top1, top2 = scratch / "disk0-top1.qcow2", scratch / "disk0-top2.qcow2"
    backup1, backup2 = scratch / "disk0-backup1.qcow2", scratch / "disk0-backup2.qcow2"
    for top, below in ((top1, base), (top2, top1)):  # overlays named by path: a running backup's filter
        qemu_img.create_overlay(top, below, "qcow2")  # above a node gives it a json: name no header takes
        vm.cmd("blockdev-add", driver="qcow2", backing=None,
               **{"node-name": top.stem, "file": {"driver": "file", "filename": str(top)}})  # fmt: skip
    storm = start_storm(booted, [DISK], size=FIO_SIZE)
    wait_until_writing(vm, [DISK])
    device = guest_devices(booted, [DISK])[DISK]
    writer = Detached(booted.guest, "parked", f"fio --name=parked --filename={device} --rw=write --bs={BLOCK} "
                      f"--size={BLOCK} --offset={PARKED_AT} --direct=1 --ioengine=psync "
                      f"--buffer_pattern={PATTERN:#x}")  # fmt: skip
    vm.note(f"guest writes {PATTERN:#x} at {PARKED_AT}: its write must fail once and stop the VM")
    try:
        stopped = vm.wait_event("BLOCK_IO_ERROR", timeout=STOP_WAIT_S, what="the parked write's I/O error")["data"]
    except QemuHung as exc:  # QEMU answers, but never said the write failed
        ended = not writer.is_running()
        exc.add_detail(f"the guest wrote at {PARKED_AT} (werror=stop, a blkdebug error there); its write "
                       f"{'ended' if ended else 'still waits'}")  # fmt: skip
        raise
    status = vm.cmd("query-status")["status"]
    vm.note(f"VM stopped ({status}): round 1 while stopped")
    fire_transaction(vm, [blockdev_snapshot(DISK, "disk0-top1"), drive_backup(DISK, backup1, "backup1")])
    vm.cmd("cont")
    round2 = [blockdev_snapshot("disk0-top1", "disk0-top2"), drive_backup("disk0-top1", backup2, "backup2")]
    fire_transaction(vm, round2)
    vm.note("round 2 fired right after cont")
    wait_jobs(vm, ["backup1", "backup2"])
    deadline = Deadline(WRITER_END_S)
    while writer.is_running():
        if deadline.passed():
            raise examined(booted, DeviceStalled(f"the guest's parked write did not complete {WRITER_END_S:.0f} s "
                                                 "after cont", stage="after cont"), logdir)  # fmt: skip
        time.sleep(0.5)
    rc = booted.guest.run(f"cat {writer.rc_file}").stdout.strip()
    if rc != "0":
        log = booted.guest.run(f"cat {writer.log_file}").stdout
        raise QemuFailure(f"the guest's parked write failed after cont (exit {rc}): {log[-500:]}")
    wait_until_writing(vm, [DISK])
    finish_storm(storm, logdir, timeout=60.0)
    return ParkedRun(base, backup1, top1, backup2, top2, stopped, status)


def holds_pattern(qemu_img: QemuImg, image: Path, scratch: Path) -> bool:
    """Whether the guest-visible block at ``PARKED_AT`` of ``image`` (its chain) is ``PATTERN``."""
    return qemu_img.read_block(image, "qcow2", PARKED_AT, BLOCK, scratch) == bytes([PATTERN]) * BLOCK


def parked_write_checks(run: ParkedRun, qemu_img: QemuImg, scratch: Path) -> list[Finding]:
    """The story's checks, on the images QEMU left (it has quit), as the rounds' ``Finding``s: each
    round's base against its backup, round 1's base without the parked write, round 2's final
    image with it."""
    checks = []
    for round_no, base, backup in ((1, run.base, run.backup1), (2, run.top1, run.backup2)):
        found = compare_images(qemu_img, base, backup, force_share=False)
        checks.append(Finding(round_no, "frozen base == backup", found.identical, found.describe()))
    in_base, in_final = holds_pattern(qemu_img, run.base, scratch), holds_pattern(qemu_img, run.top2, scratch)
    checks.append(Finding(1, "the base frozen while stopped lacks the parked write", not in_base,
                          f"{run.base.name} at {PARKED_AT}: {'holds' if in_base else 'lacks'} it"))
    checks.append(Finding(2, "the final image holds the parked write", in_final,
                          f"{run.top2.name} at {PARKED_AT}: {'holds' if in_final else 'lacks'} it"))
    return checks
