"""The storage daemon's storm: NBD clients write every export of a
qemu-storage-daemon, the host stamp writer stamps two of them, and rounds
fire at the daemon's QMP.  The rounds are ``story.Storm``'s (``fire``,
``verify``); what writes is ``NbdWriters``: no guest, no fio, the NBD
storm (``workload/nbd_storm``) and the NBD stamp writer.

Every client stays connected until the daemon has quit (``after_daemon``):
on 7.2 a client leaving an export in an iothread aborts it (KI-1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from txnstorm.errors import DeviceStalled
from txnstorm.scenario.story import Storm, Workspace
from txnstorm.scenario.writers import Mark, Witnesses
from txnstorm.vm.storage_daemon import StorageDaemon
from txnstorm.vm.topology import Topology
from txnstorm.workload.nbd_stamps import NbdStampWriter
from txnstorm.workload.nbd_storm import NbdStorm, NbdStorms
from txnstorm.workload.stamp_format import StampRegion
from txnstorm.workload.writer_waits import WriterWait

DEPTH = 8  # writes in flight per export, as the guest's fio iodepth


def nbd_witnesses(topology: Topology) -> Witnesses:
    """The first and last disk, stamped by the host NBD writer at their end."""
    region = StampRegion.at_end(min(d.size_bytes for d in topology.disks))
    return Witnesses((topology.disks[0].name, topology.disks[-1].name), {"nbd": region})


def keep_daemon_threads(daemon: StorageDaemon, stalled: DeviceStalled, disks: Sequence[str], mark: Mark) -> None:
    """A stall of the daemon: every thread's stack (gdb) into the log dir, named in the failure."""
    mark("device stalled: daemon threads kept", disks=list(disks))
    daemon.keep_backtrace(stalled)


class NbdWriters:
    """NBD clients on every export of a qemu-storage-daemon (``DEPTH`` writes in flight each) and
    the NBD stamp writer on the witnesses; counted by the clients (an export keeps no
    ``query-blockstats``).  Every client stays connected until the daemon has quit (KI-1)."""

    # After a round every export must answer new writes (``Storm.writing_again``); a loaded host
    # can pause the clients for seconds, so only a pause over 2 s is marked.
    PAUSE_NOTED_S = 2.0

    def __init__(
        self, daemon: StorageDaemon, witnesses: Witnesses, seed: int, after_daemon: contextlib.ExitStack
    ) -> None:
        self.daemon = daemon
        self.witnesses = witnesses
        disks = [d.name for d in daemon.topology.disks]
        self.clients = NbdStorms({
            disk: NbdStorm(daemon.export_uri(disk), witnesses.fio_size, daemon.logdir, disk, DEPTH, seed + i)
            for i, disk in enumerate(disks)
        })  # fmt: skip
        after_daemon.callback(self.clients.close)
        self.clients.start()
        writer = NbdStampWriter(*(daemon.export_uri(w) for w in witnesses.disks), witnesses.regions["nbd"],
                                daemon.logdir, keep_open=True)  # fmt: skip
        after_daemon.callback(writer.close)
        self.stamps = writer.start()

    def started(self) -> dict[str, object]:
        return {"witnesses": self.witnesses.disks, "stamp_writers": ["nbd"], "nbd_clients": len(self.clients.storms),
                "depth": DEPTH}  # fmt: skip

    def write_ops(self) -> dict[str, int]:
        """Writes per disk its clients were answered (the daemon must still run: a crash surfaces here)."""
        self.daemon.check_alive()
        return self.clients.writes()

    def is_running(self) -> bool:
        return self.clients.is_running()

    def stamp_writes(self) -> dict[str, int]:
        return {}  # the NBD stamp writer's progress is not told while it runs

    def stop(self, mark: Mark) -> None:
        """Stop the stamp writer and the clients' storm (their connections stay open)."""
        mark("NBD stamp writer stopped", generations=self.stamps.stop())
        mark("storm finished", writes=self.clients.stop())

    def examine(self, stalled: DeviceStalled, disks: Sequence[str], mark: Mark) -> None:
        """An export stopped answering writes: the daemon's threads are kept (gdb) before it goes."""
        keep_daemon_threads(self.daemon, stalled, disks, mark)

    def qemu_side_idle(self, stalled: DeviceStalled) -> str | None:
        return None  # no guest to blame: a stall here is the daemon's

    def guest_inflight(self, stalled: DeviceStalled) -> dict[str, tuple[int, int] | None]:
        return {}

    def writer_waits(self, stalled: DeviceStalled) -> list[WriterWait]:
        return []


def daemon_storm(
    daemon: StorageDaemon, work: Workspace, witnesses: Witnesses, after_daemon: contextlib.ExitStack
) -> Storm:
    """NBD clients storm every export of ``daemon``, the rounds fire at its QMP."""
    return Storm(daemon, lambda: NbdWriters(daemon, witnesses, work.seed, after_daemon), work, witnesses, after_daemon)
