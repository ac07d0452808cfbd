"""qemu-storage-daemon under test: its binary, its command line, its process.

The daemon is the QEMU block layer without a guest: it opens a topology's
images (``--blockdev``: qcow2 over file, the same node names as the
machine's disks), its iothreads (``--object iothread``), an NBD server on a
unix socket in a private 0700 run dir (``--nbd-server``), one writable NBD
export per disk in that disk's iothread (``--export type=nbd,iothread=``),
and a QMP server socket beside it (``--chardev socket,server=on,wait=off``
+ ``--monitor``) that transactions are fired at.  A ``vhost-user-blk`` disk
is exported as such instead (``--export type=vhost-user-blk``, its socket in
the run dir too) for a guest's ``vhost-user-blk-pci`` device to connect to.

``StorageDaemon`` is a ``QemuProcess`` (``vm/qemu_process.py``): the same
launch-or-clean-up, the one shutdown path (``quit``, SIGTERM, SIGKILL,
always reaped), crash reports (signal, assertion line, gdb backtrace from
its core), hang detection and QMP log; the files land under the same names
in the test's log dir (``qemu-cmdline.txt``, ``qemu-stderr.log``,
``qmp.log``), so the report links them; only its command line is its own.
A crash or hang of the daemon is a ``QemuFailure``: a FAIL of that QEMU.
It has no guest and keeps no ``query-blockstats`` for an export: what writes
to it counts its own writes (``scenario/daemon_storm.NbdWriters``,
``scenario/guest_on_daemon.DaemonGuestWriters``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from txnstorm.errors import DeadlineExceeded
from txnstorm.host.images import nbd_uri
from txnstorm.vm.cmdline import opt_value
from txnstorm.vm.qemu_process import QMP_SOCKET, Keeping, QemuProcess
from txnstorm.vm.topology import Topology

DAEMON_BINARY = "qemu-storage-daemon"
NBD_SOCKET = "nbd.sock"


def find_daemon(qemu: Path) -> Path | None:
    """The qemu-storage-daemon of the QEMU under test: beside its
    qemu-system-x86_64 (an install's or ``make qemu``'s ``bin/``, Debian's
    ``/usr/bin``) or in the build dir it was built in
    (``storage-daemon/qemu-storage-daemon``); never one from elsewhere on
    PATH, which would be another QEMU."""
    for candidate in (qemu.parent / DAEMON_BINARY, qemu.parent / "storage-daemon" / DAEMON_BINARY):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def missing_daemon(qemu: Path) -> str:
    """The CANCEL line when ``find_daemon`` found none."""
    return (
        f"QEMU under test ({qemu}) has no {DAEMON_BINARY} beside it "
        f"(looked for {qemu.parent / DAEMON_BINARY} and {qemu.parent / 'storage-daemon' / DAEMON_BINARY}; "
        "make qemu builds one)"
    )


@dataclass(frozen=True)
class DaemonSpec:
    """Where the daemon's sockets go and which image each disk opens."""

    qmp_socket: Path
    nbd_socket: Path
    images: dict[str, Path]

    def vhost_socket(self, disk: str) -> Path:
        """The socket of ``disk``'s vhost-user-blk export (beside the others)."""
        return self.nbd_socket.parent / f"{disk}.vhost"


def build_args(binary: Path, topology: Topology, spec: DaemonSpec) -> list[str]:
    """The daemon's command line: iothreads, images, NBD server, one
    writable export per disk (named as the disk, in its iothread; NBD, or
    vhost-user-blk for a ``vhost-user-blk`` disk), QMP."""
    args = [str(binary)]
    for iothread in topology.iothreads:
        args += ["--object", f"iothread,id={iothread}"]
    for disk in topology.disks:
        filename = opt_value(spec.images[disk.name])
        file_opts = f"driver=file,node-name={disk.file_node},filename={filename},aio={disk.aio}"
        if disk.cache_direct:
            file_opts += ",cache.direct=on"
        args += ["--blockdev", file_opts]
        args += ["--blockdev", f"driver={disk.fmt},node-name={disk.node},file={disk.file_node}"]
    if not all(d.on_daemon for d in topology.disks):
        args += ["--nbd-server", f"addr.type=unix,addr.path={opt_value(spec.nbd_socket)}"]
    for disk in topology.disks:
        export = f"type=nbd,id={disk.name},node-name={disk.node},name={disk.name},writable=on"
        if disk.on_daemon:
            export = (
                f"type=vhost-user-blk,id={disk.name},node-name={disk.node},writable=on,"
                f"addr.type=unix,addr.path={opt_value(spec.vhost_socket(disk.name))},num-queues={disk.num_queues}"
            )
        if disk.iothread:
            export += f",iothread={disk.iothread}" + (",fixed-iothread=on" if disk.fixed_iothread else "")
        args += ["--export", export]
    args += ["--chardev", f"socket,id=qmp0,path={opt_value(spec.qmp_socket)},server=on,wait=off"]
    args += ["--monitor", "chardev=qmp0"]
    return args


class StorageDaemon(QemuProcess):
    """A qemu-storage-daemon process serving a topology's disks over NBD (or vhost-user-blk)."""

    NAME = DAEMON_BINARY
    PING_COMMAND = "query-version"  # the daemon has no query-status
    QMP_LISTENS = False  # its --chardev socket is the server
    RUNDIR_PREFIX = "qsd"

    def __init__(
        self, daemon: Path, topology: Topology, logdir: Path, images: dict[str, Path], keeping: Keeping | None = None
    ) -> None:
        super().__init__(daemon, logdir, keeping)
        self.topology = topology
        self.images = dict(images)

    @property
    def daemon(self) -> Path:
        return self.binary

    @property
    def nbd_socket(self) -> Path:
        assert self.rundir is not None, "daemon not launched"
        return self.rundir / NBD_SOCKET

    def vhost_export_sockets(self) -> dict[str, Path]:
        """{disk: its vhost-user-blk export's socket} (for the guest's machine)."""
        assert self.rundir is not None, "daemon not launched"
        spec = DaemonSpec(self.rundir / QMP_SOCKET, self.rundir / NBD_SOCKET, self.images)
        return {d.name: spec.vhost_socket(d.name) for d in self.topology.disks if d.on_daemon}

    def export_uri(self, disk: str) -> str:
        """The NBD URI of ``disk``'s export."""
        return nbd_uri(self.nbd_socket, disk)

    def _command_line(self, rundir: Path) -> list[str]:
        return build_args(self.daemon, self.topology, DaemonSpec(rundir / QMP_SOCKET, rundir / NBD_SOCKET, self.images))

    def _post_launch(self) -> None:
        self.note(f"{self.NAME} up: NBD server {self.nbd_socket}, exports {[d.name for d in self.topology.disks]}")

    def root_node(self, disk: str) -> str:
        """The node ``disk``'s export writes to now (changes with snapshots)."""
        for export in self.cmd("query-block-exports"):
            if export["id"] == disk:
                return export["node-name"]
        raise KeyError(f"query-block-exports shows no export {disk}")


@contextlib.contextmanager
def serving(daemon: StorageDaemon) -> Iterator[StorageDaemon]:
    """Launch ``daemon`` and always shut it down (as ``booted`` does a
    machine).  A hang keeps every daemon thread's stack before it is killed;
    a daemon killed by a signal while quitting, or one that does not answer its quit, is the
    verdict (``QemuProcess.death``), before anything reads its images."""
    try:
        daemon.launch()
        yield daemon
    except DeadlineExceeded as hang:
        daemon.keep_backtrace(hang)
        raise
    finally:
        daemon.shutdown()
    daemon.ended_cleanly()  # its images are judged next: a daemon that did not quit cleanly is the verdict
