"""A guest on the storage daemon: the guest's disks are qemu-storage-daemon
vhost-user-blk exports, so fio in the guest writes straight into the
daemon's dataplane (shared guest RAM, eventfds; the guest's own QEMU only
forwards the device's configuration), and the rounds fire at the daemon's
QMP and capture its images.

The story is ``story.Storm``'s (``fire``, ``verify``) with the daemon as
the process the rounds act on, and ``DaemonGuestWriters`` (the guest's fio
on every disk, its stamp writer on the first and last) writing.  Unlike a virtio-blk guest under TCG, this guest races a
QMP command well: the daemon's big lock is not its QEMU's, so a vCPU never
waits for the command to end before it can kick or take a completion.

The daemon keeps no statistics for a vhost-user-blk export, so the writes
counted around each round are the guest's completed ones
(``/sys/block/vdX/stat``, over SSH).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from txnstorm.errors import DeviceStalled, TxnstormError
from txnstorm.oracles import stall
from txnstorm.scenario.daemon_storm import keep_daemon_threads
from txnstorm.scenario.story import Storm, Workspace
from txnstorm.scenario.writers import GuestWriters, Mark, Witnesses
from txnstorm.vm.backtrace import IDLE_MAIN_LOOP
from txnstorm.vm.boot import Booted
from txnstorm.vm.storage_daemon import StorageDaemon
from txnstorm.workload.guest_storm import guest_devices

WRITES_COMPLETED = 4  # /sys/block/<dev>/stat: the field of write I/Os completed (Documentation/block/stat.rst)


def parse_write_counts(stat_lines: str, disks: Sequence[str]) -> dict[str, int]:
    """``/sys/block/<dev>/stat`` lines, one per disk in ``disks``' order -> {disk: writes completed}."""
    lines = [line.split() for line in stat_lines.splitlines() if line.strip()]
    if len(lines) != len(disks) or any(len(fields) <= WRITES_COMPLETED for fields in lines):
        raise TxnstormError(f"guest block stats for {list(disks)} unreadable: {stat_lines!r}")
    return {disk: int(fields[WRITES_COMPLETED]) for disk, fields in zip(disks, lines, strict=True)}


class GuestWriteCounter:
    """Writes the guest completed per disk (its QEMU must still run: a crash of the front end
    surfaces as one)."""

    def __init__(self, booted: Booted, devices: dict[str, str]) -> None:
        self.vm, self.guest = booted.vm, booted.guest
        self.disks = list(devices)
        self.command = "cat " + " ".join(f"/sys/block/{devices[d].removeprefix('/dev/')}/stat" for d in self.disks)

    def __call__(self) -> dict[str, int]:
        self.vm.check_alive()
        return parse_write_counts(self.guest.run(self.command, timeout=10).check().stdout, self.disks)


class DaemonGuestWriters(GuestWriters):
    """The guest's fio and stamp writer on disks the daemon serves: counted by the guest, and a
    stall is the daemon's (its threads) with what the guest holds."""

    def __init__(
        self, booted: Booted, daemon: StorageDaemon, witnesses: Witnesses | None, after_qemu: contextlib.ExitStack
    ) -> None:  # fmt: skip
        self.daemon = daemon
        self.counter = GuestWriteCounter(booted, guest_devices(booted, [d.name for d in daemon.topology.disks]))
        super().__init__(booted, witnesses, after_qemu)

    def write_ops(self) -> dict[str, int]:
        """Writes the guest completed per disk (the daemon must still run: a crash surfaces here)."""
        self.daemon.check_alive()
        return self.counter()

    def qemu_side_idle(self, stalled: DeviceStalled) -> str | None:
        """The daemon answered QMP and its main thread was idle in its main loop (its backtrace)."""
        site = getattr(stalled, "main_thread_sites", {}).get(self.daemon.NAME)
        return f"{self.daemon.NAME} answers QMP, main thread in {site}" if site == IDLE_MAIN_LOOP else None

    def guest_inflight(self, stalled: DeviceStalled) -> dict[str, tuple[int, int] | None]:
        """blk-mq's requests in flight per disk (the daemon's rings are not QEMU's to read here); a
        vhost-user-blk disk is known by its PCI address."""
        said = self.booted.guest.run(stall.GUEST_INFLIGHT, timeout=10).stdout
        by_serial = stall.parse_inflight(said)
        return {d: by_serial.get(self.daemon.topology.disk(d).serial) for d in self.disks}

    def examine(self, stalled: DeviceStalled, disks: Sequence[str], mark: Mark) -> None:
        """The daemon's threads (its dataplane holds the requests), and what the guest holds."""
        keep_daemon_threads(self.daemon, stalled, disks, mark)
        try:
            (self.daemon.logdir / "guest-diagnosis.txt").write_text(self.fio.process.diagnose())
            held = self.guest_inflight(stalled)
        except TxnstormError as exc:
            mark("device stalled: guest diagnosis failed", error=str(exc))
            return
        said = ", ".join(f"{d} {'unknown' if n is None else sum(n)}" for d, n in held.items())
        stalled.add_detail(f"guest's blk-mq in flight: {said}")  # KI-13 needs some; none: the guest's (ERROR)


def guest_on_daemon_storm(
    booted: Booted, daemon: StorageDaemon, work: Workspace, witnesses: Witnesses | None,
    after_qemu: contextlib.ExitStack,
) -> Storm:  # fmt: skip
    """fio and the guest stamp writer in a guest whose disks ``daemon`` serves; rounds at the daemon."""
    return Storm(daemon, lambda: DaemonGuestWriters(booted, daemon, witnesses, after_qemu), work, witnesses, after_qemu)
