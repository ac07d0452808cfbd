"""The storage daemon's storm: NBD clients write every export of a
qemu-storage-daemon, the host stamp writer stamps two of them, and rounds
fire at the daemon's QMP.  The rounds are ``story.Storm``'s (``fire``,
``verify``); only what writes differs: no guest, no fio, the NBD storm
(``workload/nbd_storm``) in its place.

Every client stays connected until the daemon has quit (``after_daemon``):
on 7.2 a client leaving an export in an iothread aborts it (KI-1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from txnstorm.errors import DeviceStalled
from txnstorm.scenario.story import Storm, Witnesses, Workspace
from txnstorm.vm.storage_daemon import StorageDaemon
from txnstorm.vm.topology import Topology
from txnstorm.workload.nbd_stamps import NbdStampWriter
from txnstorm.workload.nbd_storm import NbdStorm, NbdStorms
from txnstorm.workload.stamp_format import StampRegion

DEPTH = 8  # writes in flight per export, as the guest's fio iodepth


def nbd_witnesses(topology: Topology) -> Witnesses:
    """The first and last disk, stamped by the host NBD writer at their end."""
    region = StampRegion.at_end(min(d.size_bytes for d in topology.disks))
    return Witnesses((topology.disks[0].name, topology.disks[-1].name), {"nbd": region})


def keep_daemon_threads(storm: Storm, stalled: DeviceStalled, disks: Sequence[str]) -> None:
    """A stall of the daemon: every thread's stack (gdb) into the log dir, named in the failure."""
    storm.timeline.mark(storm.vm, "device stalled: daemon threads kept", disks=list(disks))
    storm.vm.keep_backtrace(stalled)


class DaemonStorm(Storm):
    """NBD clients on every export, the NBD stamp writer on the witnesses."""

    # After a round every export must answer new writes: waited for at once
    # (``Storm.measure_overlap``); a loaded host can pause the clients for
    # seconds, so only a pause over 2 s is marked.
    SETTLE_S = 0.0
    PAUSE_NOTED_S = 2.0

    def __init__(
        self, daemon: StorageDaemon, work: Workspace, witnesses: Witnesses, after_daemon: contextlib.ExitStack
    ) -> None:
        self._start_rounds(daemon, work, witnesses, after_daemon)
        self.booted = self.guest_writer = self.nbd_writer = None
        storms = {
            disk: NbdStorm(daemon.export_uri(disk), witnesses.fio_size, daemon.logdir, disk, DEPTH, work.seed + i)
            for i, disk in enumerate(self.disks)
        }
        self.fio = NbdStorms(storms)  # what ``fire`` watches for overlap (is_running) in the guest's fio place
        after_daemon.callback(self.fio.close)
        self.fio.start()
        daemon.write_counter = self.fio.writes
        writer = NbdStampWriter(*(daemon.export_uri(w) for w in witnesses.disks), witnesses.regions["nbd"],
                                daemon.logdir, keep_open=True)  # fmt: skip
        after_daemon.callback(writer.close)
        self.nbd_writer = writer.start()
        self.timeline.mark(
            daemon, "storm started", witnesses=witnesses.disks, stamp_writers=["nbd"], nbd_clients=len(storms),
            depth=DEPTH,
        )  # fmt: skip

    def examine(self, stalled: DeviceStalled, disks: Sequence[str]) -> None:
        """An export stopped answering writes: the daemon's threads are kept (gdb) before it goes."""
        keep_daemon_threads(self, stalled, disks)

    def stop(self) -> None:
        """Stop the stamp writer and the storm (connections stay open)."""
        assert self.nbd_writer is not None
        self.timeline.mark(self.vm, "NBD stamp writer stopped", generations=self.nbd_writer.stop())
        self.timeline.mark(self.vm, "storm finished", writes=self.fio.stop())
