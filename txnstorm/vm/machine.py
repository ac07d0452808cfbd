"""The QEMU under test booting the txnstorm guest: a ``QemuProcess`` whose command line is a
topology's (devices, iothreads, images, vhost-user-blk sockets), with the guest's serial console
in ``console.log`` and SSH forwarded to a free local port; the disks' write counters and root
nodes by device.  ``Platform.trace`` (the setting ``TXNSTORM_QEMU_TRACE``, e.g.
``virtio_notify*,virtqueue_flush``) writes QEMU trace events to ``qemu-trace.log``.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from txnstorm.errors import QemuRefusedCommandLine
from txnstorm.host.sut import SystemUnderTest
from txnstorm.vm.cmdline import BootFiles, LaunchSpec, build_args
from txnstorm.vm.qemu_process import QMP_SOCKET, Keeping, QemuProcess
from txnstorm.vm.topology import Topology


def free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

log = logging.getLogger("txnstorm.vm.machine")


@dataclass(frozen=True)
class Platform:
    """What every machine of a run shares: the QEMU under test, the guest's
    boot files, the accelerator, the QEMU trace events asked for and whether a
    crash's core is kept."""

    sut: SystemUnderTest
    boot: BootFiles
    accel: str
    trace: tuple[str, ...] = ()
    keep_cores: bool = False
    qmp_answer_s: float = 60.0  # a QMP command unanswered this long: QEMU hung


class Machine(QemuProcess):
    """A QEMU process booting the txnstorm guest with a topology's disks."""

    STARTING = "while the guest booted"

    def __init__(
        self, platform: Platform, topology: Topology, logdir: Path, images: dict[str, Path],
        vhost_sockets: dict[str, Path] | None = None,
    ) -> None:  # fmt: skip
        """``vhost_sockets``: where a qemu-storage-daemon exports the topology's vhost-user-blk disks."""
        super().__init__(platform.sut.qemu, logdir, Keeping(platform.keep_cores, platform.qmp_answer_s))
        self.trace = platform.trace
        self.sut, self.boot, self.accel = platform.sut, platform.boot, platform.accel
        self.topology = topology
        self.images = dict(images)
        self.vhost_sockets = dict(vhost_sockets or {})
        self.ssh_port = 0
        self.incoming = False  # True: launched paused for a saved state (``-incoming defer``), not booted
        self.up = False  # the guest answers SSH (``vm.boot`` says so): the stage is no longer its boot

    PORT_TRIES = 3  # SSH's local port: free when picked, taken by another test's QEMU by launch (JOBS > 1)

    def launch(self, start_timeout: float = 30.0) -> None:
        """As ``QemuProcess.launch``; a QEMU that could not forward SSH to the port picked (another
        test side by side took it in between) is launched again with another port."""
        self.up = False
        for attempt in range(1, self.PORT_TRIES + 1):
            try:
                super().launch(start_timeout)
                return
            except QemuRefusedCommandLine as refused:
                if "host forwarding rule" not in str(refused) or attempt == self.PORT_TRIES:
                    raise
                log.info("SSH port %d taken before QEMU bound it; launching again (%d of %d)", self.ssh_port,
                         attempt + 1, self.PORT_TRIES)  # fmt: skip

    @property
    def stage(self) -> str:
        """``STARTING`` until the guest answers SSH (a saved guest's load is its boot too)."""
        stage = super().stage
        return stage if self.up or stage == self.QUITTING else self.STARTING

    @property
    def console_log(self) -> Path:
        return self.logdir / "console.log"

    def _command_line(self, rundir: Path) -> list[str]:
        self.ssh_port = free_local_port()
        spec = LaunchSpec(
            accel=self.accel,
            boot=self.boot,
            qmp_socket=rundir / QMP_SOCKET,
            console_log=self.console_log,
            ssh_port=self.ssh_port,
            images=self.images,
            vhost_sockets=self.vhost_sockets,
            data_dir=self.sut.data_dir,
            trace=self.trace,
            trace_log=self.logdir / "qemu-trace.log",
        )
        return build_args(self.sut.qemu, self.topology, spec) + (["-incoming", "defer"] if self.incoming else [])

    def shape(self) -> list[str]:
        """The command line without what differs from run to run (sockets, logs, image paths, the SSH
        port, trace events): two machines of one shape are one guest, whose saved state either can load."""
        spec = LaunchSpec(
            accel=self.accel, boot=self.boot, qmp_socket=Path("QMP"), console_log=Path("CONSOLE"), ssh_port=0,
            images={name: Path(f"IMAGE-{name}") for name in self.images}, vhost_sockets={},
            data_dir=self.sut.data_dir,
        )  # fmt: skip
        return build_args(self.sut.qemu, self.topology, spec)

    # -- the guest's disks ---------------------------------------------------
    def disk_of(self, qdev: str) -> str | None:
        """The topology disk of a device as QMP names it: its id, or its
        virtio backend's QOM path (query-block and query-blockstats say either)."""
        for disk in self.topology.disks:
            if qdev in (disk.qdev, f"/machine/peripheral/{disk.qdev}/virtio-backend"):
                return disk.name
        return None

    def root_node(self, disk: str) -> str:
        """The node the device of ``disk`` writes to now (changes with snapshots)."""
        for entry in self.cmd("query-block"):
            if self.disk_of(entry.get("qdev", "")) == disk:
                return entry["inserted"]["node-name"]
        raise KeyError(f"query-block shows no device of {disk}")

    def write_ops(self) -> dict[str, int]:
        """Completed write requests per disk, counted by QEMU (survive graph changes)."""
        counts = {}
        for entry in self.cmd("query-blockstats"):
            disk = self.disk_of(entry.get("qdev", ""))
            if disk is not None:
                counts[disk] = entry["stats"]["wr_operations"]
        return counts
